"""TFDS-backed sources: prepared data via `tfds.data_source`, or download-and-prepare.

`tfds.data_source` gives random access to ArrayRecord files without
TensorFlow; its examples are dicts of numpy values that `TfdsSource` converts to
this codebase's example shape (`image` uint8 `[H, W, C]`, `label` int32 `[]`).
tensorflow_datasets is imported lazily: it is slow to import and most runs read
local files instead.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from research.data.core import DataNotFoundError, Feature, short_error


def default_dir() -> str:
  """TFDS's own default: env TFDS_DATA_DIR, else ~/tensorflow_datasets (read now, not at import)."""
  return os.environ.get("TFDS_DATA_DIR") or os.path.join(
    os.path.expanduser("~"), "tensorflow_datasets"
  )


def has_layout(data_dir: str, name: str) -> bool:
  """Whether `data_dir` holds prepared TFDS data for `name` (`<name>/[<config>/]<version>/dataset_info.json`)."""
  return bool(
    glob.glob(os.path.join(data_dir, name, "*", "dataset_info.json"))
    or glob.glob(os.path.join(data_dir, name, "*", "*", "dataset_info.json"))
  )


def tfds_dir_for(name: str, data_dir: str | None) -> str:
  """`data_dir` if it has a TFDS layout for `name`, else TFDS's default directory."""
  if data_dir and has_layout(data_dir, name):
    return data_dir
  return default_dir()


def open_prepared(name: str, split: str, tfds_dir: str) -> Any:
  """`tfds.data_source` over already prepared data; never downloads."""
  import tensorflow_datasets as tfds

  return tfds.data_source(name, split=split, data_dir=tfds_dir, download=False)


def download_and_prepare(name: str, split: str, tfds_dir: str) -> Any:
  """Downloads and prepares `name` into `tfds_dir` as ArrayRecord, then opens `split`.

  ArrayRecord because `tfds.data_source` needs random access; TFDS's default
  TFRecord format would be unreadable here.
  """
  import tensorflow_datasets as tfds

  builder = tfds.builder(name, data_dir=tfds_dir, file_format="array_record")
  builder.download_and_prepare()
  return tfds.data_source(name, split=split, data_dir=tfds_dir, download=False)


def open_or_download(
  name: str,
  tfds_dir: str,
  *,
  call: str,
  open_fn: Callable[[], Any],
  download_fn: Callable[[], Any],
  download: bool,
  tried: list[str],
) -> Any | None:
  """Steps (2) and (3) of every data set's resolution order: `open_fn()` over
  prepared data, else (when `download`) `download_fn()`, which downloads,
  prepares and opens. Returns the first that works, else None after appending
  one line per step to `tried` (`call` is step 2's call, for the message)."""
  try:
    return open_fn()
  except Exception as e:  # noqa: BLE001  # any failure: try the next step; all are reported
    # TFDS's error for "nothing prepared here" talks about file formats; say it plainly.
    missing = (
      ""
      if has_layout(tfds_dir, name)
      else f"no prepared data in {os.path.join(tfds_dir, name)}/ (no <version>/dataset_info.json); "
    )
    tried.append(f"(2) TFDS prepared data, {call}: {missing}{short_error(e)}")
  if not download:
    tried.append("(3) TFDS download_and_prepare: skipped (download=False)")
    return None
  try:
    return download_fn()
  except Exception as e:  # noqa: BLE001  # any failure: reported in DataNotFoundError
    tried.append(f"(3) TFDS download_and_prepare of {name!r} into {tfds_dir}: {short_error(e)}")
  return None


def not_found(name: str, split: str, tried: Sequence[str], how_to_get: str) -> DataNotFoundError:
  """The error when every step failed: what was tried, in order, and how to get the data."""
  return DataNotFoundError(
    f"Data set {name!r} split {split!r} not found. Tried, in order:\n  - "
    + "\n  - ".join(tried)
    + f"\nTo get it: {how_to_get}; or prepare it with TFDS on a machine with "
    f"internet (`tfds build {name} --file_format=array_record`) and set TFDS_DATA_DIR to "
    "that data dir (or pass it as data_dir)."
  )


class TfdsSource:
  """`DataSource` adapter over a `tfds.data_source` split.

  Examples: `{'image': uint8 [H, W, C], 'label': int32 []}`; other TFDS keys
  (e.g. CIFAR-10's 'id') are dropped so every resolution path yields the same
  keys. Decoding happens lazily per example (not all loaded into memory).
  """

  def __init__(self, tfds_source: Any, *, name: str, image_shape: Sequence[int], num_classes: int):
    self._source = tfds_source
    self.name = name
    self._image_shape = tuple(image_shape)
    self.features = {
      "image": Feature(self._image_shape, "uint8"),
      "label": Feature((), "int32", num_classes),
    }
    info = getattr(tfds_source, "dataset_info", None)
    label = info.features["label"] if info is not None else None
    if label is not None and label.num_classes != num_classes:
      raise ValueError(f"{name}: TFDS says {label.num_classes} classes, expected {num_classes}.")
    names = list(getattr(label, "names", None) or [])
    self.class_names = names or None

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, index: int) -> dict[str, np.ndarray | np.generic]:
    n = len(self)
    if not -n <= index < n:
      raise IndexError(f"{self.name}: index {index} out of range for {n} examples.")
    example = self._source[int(index) % n]
    image = np.asarray(example["image"])
    if image.shape != self._image_shape:
      raise ValueError(
        f"{self.name}[{index}]: image shape {image.shape}, expected {self._image_shape}."
      )
    return {"image": image.astype(np.uint8, copy=False), "label": np.int32(example["label"])}

  def __repr__(self) -> str:
    return f"TfdsSource({self.name!r}, n={len(self)})"
