"""Tests for research.data sources and registry: IDX/CIFAR readers, resolution order, TFDS path."""

import gzip
import io
import os
import pickle
import random
import tarfile

import numpy as np
import pytest

from research.data import registry, tfds_source
from research.data.vision import cifar, idx
from research.data.vision import mnist1d as mnist1d_source
from research.data.vision import sources as vision_sources

FASHION_DIR = "/usr/share/datasets/fashion-mnist"


@pytest.fixture
def isolated(tmp_path, monkeypatch):
  """Empty data dirs: no env data dir, TFDS pointed at an empty folder, no system copies."""
  monkeypatch.delenv("RESEARCH_DATA_DIR", raising=False)
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  monkeypatch.setattr(vision_sources, "SYSTEM_DIRS", {})
  return tmp_path


def _idx_bytes(array: np.ndarray) -> bytes:
  """IDX encoding of a uint8 array (what the MNIST files hold)."""
  header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">u4").tobytes()
  return header + array.astype(np.uint8).tobytes()


def _write_mnist(directory, n_train=6, n_test=4, gz=True):
  """A tiny fake MNIST in `directory` with the original file names."""
  os.makedirs(directory, exist_ok=True)
  rng = np.random.default_rng(0)
  out = {}
  for prefix, n in (("train", n_train), ("t10k", n_test)):
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    for kind, a, d in (("images", images, 3), ("labels", labels, 1)):
      name = os.path.join(directory, f"{prefix}-{kind}-idx{d}-ubyte")
      if gz:
        with gzip.open(name + ".gz", "wb") as f:
          f.write(_idx_bytes(a))
      else:
        with open(name, "wb") as f:
          f.write(_idx_bytes(a))
    out[prefix] = (images, labels)
  return out


# --- IDX reader --------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_good(tmp_path, gz):
  a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
  path = tmp_path / ("a.idx.gz" if gz else "a.idx")
  data = gzip.compress(_idx_bytes(a)) if gz else _idx_bytes(a)
  path.write_bytes(data)
  np.testing.assert_array_equal(idx.read_idx(path), a)


def test_read_idx_other_dtype(tmp_path):
  a = (np.arange(6).reshape(2, 3) - 3).astype(">i4")
  path = tmp_path / "i.idx"
  path.write_bytes(bytes([0, 0, 0x0C, 2]) + np.array(a.shape, ">u4").tobytes() + a.tobytes())
  out = idx.read_idx(path)
  assert out.dtype == np.int32 and out.dtype.isnative
  np.testing.assert_array_equal(out, a)


def test_read_idx_wrong_magic(tmp_path):
  path = tmp_path / "bad.idx"
  path.write_bytes(b"\x12\x34\x08\x01" + b"\x00" * 8)
  with pytest.raises(ValueError, match="bad.idx.*not an IDX file"):
    idx.read_idx(path)


def test_read_idx_truncated_raw(tmp_path):
  path = tmp_path / "short.idx"
  path.write_bytes(_idx_bytes(np.zeros((10, 5), np.uint8))[:-7])
  with pytest.raises(ValueError) as e:
    idx.read_idx(path)
  msg = str(e.value)
  assert "short.idx" in msg and "truncated" in msg and "50" in msg and "43" in msg
  assert "download it again" in msg


def test_read_idx_truncated_gzip(tmp_path):
  rng = np.random.default_rng(0)
  data = gzip.compress(_idx_bytes(rng.integers(0, 256, (50, 28, 28), dtype=np.uint8)))
  path = tmp_path / "cut-images-idx3-ubyte.gz"
  path.write_bytes(data[: len(data) // 2])
  with pytest.raises(ValueError) as e:
    idx.read_idx(path)
  msg = str(e.value)
  assert "cut-images-idx3-ubyte.gz" in msg and "truncated" in msg
  assert str(50 * 28 * 28) in msg  # expected bytes


def test_read_idx_extra_bytes(tmp_path):
  path = tmp_path / "long.idx"
  path.write_bytes(_idx_bytes(np.zeros(4, np.uint8)) + b"xx")
  with pytest.raises(ValueError, match="long.idx.*2 bytes more"):
    idx.read_idx(path)


def test_idx_load_split_count_mismatch(tmp_path):
  _write_mnist(tmp_path, n_train=6)
  with gzip.open(tmp_path / "train-labels-idx1-ubyte.gz", "wb") as f:
    f.write(_idx_bytes(np.zeros(5, np.uint8)))
  with pytest.raises(ValueError, match="6 images but .* 5 labels"):
    idx.load_split(str(tmp_path), "train")


# --- CIFAR-10 reader ---------------------------------------------------------


def _cifar_batches(n=3):
  rng = np.random.default_rng(1)
  batches = {}
  for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
    batches[name] = {
      b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
      b"labels": list(rng.integers(0, 10, n).tolist()),
    }
  batches["batches.meta"] = {b"label_names": [n.encode() for n in vision_sources.CIFAR10_CLASSES]}
  return batches


def _write_cifar(directory, as_tar):
  batches = _cifar_batches()
  os.makedirs(directory, exist_ok=True)

  def dumps(obj):
    # Name numpy's module as the official (numpy 1.x era) files do.
    return pickle.dumps(obj, protocol=2).replace(
      b"numpy._core.multiarray", b"numpy.core.multiarray"
    )

  if as_tar:
    with tarfile.open(os.path.join(directory, cifar.TARBALL), "w:gz") as tar:
      for name, obj in batches.items():
        data = dumps(obj)
        info = tarfile.TarInfo(f"{cifar.FOLDER}/{name}")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
  else:
    folder = os.path.join(directory, cifar.FOLDER)
    os.makedirs(folder)
    for name, obj in batches.items():
      with open(os.path.join(folder, name), "wb") as f:
        f.write(dumps(obj))
  return batches


@pytest.mark.parametrize("as_tar", [False, True])
def test_cifar_folder_and_tarball(isolated, as_tar):
  batches = _write_cifar(isolated / "cifar10", as_tar)
  train = registry.get_source("cifar10", "train", data_dir=str(isolated))
  test = registry.get_source("cifar10", "test", data_dir=str(isolated))
  assert len(train) == 15 and len(test) == 3
  ex = train[0]
  assert ex["image"].shape == (32, 32, 3) and ex["image"].dtype == np.uint8
  assert ex["label"].dtype == np.int32 and ex["label"].shape == ()
  row = batches["data_batch_1"][b"data"][0]
  # Row = R plane, G plane, B plane.
  np.testing.assert_array_equal(ex["image"][..., 0], row[:1024].reshape(32, 32))
  np.testing.assert_array_equal(ex["image"][..., 2], row[2048:].reshape(32, 32))
  assert test[2]["label"] == batches["test_batch"][b"labels"][2]
  assert train.class_names == vision_sources.CIFAR10_CLASSES


def test_cifar_refuses_code_in_pickle(tmp_path):
  folder = tmp_path / cifar.FOLDER
  folder.mkdir()
  (folder / "test_batch").write_bytes(pickle.dumps({b"data": os.system}))
  with pytest.raises(ValueError, match="refusing to load"):
    cifar.load_split(str(folder), "test")


def test_cifar_truncated_tarball(tmp_path):
  _write_cifar(tmp_path, as_tar=True)
  path = tmp_path / cifar.TARBALL
  path.write_bytes(path.read_bytes()[:2000])
  with pytest.raises(ValueError, match="cifar-10-python.tar.gz"):
    cifar.load_split(str(path), "train")


# --- registry: names, raw copies, resolution order ---------------------------


def test_check_dataset():
  assert set(registry.DATASETS) == {
    "digits",
    "mnist",
    "fashion_mnist",
    "cifar10",
    "mnist1d",
    "synthetic",
    "fashion_mnist_scenes",
    "coco",
    "voc",
    "oxford_iiit_pet",
    "tiny_shakespeare",
    "imdb_reviews",
    "multi30k",
    "text_pairs",
    "aeslc",
    "movielens",
    "credit_data",
    "lending_club",
    "default",
    "german_credit_numeric",
    "table",
    "eu_stock_markets",
  }
  registry.check_dataset("mnist", ["train", "test"])
  with pytest.raises(ValueError, match="'mnistt'.*valid names.*fashion_mnist"):
    registry.check_dataset("mnistt")
  with pytest.raises(ValueError, match="no split 'validation'.*'train', 'test'"):
    registry.check_dataset("digits", ["train", "validation"])
  with pytest.raises(ValueError, match="no option.*'seed'"):
    registry.get_source("digits", "train", seed=1)


def test_mnist_from_env_data_dir_uncompressed(isolated, monkeypatch):
  written = _write_mnist(isolated / "mnist", gz=False)
  monkeypatch.setenv("RESEARCH_DATA_DIR", str(isolated))
  source = registry.get_source("mnist", "test")
  assert len(source) == 4 and source.features["label"].num_classes == 10
  np.testing.assert_array_equal(source[1]["image"][..., 0], written["t10k"][0][1])
  assert source[1]["label"] == written["t10k"][1][1] and source[1]["label"].dtype == np.int32


def test_damaged_raw_copy_raises_not_skipped(isolated):
  _write_mnist(isolated / "mnist")
  path = isolated / "mnist" / "train-images-idx3-ubyte.gz"
  path.write_bytes(path.read_bytes()[:100])
  with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz.*truncated"):
    registry.get_source("mnist", "train", data_dir=str(isolated))


@pytest.mark.skipif(
  not os.path.isdir(FASHION_DIR),
  reason=f"{FASHION_DIR} absent (apt-get install dataset-fashion-mnist)",
)
def test_fashion_mnist_from_system_dir(monkeypatch, tmp_path):
  monkeypatch.delenv("RESEARCH_DATA_DIR", raising=False)
  train = registry.get_source("fashion_mnist", "train", data_dir=str(tmp_path))
  test = registry.get_source("fashion_mnist", "test", data_dir=str(tmp_path))
  assert (len(train), len(test)) == (60000, 10000)
  ex = train[0]
  assert ex["image"].shape == (28, 28, 1) and ex["image"].dtype == np.uint8
  assert ex["label"].dtype == np.int32 and ex["label"].shape == ()
  assert train.features["label"].num_classes == 10
  assert train.class_names[:2] == ["T-shirt/top", "Trouser"] and len(train.class_names) == 10
  assert np.bincount(train._arrays["label"]).tolist() == [6000] * 10  # balanced classes


@pytest.mark.parametrize("download", [True, False])
def test_missing_data_lists_everything_tried(isolated, download, monkeypatch):
  def offline_builder(name, **kwargs):
    # What TFDS raises offline, without its minutes of retries.
    raise ConnectionError(f"Failed to resolve the download host of {name!r} (offline)")

  import tensorflow_datasets as tfds

  monkeypatch.setattr(tfds, "builder", offline_builder)
  with pytest.raises(registry.DataNotFoundError) as e:
    registry.get_source("fashion_mnist", "train", data_dir=str(isolated), download=download)
  assert isinstance(e.value, FileNotFoundError)
  msg = str(e.value)
  assert str(isolated / "fashion_mnist") in msg  # step 1 path
  assert "tfds.data_source('fashion_mnist'" in msg and str(isolated / "tfds") in msg  # step 2
  assert "(3) TFDS download_and_prepare" in msg  # step 3
  assert "apt-get install dataset-fashion-mnist" in msg and "RESEARCH_DATA_DIR" in msg
  assert "TFDS_DATA_DIR" in msg
  if not download:
    assert "skipped (download=False)" in msg
  else:
    assert "ConnectionError: Failed to resolve the download host" in msg


def test_missing_data_without_data_dir_says_env_unset(isolated):
  with pytest.raises(registry.DataNotFoundError, match="RESEARCH_DATA_DIR is not set"):
    registry.get_source("mnist", "test", download=False)


# --- TFDS path (offline, with tfds.testing.mock_data; needs no TensorFlow) ----


def test_tfds_prepared_path_with_mock(isolated):
  import tensorflow_datasets as tfds

  with tfds.testing.mock_data(num_examples=7, policy=tfds.testing.MockPolicy.USE_CODE):
    source = registry.get_source("cifar10", "test", data_dir=str(isolated), download=False)
    assert isinstance(source, tfds_source.TfdsSource) and len(source) == 7
    ex = source[3]
    assert set(ex) == {"image", "label"}  # TFDS's 'id' dropped
    assert ex["image"].shape == (32, 32, 3) and ex["image"].dtype == np.uint8
    assert ex["label"].dtype == np.int32 and ex["label"].shape == () and 0 <= ex["label"] < 10
    assert source.features["label"].num_classes == 10
    assert source.class_names == vision_sources.CIFAR10_CLASSES
    fashion = registry.get_source("fashion_mnist", "train", data_dir=str(isolated))
    assert fashion[0]["image"].shape == (28, 28, 1)
    assert fashion.class_names == vision_sources.FASHION_MNIST_CLASSES
    with pytest.raises(IndexError):
      source[7]


def test_tfds_download_step_with_mock(isolated, monkeypatch):
  import tensorflow_datasets as tfds

  def not_prepared(*args):
    raise FileNotFoundError("nothing prepared")

  monkeypatch.setattr(tfds_source, "open_prepared", not_prepared)
  with tfds.testing.mock_data(num_examples=5, policy=tfds.testing.MockPolicy.USE_CODE):
    # mock_data makes download_and_prepare a no-op and mocks data_source.
    source = registry.get_source("mnist", "train", data_dir=str(isolated))
  assert isinstance(source, tfds_source.TfdsSource) and len(source) == 5
  assert source[0]["image"].shape == (28, 28, 1)


def test_tfds_dir_uses_data_dir_only_with_tfds_layout(isolated):
  assert tfds_source.tfds_dir_for("mnist", str(isolated)) == str(isolated / "tfds")
  version = isolated / "mnist" / "3.0.1"
  version.mkdir(parents=True)
  (version / "dataset_info.json").write_text("{}")
  assert tfds_source.tfds_dir_for("mnist", str(isolated)) == str(isolated)


# --- embedded, generated and synthetic data ----------------------------------


def test_digits_split():
  from sklearn.datasets import load_digits

  train = registry.get_source("digits", "train")
  test = registry.get_source("digits", "test")
  assert (len(train), len(test)) == (1437, 360)
  ex = train[0]
  assert ex["image"].shape == (8, 8, 1) and ex["image"].dtype == np.uint8
  assert ex["label"].dtype == np.int32 and train.features["label"].num_classes == 10
  images = train._arrays["image"]
  assert images.max() == 255 and images.min() == 0
  # Stratified: every class keeps its share in test (sizes 35..37 of 360).
  assert np.bincount(test._arrays["label"]).min() >= 35
  # Values are sklearn's 0..16 rescaled with rounding.
  allowed = set(np.rint(np.arange(17) * 255 / 16).astype(int).tolist())
  assert set(np.unique(images).tolist()) <= allowed
  all_images = np.rint(load_digits().images * 255 / 16).astype(np.uint8)
  assert any(np.array_equal(all_images[i], ex["image"][..., 0]) for i in range(len(all_images)))


def test_mnist1d_equals_package_output():
  from mnist1d.data import get_dataset_args, make_dataset

  train = registry.get_source("mnist1d", "train")
  test = registry.get_source("mnist1d", "test")
  assert (len(train), len(test)) == (4000, 1000)
  ex = test[0]
  assert ex["image"].shape == (40, 1) and ex["image"].dtype == np.float32
  assert ex["label"].dtype == np.int32 and train.features["label"].num_classes == 10
  expected = make_dataset(get_dataset_args())
  np.testing.assert_array_equal(train._arrays["image"][..., 0], expected["x"].astype(np.float32))
  np.testing.assert_array_equal(test._arrays["label"], expected["y_test"])


def test_mnist1d_cache_and_global_rng_untouched(tmp_path, monkeypatch):
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # force a cache miss
  np.random.seed(123)
  random.seed(123)
  expected = (np.random.random(), random.random())
  np.random.seed(123)
  random.seed(123)
  first = registry.get_source("mnist1d", "test", data_dir=str(tmp_path / "data"))
  # Generating (mnist1d reseeds the global RNGs) left everyone's streams alone.
  assert (np.random.random(), random.random()) == expected
  assert list((tmp_path / "data" / "mnist1d").glob("mnist1d_*.npz"))

  def boom(args):
    raise AssertionError("should have been served from the cache")

  monkeypatch.setattr(mnist1d_source, "_generate", boom)
  again = registry.get_source("mnist1d", "test", data_dir=str(tmp_path / "data"))
  np.testing.assert_array_equal(again._arrays["image"], first._arrays["image"])


def test_synthetic_shapes_determinism_and_learnability():
  features = {
    "image": ((8, 8, 1), "uint8"),
    "vec": ((5,), "float32"),
    "flag": ((3,), "bool"),
    "label": ((), "int32", 10),
  }
  a = registry.get_source("synthetic", "train", features=features, num_examples=200, seed=0)
  b = registry.get_source("synthetic", "train", features=features, num_examples=200, seed=0)
  c = registry.get_source("synthetic", "test", features=features, num_examples=200, seed=0)
  d = registry.get_source("synthetic", "train", features=features, num_examples=200, seed=1)
  ex = a[0]
  assert ex["image"].shape == (8, 8, 1) and ex["image"].dtype == np.uint8
  assert ex["vec"].shape == (5,) and ex["vec"].dtype == np.float32
  assert ex["flag"].dtype == np.bool_ and ex["label"].dtype == np.int32
  assert a.features["label"].num_classes == 10 and a.features["vec"].num_classes is None
  for key in features:
    np.testing.assert_array_equal(a._arrays[key], b._arrays[key])
  assert not np.array_equal(a._arrays["image"], c._arrays["image"])
  assert not np.array_equal(a._arrays["image"], d._arrays["image"])
  # Learnable and generalising: nearest class mean of train classifies test.
  x_tr = a._arrays["image"].reshape(200, -1).astype(np.float32)
  x_te = c._arrays["image"].reshape(200, -1).astype(np.float32)
  y_tr, y_te = a._arrays["label"], c._arrays["label"]
  means = np.stack([x_tr[y_tr == k].mean(0) for k in range(10)])
  pred = np.argmin(((x_te[:, None] - means[None]) ** 2).sum(-1), axis=1)
  assert (pred == y_te).mean() > 0.95
  with pytest.raises(ValueError, match="num_classes needs an integer dtype"):
    registry.get_source("synthetic", "train", features={"y": ((), "float32", 3)})
