"""Every experiment config builds, validates and trains two steps in its tiny mode.

Real code paths only: digits and MNIST-1D are embedded; Fashion-MNIST is read
from IDX files this test writes into a local data dir; MNIST and CIFAR-10 go
through the TFDS path under `tfds.testing.mock_data`.
"""
import gzip
import json
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from research import config as config_lib
from research.data import registry
from research.train import loop

EXPERIMENTS = [
    ("vision/digits", "mlp"), ("vision/digits", "cnn"),
    ("vision/fashion_mnist", "mlp"), ("vision/fashion_mnist", "cnn"),
    ("vision/fashion_mnist", "resnet18"),
    ("vision/mnist", "mlp"), ("vision/mnist", "cnn"),
    ("vision/cifar10", "lenet"), ("vision/cifar10", "resnet18"),
    ("vision/mnist1d", "logistic"), ("vision/mnist1d", "mlp"), ("vision/mnist1d", "cnn"),
]


def write_idx_dir(directory, n_train=48, n_test=40, seed=0):
  """The four original MNIST-format files, gzipped, with random 28x28 images."""
  rng = np.random.default_rng(seed)
  os.makedirs(directory, exist_ok=True)
  for prefix, n in (("train", n_train), ("t10k", n_test)):
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, (n,), dtype=np.uint8)
    for kind, array, code in (("images-idx3", images, 3), ("labels-idx1", labels, 1)):
      header = bytes([0, 0, 0x08, code]) + np.array(array.shape, ">u4").tobytes()
      with gzip.open(os.path.join(directory, f"{prefix}-{kind}-ubyte.gz"), "wb") as f:
        f.write(header + array.tobytes())


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
  """A local data dir holding only a tiny Fashion-MNIST; no system copies, empty TFDS dir."""
  monkeypatch.setattr(registry, "SYSTEM_DIRS", {})
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  write_idx_dir(tmp_path / "data" / "fashion_mnist")
  monkeypatch.setenv("RESEARCH_DATA_DIR", str(tmp_path / "data"))
  return tmp_path / "data"


@pytest.mark.parametrize("experiment,variant", EXPERIMENTS)
def test_tiny_mode_trains_two_steps(experiment, variant, data_dir, tmp_path):
  config = config_lib.load(f"{experiment}:{variant},smoke=True")
  assert config.experiment == f"{experiment}:{variant},smoke=True"
  workdir = tmp_path / "run"
  with tfds.testing.mock_data(num_examples=32, policy=tfds.testing.MockPolicy.USE_CODE):
    summary = loop.run(config, str(workdir))
  assert summary["step"] == 2
  assert 0.0 <= summary["test/accuracy"] <= 1.0
  on_disk = json.loads((workdir / "summary.json").read_text())
  assert on_disk["params_fingerprint"] == summary["params_fingerprint"]
  assert all(isinstance(v, (int, float, str)) for v in on_disk.values())
  lines = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [l["step"] for l in lines if "train/loss" in l] == [1, 2]
  for name in ("config.json", "report.md", "plots/loss.png", "plots/test_confusion_matrix.png"):
    assert (workdir / name).exists(), name
  assert any((workdir / "tensorboard").iterdir())
  assert "2" in os.listdir(workdir / "checkpoints")  # the final checkpoint


def test_every_experiment_module_is_listed():
  root = os.path.join(os.path.dirname(__file__), "..", "experiments")
  found = set()
  for domain in os.listdir(root):
    folder = os.path.join(root, domain)
    if os.path.isdir(folder) and not domain.startswith("_"):
      found |= {f"{domain}/{f[:-3]}" for f in os.listdir(folder)
                if f.endswith(".py") and not f.startswith("_")}
  assert found == {e for e, _ in EXPERIMENTS}, "add new experiments to EXPERIMENTS"
