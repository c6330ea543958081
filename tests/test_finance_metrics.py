"""Finance metrics on hand-computed cases: AUC, KS, PSI, ECE, fairness, Kupiec,
Christoffersen; integrated gradients' completeness."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from research.metrics import attribution as explain
from research.metrics import credit, fairness, market
from research.models import build_model
from research.models.forecast import ewma_volatility
from research.models.tabular import FTTransformer, TabularLogistic, TabularMLP

Y = np.array([0, 0, 1, 1])
P = np.array([0.1, 0.4, 0.35, 0.8])


def test_auc_and_gini_by_hand():
  # Pairs (bad, good): 0.35>0.1 yes, 0.35>0.4 no, 0.8>0.1 yes, 0.8>0.4 yes -> 3/4.
  assert credit.roc_auc(Y, P) == pytest.approx(0.75)
  scalars, _ = credit.credit_report(Y, P)
  assert scalars["gini"] == pytest.approx(0.5)


def test_ks_by_hand():
  # Cumulative shares at s=0.1: bads 0, goods 1/2 -> 0.5 (also at s=0.4); elsewhere 0.
  ks, _ = credit.ks_statistic(Y, P)
  assert ks == pytest.approx(0.5)
  curve = credit.ks_curve(Y, P)
  assert np.max(np.abs(curve["cum_bad"] - curve["cum_good"])) == pytest.approx(0.5)
  # Perfect separation: KS = 1; a reversed score separates as well.
  assert credit.ks_statistic([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])[0] == pytest.approx(1.0)
  assert credit.ks_statistic([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1])[0] == pytest.approx(1.0)


def test_psi_by_hand():
  # Reference [1, 2, 3, 4], two bins split at the median 2.5: shares (0.5, 0.5).
  # Actual [1, 1, 1, 4]: (0.75, 0.25). PSI = 0.25 ln 1.5 + 0.25 ln 2.
  value = credit.psi([1, 2, 3, 4], [1, 1, 1, 4], bins=2)
  assert value == pytest.approx(0.25 * math.log(1.5) + 0.25 * math.log(2.0))
  assert credit.psi([1, 2, 3, 4], [1, 2, 3, 4], bins=2) == pytest.approx(0.0)


def test_calibration_brier_logloss():
  y = np.array([0, 1, 0, 1])
  p = np.array([0.05, 0.05, 0.95, 0.95])
  # Two occupied bins, each with mean score 0.05 / 0.95 and observed rate 0.5.
  assert credit.expected_calibration_error(y, p) == pytest.approx(0.45)
  assert credit.brier_score(y, p) == pytest.approx((0.05**2 + 0.95**2) / 2)
  assert credit.log_loss([1], [0.5]) == pytest.approx(math.log(2))


def test_fairness_by_hand():
  y = np.array([0, 0, 1, 0, 0, 1])
  declined = np.array([0, 1, 1, 0, 0, 0], bool)
  groups = np.array([0, 0, 0, 1, 1, 1])
  out = fairness.fairness_report(y, declined, groups)
  # Approval: group 0 1/3, group 1 1; among goods: group 0 1/2, group 1 1.
  assert out["dp_difference"] == pytest.approx(2 / 3)
  assert out["di_ratio"] == pytest.approx(1 / 3)
  assert out["eo_difference"] == pytest.approx(0.5)


def test_kupiec_by_hand():
  hits = np.zeros(100, bool)
  hits[[10, 50, 90]] = True
  lr, p = market.kupiec_pof(hits, level=0.99)
  # -2 [97 ln .99 + 3 ln .01 - 97 ln .97 - 3 ln .03]
  assert lr == pytest.approx(2.6323526, rel=1e-6)
  assert p == pytest.approx(0.1047065, rel=1e-5)
  # Exactly the expected rate: LR 0, p 1. No hit at all: LR = -2 n ln(1 - p).
  exact = np.zeros(100, bool)
  exact[5] = True
  assert market.kupiec_pof(exact)[0] == pytest.approx(0.0, abs=1e-12)
  assert market.kupiec_pof(np.zeros(100, bool))[0] == pytest.approx(-200 * math.log(0.99))


def test_christoffersen_by_hand():
  hits = [0, 1, 1, 0, 0, 0, 1, 0]
  # Transitions: n00=2, n01=2, n10=2, n11=1.
  pi01, pi11, pi = 2 / 4, 1 / 3, 3 / 7
  log_alt = 2 * math.log(1 - pi01) + 2 * math.log(pi01) + 2 * math.log(1 - pi11) + math.log(pi11)
  log_null = 4 * math.log(1 - pi) + 3 * math.log(pi)
  lr, _ = market.christoffersen_independence(hits)
  assert lr == pytest.approx(-2 * (log_null - log_alt))


def test_backtest_counts_exceedances():
  r = np.array([-3.0, 0.5, -1.0, 2.0])
  var = np.array([2.0, 2.0, 0.5, 2.0])
  out = market.backtest(r, var, vol=np.ones(4), mean=np.array([-1, 1, 1, 1.0]))
  assert out["exceedances"] == 2 and out["exceedance_rate"] == 0.5
  assert out["direction_accuracy"] == pytest.approx(0.75)
  assert out["qlike"] == pytest.approx(np.mean(r**2))


@pytest.mark.parametrize(
  "cls,kwargs",
  [
    (TabularLogistic, {}),
    pytest.param(TabularMLP, dict(hidden=(8,)), marks=pytest.mark.slow),
    pytest.param(FTTransformer, dict(dim=8, num_layers=1, num_heads=2), marks=pytest.mark.slow),
  ],
)
def test_integrated_gradients_completeness(cls, kwargs):
  model = cls(num_classes=2, cardinalities=(3, 4), **kwargs)
  rng = np.random.default_rng(0)
  x = {
    "numeric": rng.normal(size=(5, 3)).astype(np.float32),
    "categorical": rng.integers(0, 3, (5, 2)).astype(np.int32),
  }
  variables = model.init(jax.random.PRNGKey(0), x, train=False)
  if cls is TabularLogistic:  # zero-initialised embeddings: give them values
    variables = jax.tree.map(lambda a: a + 0.3, variables)
  attr, gap = explain.integrated_gradients(model, variables, x, steps=256)
  assert attr.shape == (5, 5)
  # Attributions of a row add up to f(x) - f(baseline).
  np.testing.assert_allclose(attr.sum(axis=1), gap, atol=2e-2 * max(1.0, np.abs(gap).max()))
  if cls is TabularLogistic:  # linear model: IG is exact, (x - 0) * weight for numerics
    w = np.asarray(variables["params"]["numeric"]["kernel"])
    np.testing.assert_allclose(
      attr[:, :3], x["numeric"] * (w[:, 1] - w[:, 0]), rtol=1e-4, atol=1e-5
    )


def _market_batches(days, rng, scale=1.0):
  n = len(days)
  out = np.zeros((n, 4), np.float32)
  out[:, 3] = scale  # the scale column: vol = scale * exp(0)
  return [
    {
      "logits": out,
      "target": rng.normal(0, scale, n).astype(np.float32),
      "day": np.asarray(days, np.int32),
      "mask": np.ones(n, bool),
    }
  ]


def test_market_evaluator_filtered_hs_calibrates_on_earlier_days_only():
  from research.metrics.evaluators.finance import MarketRiskEvaluator

  rng = np.random.default_rng(0)
  test = _market_batches(np.arange(600, 1000), rng)
  calib = _market_batches(np.arange(100, 600), rng)
  predict = lambda b: b
  ev = MarketRiskEvaluator("test", lambda: test, batches_for=lambda split: calib)
  scalars, artifacts = ev.run(predict)
  z = np.quantile(calib[0]["target"], 0.01)
  assert scalars["test/tail_quantile"] == pytest.approx(z, rel=1e-6)
  np.testing.assert_allclose(artifacts["test/forecasts"]["var"], -z, rtol=1e-6)
  assert 0 <= scalars["test/kupiec_p"] <= 1
  late = _market_batches(np.arange(500, 700), rng)  # reaches into the evaluated days
  ev = MarketRiskEvaluator("test", lambda: test, batches_for=lambda split: late)
  with pytest.raises(ValueError, match="look ahead"):
    ev.run(predict)


@pytest.mark.parametrize(
  "name,kwargs",
  [("lstm_forecaster", dict(hidden=4)), ("transformer_forecaster", dict(dim=8, num_heads=2))],
)
def test_forecasters_scale_by_the_target_assets_ewma_volatility(name, kwargs):
  """[B, T, A] -> [B, 3 + 1]: mean, log-vol, tail multiple (one learned scalar) and the
  target asset's EWMA volatility, the unit the outputs are in."""
  x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 10, 4)), jnp.float32)
  model = build_model(name, num_outputs=3, num_layers=1, target_asset=2, **kwargs)
  variables = model.init(jax.random.key(0), x, train=False)
  out = model.apply(variables, x, train=False)
  assert out.shape == (3, 4) and out.dtype == jnp.float32
  np.testing.assert_allclose(out[:, 3], ewma_volatility(x, 0.94)[:, 2], rtol=1e-6)
  np.testing.assert_array_equal(out[:, 2], out[0, 2])  # the tail multiple is shared
  # Scaling every input scales the volatility column and leaves the rest unchanged.
  doubled = model.apply(variables, 2 * x, train=False)
  np.testing.assert_allclose(doubled[:, 3], 2 * out[:, 3], rtol=1e-5)
  np.testing.assert_allclose(doubled[:, :3], out[:, :3], rtol=1e-4, atol=1e-5)
