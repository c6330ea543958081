"""Vision data sets read from files: MNIST, Fashion-MNIST and CIFAR-10.

Resolution order (see `research.data.registry` for the whole list of data
sets): a local raw copy of the original files, then TFDS prepared data, then a
TFDS download; `DataNotFoundError` lists every location tried.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from research.data import tfds_source
from research.data.core import ArraySource, DataSource
from research.data.vision import cifar, idx

# Extra raw-copy locations tried after `<data_dir>/<name>/`; module-level so
# tests can monkeypatch them away.
SYSTEM_DIRS: dict[str, tuple[str, ...]] = {
  "fashion_mnist": ("/usr/share/datasets/fashion-mnist",),
}

FASHION_MNIST_CLASSES = [
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
]
CIFAR10_CLASSES = [
  "airplane",
  "automobile",
  "bird",
  "cat",
  "deer",
  "dog",
  "frog",
  "horse",
  "ship",
  "truck",
]

_HOW_TO_GET = {
  "mnist": (
    "put train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
    "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz (the original MNIST "
    "files) in <dir>/mnist/ and set RESEARCH_DATA_DIR=<dir> (or pass data_dir)"
  ),
  "fashion_mnist": (
    "`apt-get install dataset-fashion-mnist` (installs the four .gz files in "
    "/usr/share/datasets/fashion-mnist/), or put the original "
    "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
    "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz in "
    "<dir>/fashion_mnist/ and set RESEARCH_DATA_DIR=<dir>"
  ),
  "cifar10": (
    "put cifar-10-python.tar.gz (or its unpacked cifar-10-batches-py/ folder) "
    "from https://www.cs.toronto.edu/~kriz/cifar.html in <dir>/cifar10/ and set "
    "RESEARCH_DATA_DIR=<dir>"
  ),
}


@dataclasses.dataclass(frozen=True)
class _Vision:
  """How to read one of mnist / fashion_mnist / cifar10 in each resolution step."""

  image_shape: tuple[int, int, int]
  read_raw: Callable[[str, str], tuple[np.ndarray, np.ndarray, list[str] | None]]
  class_names: list[str]


def _read_idx_dir(directory: str, split: str):
  images, labels = idx.load_split(directory, split)
  return images, labels, None


def _read_cifar_dir(directory: str, split: str):
  return cifar.load_split(cifar.find(directory), split)


VISION = {
  "mnist": _Vision((28, 28, 1), _read_idx_dir, [str(i) for i in range(10)]),
  "fashion_mnist": _Vision((28, 28, 1), _read_idx_dir, FASHION_MNIST_CLASSES),
  "cifar10": _Vision((32, 32, 3), _read_cifar_dir, CIFAR10_CLASSES),
}


def _raw_source(name: str, split: str, directory: str) -> ArraySource:
  """Step 1: an `ArraySource` from raw files in `directory` (FileNotFoundError if absent)."""
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"{directory} does not exist")
  vision = VISION[name]
  images, labels, names = vision.read_raw(directory, split)
  if images.shape[1:] != vision.image_shape:
    raise ValueError(
      f"{directory}: {name} images have shape {images.shape[1:]}, expected {vision.image_shape}."
    )
  if len(labels) and not 0 <= labels.min() <= labels.max() < 10:
    raise ValueError(
      f"{directory}: {name} labels outside 0..9 (min {labels.min()}, max "
      f"{labels.max()}); the files are damaged or not {name}."
    )
  source = ArraySource(
    {"image": images, "label": labels}, num_classes={"label": 10}, name=f"{name}:{split}"
  )
  source.class_names = names or vision.class_names
  return source


def load(name: str, split: str, data_dir: str | None, *, download: bool = True) -> DataSource:
  """Resolution order of the module docstring; DataNotFoundError when all steps fail."""
  vision = VISION[name]
  tried: list[str] = []
  raw_dirs = list(SYSTEM_DIRS.get(name, ()))
  if data_dir:
    raw_dirs.insert(0, os.path.join(data_dir, name))
  else:
    tried.append(
      "(1) local raw copy <data_dir>/" + name + "/: skipped, no data_dir given and "
      "RESEARCH_DATA_DIR is not set"
    )
  for directory in raw_dirs:
    try:
      return _raw_source(name, split, directory)
    except FileNotFoundError as e:
      tried.append(f"(1) local raw copy {directory}: {e}")

  def wrap(ds: Any) -> DataSource:
    source = tfds_source.TfdsSource(
      ds, name=f"{name}:{split}", image_shape=vision.image_shape, num_classes=10
    )
    # The standard names, not TFDS's: its metadata may be absent (mocked or
    # partial data dirs give '0'..'9'); the label indices are the same.
    source.class_names = vision.class_names
    return source

  tfds_dir = tfds_source.tfds_dir_for(name, data_dir)
  source = tfds_source.open_or_download(
    name,
    tfds_dir,
    call=f"tfds.data_source({name!r}, split={split!r}, data_dir={tfds_dir!r}, download=False)",
    open_fn=lambda: wrap(tfds_source.open_prepared(name, split, tfds_dir)),
    download_fn=lambda: wrap(tfds_source.download_and_prepare(name, split, tfds_dir)),
    download=download,
    tried=tried,
  )
  if source is None:
    raise tfds_source.not_found(name, split, tried, _HOW_TO_GET[name])
  return source
