"""The detection experiment end to end in tiny mode: CenterNet trains, is scored by
COCO mAP on validation (checkpoint selection) and test, beside the
connected-components baselines on the same test scenes; a saved workdir
re-evaluates to the same numbers."""

import json

import numpy as np
import pytest

from research.core import config as config_lib
from research.data.vision import sources as vision_sources
from research.train import evaluate, loop
from tests.test_experiments import write_idx_dir

METRICS = ("mAP", "mAP50", "mAP75", "AR1", "AR10", "AR100")


@pytest.mark.slow
def test_scenes_detection_tiny_run_reports_map_beside_the_baselines(tmp_path, monkeypatch):
  monkeypatch.setattr(vision_sources, "SYSTEM_DIRS", {})
  write_idx_dir(tmp_path / "data" / "fashion_mnist")
  monkeypatch.setenv("RESEARCH_DATA_DIR", str(tmp_path / "data"))
  config = config_lib.load("vision/scenes_detection:centernet,smoke=True")
  assert config.ckpt.best_metric == "val/mAP50"
  assert config.evals.val.split == "validation" and config.evals.test.split == "test"
  workdir = tmp_path / "run"
  summary = loop.run(config, str(workdir))
  for split in ("val", "test"):
    for name in METRICS:
      assert 0.0 <= summary[f"{split}/{name}"] <= 1.0, (split, name)
  baselines = json.loads((workdir / "baselines.json").read_text())
  assert set(baselines) == {"cc_majority", "cc_nearest_mean"}
  for scores in baselines.values():
    assert set(scores) == {f"test/{m}" for m in METRICS} | {"seconds"}
    assert all(0.0 <= scores[f"test/{m}"] <= 1.0 for m in METRICS)
  report = (workdir / "report.md").read_text()
  assert "| cc_majority |" in report and "| **centernet** (this run) |" in report
  again = evaluate.evaluate(str(workdir), split="test")
  np.testing.assert_allclose(again["test/mAP50"], summary["test/mAP50"])
  np.testing.assert_allclose(again["test/mAP"], summary["test/mAP"])
