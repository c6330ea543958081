"""research.outputs.writer: metrics.jsonl, TensorBoard events, config.json."""

import glob
import json
import math
import os
import struct

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from tensorboardX.proto import event_pb2

from research.outputs import writer


def _tb_scalars(workdir):
  """(step, tag, value) of every scalar in the run's event files (TFRecord framing)."""
  out = []
  for path in sorted(glob.glob(os.path.join(workdir, "tensorboard", "events.out.tfevents.*"))):
    with open(path, "rb") as f:
      data = f.read()
    i = 0
    while i < len(data):
      (n,) = struct.unpack("<Q", data[i : i + 8])  # length, then 4-byte crc
      event = event_pb2.Event.FromString(data[i + 12 : i + 12 + n])
      out += [(event.step, v.tag, v.simple_value) for v in event.summary.value]
      i += 12 + n + 4  # payload, then its 4-byte crc
  return out


def _lines(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def test_write_scalars_jsonl_and_tensorboard(tmp_path):
  wd = str(tmp_path / "run")
  with writer.MetricWriter(wd) as w:
    w.write_scalars(1, {"train/loss": 2.5, "lr": np.float32(0.1)})
    w.write_scalars(2, {"train/loss": jnp.asarray(1.5), "bad": float("nan")})
    # Flushed per write: readable before close.
    assert [r["step"] for r in _lines(wd)] == [1, 2]
  lines = _lines(wd)
  assert lines[0]["train/loss"] == 2.5 and lines[0]["lr"] == pytest.approx(0.1)
  assert lines[1]["train/loss"] == 1.5
  assert lines[1]["bad"] is None  # non-finite -> null: strict JSON stays valid
  assert all(isinstance(r["time"], float) and r["time"] > 1e9 for r in lines)
  assert writer.read_metrics(wd) == lines
  scalars = _tb_scalars(wd)
  assert (1, "train/loss", 2.5) in scalars and (2, "train/loss", 1.5) in scalars
  assert any(tag == "bad" and math.isnan(v) for _, tag, v in scalars)


def test_reserved_keys_rejected(tmp_path):
  with writer.MetricWriter(str(tmp_path)) as w, pytest.raises(ValueError, match="reserved"):
    w.write_scalars(0, {"step": 1.0})


def test_truncate_after_drops_replayed_steps(tmp_path):
  wd = str(tmp_path)
  w = writer.MetricWriter(wd)
  for step in (10, 20, 30, 40):
    w.write_scalars(step, {"loss": step / 10})
  w.close()
  # The crashed run also left half a line behind.
  with open(os.path.join(wd, "metrics.jsonl"), "a") as f:
    f.write('{"step": 50, "lo')

  w = writer.MetricWriter(wd)  # resumed from the checkpoint at step 20
  w.truncate_after(20)
  w.write_scalars(30, {"loss": 99.0})
  w.close()
  records = writer.read_metrics(wd)
  assert [(r["step"], r["loss"]) for r in records] == [(10, 1.0), (20, 2.0), (30, 99.0)]
  assert len(glob.glob(os.path.join(wd, "tensorboard", "events.out.tfevents.*"))) >= 2


def test_disabled_writer_is_a_noop(tmp_path):
  wd = tmp_path / "nonprimary"
  w = writer.MetricWriter(str(wd), enabled=False)
  w.write_scalars(1, {"loss": 1.0})
  w.truncate_after(0)
  w.close()
  assert not wd.exists()


def test_config_round_trip(tmp_path):
  cfg = ml_collections.ConfigDict()
  cfg.lr = 0.1
  cfg.model = ml_collections.ConfigDict({"depth": 4, "widths": (8, 16)})
  cfg.dtype = jnp.float32
  cfg.clip = float("inf")
  cfg.seed = np.int64(3)
  cfg.name = "mlp"
  path = writer.write_config(str(tmp_path), cfg)
  assert path == os.path.join(str(tmp_path), "config.json")
  loaded = writer.read_config(str(tmp_path))
  assert loaded["lr"] == 0.1 and loaded["name"] == "mlp" and loaded["seed"] == 3
  assert loaded["model"] == {"depth": 4, "widths": [8, 16]}
  assert loaded["clip"] == "inf" and "float32" in loaded["dtype"]
  # Plain dicts work too, and the file is strict JSON.
  writer.write_config(str(tmp_path), {"a": (1, 2), "b": {"c": np.float32(0.5)}})
  with open(path) as f:
    text = f.read()
  assert json.loads(text, parse_constant=lambda c: math.nan) == {"a": [1, 2], "b": {"c": 0.5}}
