"""research.outputs.summary: flat summary.json and the params fingerprint."""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from research.outputs import summary


def _params():
  return {
    "dense": {
      "kernel": np.arange(6, dtype=np.float32).reshape(2, 3),
      "bias": np.zeros(3, np.float32),
    },
    "head": {"kernel": np.ones((3, 2), np.float32)},
  }


def test_fingerprint_same_params_same_hash():
  a = summary.params_fingerprint(_params())
  assert len(a) == 64 and int(a, 16) >= 0
  # jax arrays and a different dict insertion order hash the same.
  p = _params()
  reordered = {
    "head": {"kernel": jnp.asarray(p["head"]["kernel"])},
    "dense": {"bias": jnp.asarray(p["dense"]["bias"]), "kernel": jnp.asarray(p["dense"]["kernel"])},
  }
  assert summary.params_fingerprint(reordered) == a


def test_fingerprint_one_bit_changes_hash():
  p = _params()
  base = summary.params_fingerprint(p)
  bits = p["dense"]["kernel"].view(np.uint32)
  bits[1, 2] ^= 1  # flip the lowest mantissa bit of one weight
  assert summary.params_fingerprint(p) != base


def test_fingerprint_depends_on_key_path_dtype_and_shape():
  k = np.ones((2, 3), np.float32)
  base = summary.params_fingerprint({"a": k})
  assert summary.params_fingerprint({"b": k}) != base
  assert summary.params_fingerprint({"a": {"a": k}}) != base
  assert summary.params_fingerprint({"a": k.reshape(3, 2)}) != base
  assert summary.params_fingerprint({"a": k.view(np.int32)}) != base
  # Swapping the values of two leaves keeps the bytes multiset but not the hash.
  assert summary.params_fingerprint(
    {"x": np.zeros(2), "y": np.ones(2)}
  ) != summary.params_fingerprint({"x": np.ones(2), "y": np.zeros(2)})


def test_write_summary_is_flat_and_finite(tmp_path):
  metrics = {
    "test/accuracy": np.float32(0.75),
    "test/loss": jnp.asarray(0.5),
    "test/top5": float("nan"),
    "test/num_examples": 100,
  }
  with pytest.warns(UserWarning, match="test/top5"):
    out = summary.write_summary(
      str(tmp_path),
      metrics,
      step=1000,
      train_seconds=12.5,
      params_fingerprint="ab" * 32,
      extra={"device_count": 1, "device_kind": "cpu"},
    )
  with open(os.path.join(tmp_path, "summary.json")) as f:
    loaded = json.load(f)
  assert loaded == out == summary.read_summary(str(tmp_path))
  assert loaded == {
    "test/accuracy": 0.75,
    "test/loss": 0.5,
    "test/num_examples": 100,
    "step": 1000,
    "train_seconds": 12.5,
    "params_fingerprint": "ab" * 32,
    "device_count": 1,
    "device_kind": "cpu",
  }
  assert all(isinstance(v, (int, float, str)) for v in loaded.values())


def test_write_summary_rejects_nested_and_reserved(tmp_path):
  with pytest.raises(TypeError, match="flat"):
    summary.write_summary(
      str(tmp_path), {"test/cm": np.eye(2)}, step=1, train_seconds=1.0, params_fingerprint="x"
    )
  with pytest.raises(TypeError):
    summary.write_summary(
      str(tmp_path), {"test/acc": "0.5"}, step=1, train_seconds=1.0, params_fingerprint="x"
    )
  with pytest.raises(ValueError, match="reserved"):
    summary.write_summary(
      str(tmp_path), {"step": 3}, step=1, train_seconds=1.0, params_fingerprint="x"
    )
