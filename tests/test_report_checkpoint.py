"""One model per run: summary.json and report.md give the metrics of the
checkpoint the tools default to, and name it."""

import json

import pytest

from research.core import config as config_lib
from research.outputs import writer
from research.train import evaluate, loop


@pytest.fixture(scope="module")
def best_not_last(tmp_path_factory):
  """Two steps, validation after each; a learning rate far too large makes the
  second step worse, so the best by validation loss is the first, not the last."""
  workdir = tmp_path_factory.mktemp("ckpt") / "run"
  config = config_lib.load(
    "finance_risk/credit_scoring:logreg,smoke=True",
    {
      "baselines": config_lib.ConfigDict(),
      "evals.val.every_steps": 1,
      "ckpt.best_metric": "val/loss",
      "ckpt.best_mode": "min",
      "optimizer.lr": 0.5,
    },
  )
  loop.run(config, str(workdir))
  return workdir


@pytest.mark.slow
def test_summary_and_report_describe_the_default_checkpoint(best_not_last):
  workdir = str(best_not_last)
  val_loss = {r["step"]: r["val/loss"] for r in writer.read_metrics(workdir) if "val/loss" in r}
  assert val_loss[1] < val_loss[2]  # the setup: best by val/loss is step 1, not the last
  summary = json.loads((best_not_last / "summary.json").read_text())
  assert summary["step"] == 2
  assert summary["checkpoint_step"] == 1 and summary["checkpoint"] == "best by val/loss"
  assert summary["checkpoint_params_fingerprint"] != summary["params_fingerprint"]
  # What tools.evaluate gives for its default ('best') checkpoint.
  tool = evaluate.evaluate(workdir)
  assert tool["step"] == 1
  for key in ("test/roc_auc", "test/ks", "test/brier", "val/loss"):
    assert summary[key] == pytest.approx(tool[key], rel=1e-6), key
  assert summary["val/loss"] == pytest.approx(val_loss[1], rel=1e-6)
  last_auc = [r["test/roc_auc"] for r in writer.read_metrics(workdir) if "test/roc_auc" in r]
  assert summary["test/roc_auc"] != pytest.approx(last_auc[-1], rel=1e-9)  # not the last step's
  report = (best_not_last / "report.md").read_text()
  assert "Metrics are those of checkpoint step 1 (best by val/loss)" in report
  assert "training ran to step 2" in report
  assert f"| test/roc_auc | {summary['test/roc_auc']:.4f} |" in report


@pytest.mark.slow
def test_without_best_metric_the_last_step_is_reported(tmp_path):
  config = config_lib.load(
    "finance_risk/credit_scoring:logreg,smoke=True",
    {"baselines": config_lib.ConfigDict(), "ckpt.best_metric": None},
  )
  result = loop.run(config, str(tmp_path / "run"))
  summary = json.loads((tmp_path / "run" / "summary.json").read_text())
  assert summary["checkpoint_step"] == 2 and summary["checkpoint"] == "last step"
  assert "checkpoint_params_fingerprint" not in summary
  assert summary["test/roc_auc"] == pytest.approx(result["test/roc_auc"])
  assert (
    "Metrics are those of checkpoint step 2 (last step)"
    in (tmp_path / "run" / "report.md").read_text()
  )
