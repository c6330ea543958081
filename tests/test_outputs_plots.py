"""research.outputs.plots: non-empty PNGs from metrics.jsonl and a confusion matrix."""

import os

import numpy as np

from research.outputs import plots, writer

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path):
  with open(path, "rb") as f:
    head = f.read(8)
  return head == _PNG_MAGIC and os.path.getsize(path) > 1000


def test_plot_curves_writes_loss_and_accuracy(tmp_path):
  wd = str(tmp_path)
  with writer.MetricWriter(wd) as w:
    for step in range(1, 21):
      w.write_scalars(step, {"train/loss": 2.0 / step})
      if step % 10 == 0:
        w.write_scalars(step, {"test/loss": 1.0 / step, "test/accuracy": step / 25})
  paths = plots.plot_curves(wd)
  assert sorted(os.path.basename(p) for p in paths) == ["accuracy.png", "loss.png"]
  assert all(os.path.dirname(p) == os.path.join(wd, "plots") and _is_png(p) for p in paths)


def test_plot_curves_skips_absent_keys(tmp_path):
  wd = str(tmp_path)
  with writer.MetricWriter(wd) as w:
    w.write_scalars(1, {"train/loss": 1.0})
    w.write_scalars(2, {"train/loss": 0.5, "test/accuracy": float("nan")})  # null only
  paths = plots.plot_curves(wd)
  assert [os.path.basename(p) for p in paths] == ["loss.png"]
  assert not os.path.exists(os.path.join(wd, "plots", "accuracy.png"))
  assert plots.plot_curves(str(tmp_path / "empty")) == []


def test_plot_confusion_matrix(tmp_path):
  cm = np.array([[5, 1, 0], [2, 7, 1], [0, 0, 0]])  # an empty row must not divide by 0
  path = plots.plot_confusion_matrix(
    cm, ["cat", "dog", "emu"], str(tmp_path / "sub" / "cm.png"), "test"
  )
  assert _is_png(path)


def test_plot_confusion_matrix_default_names(tmp_path):
  path = plots.plot_confusion_matrix(np.eye(3, dtype=np.int64) * 4, None, str(tmp_path / "cm.png"))
  assert _is_png(path)
