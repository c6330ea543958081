"""Evaluators for finance risk: credit scoring, market-risk backtests, explanations.

Registered in `research.metrics.evaluators.EVALUATORS` as 'credit',
'market_risk' and 'integrated_gradients'. Each gathers the split's
predictions on the host (credit and market splits fit in memory) and scores
them with `research.metrics.credit` / `market` / `research.metrics.attribution`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from research.metrics import attribution as explain
from research.metrics import credit, market
from research.metrics.evaluators.base import to_host


def _host(x):
  return to_host(x)


def _collect(
  batches: Iterable, predict_fn, keys: Sequence[str], optional: Sequence[str] = ()
) -> dict[str, np.ndarray]:
  """Concatenated unmasked rows of 'logits', `keys` and (where present) `optional`."""
  required = ("logits",) + tuple(keys)
  parts: dict[str, list[np.ndarray]] = {k: [] for k in required}
  for batch in batches:
    out = predict_fn(batch)
    mask = _host(out["mask"]).astype(bool)
    for k in required:
      if k not in out:
        raise KeyError(f"predict_fn output lacks {k!r}; it has {sorted(out)}.")
      parts[k].append(_host(out[k])[mask])
    for k in optional:
      if k in out:
        parts.setdefault(k, []).append(_host(out[k])[mask])
  if not parts["logits"]:
    raise ValueError("The split yielded no batches.")
  return {k: np.concatenate(v) for k, v in parts.items()}


class CreditEvaluator:
  """Credit-scoring metrics of a binary classifier (class 1 = bad).

  Scalars '<name>/<metric>' (see `credit.credit_report`: roc_auc, gini, ks,
  brier, log_loss, ece, psi against the `reference_split` scores, accuracy at
  `cutoff`, fairness when batches carry `group_key`); artifacts
  '<name>/confusion_matrix', 'roc_curve', 'ks_curve', 'calibration',
  'score_distribution'.
  """

  wants_other_splits = True
  source_attributes = ("group_names",)

  def __init__(
    self,
    name: str,
    batches_fn: Callable[[], Iterable],
    *,
    every_steps: int = 0,
    batches_for: Callable[[str], Iterable] | None = None,
    reference_split: str | None = "train",
    cutoff: float = 0.5,
    label_key: str = "label",
    group_key: str = "group",
    num_classes: int = 2,
    class_names=None,
    group_names=None,
    topk=(),
  ):
    del topk, class_names, group_names
    if num_classes != 2:
      raise ValueError(
        f"Evaluator {name!r} (credit) needs a binary task, got {num_classes} classes."
      )
    if not 0 < cutoff < 1:
      raise ValueError(f"Evaluator {name!r}: cutoff must be in (0, 1), got {cutoff}.")
    self.name, self.every_steps = name, int(every_steps)
    self.batches_fn, self.batches_for = batches_fn, batches_for
    self.reference_split, self.cutoff = reference_split, float(cutoff)
    self.label_key, self.group_key = label_key, group_key
    self.class_names = ["good", "bad"]

  def run(self, predict_fn):
    rows = _collect(self.batches_fn(), predict_fn, [self.label_key], optional=[self.group_key])
    p = credit.probabilities_from_logits(rows["logits"])
    reference = None
    if self.reference_split and self.batches_for is not None:
      ref_rows = _collect(self.batches_for(self.reference_split), predict_fn, [])
      reference = credit.probabilities_from_logits(ref_rows["logits"])
    scalars, artifacts = credit.credit_report(
      rows[self.label_key],
      p,
      reference_scores=reference,
      cutoff=self.cutoff,
      groups=rows.get(self.group_key),
    )
    # Exact mean cross-entropy, like the classification evaluator's 'loss'.
    scalars["loss"] = scalars["log_loss"]
    scalars["num_examples"] = float(len(p))
    return (
      {f"{self.name}/{k}": v for k, v in scalars.items()},
      {f"{self.name}/{k}": v for k, v in artifacts.items()},
    )


class MarketRiskEvaluator:
  """Strictly forward backtest of a 'risk_forecast' model on its split's days.

  VaR (`var_method`):
    'filtered_hs' (filtered historical simulation, Barone-Adesi et al. 1999):
      VaR_t = -(mean_t + vol_t * z_q), z_q = the empirical (1 - level)
      quantile of the model's standardised residuals (y - mean) / vol on the
      `calibration_split` (the training days, all before the evaluated ones).
    'quantile_head': VaR_t = minus the model's own quantile output.

  Scalars '<name>/<metric>' from `market.backtest` (exceedance rate, Kupiec and
  Christoffersen statistics and p-values, QLIKE, volatility MSE, direction
  accuracy), 'loss' (mean Gaussian NLL), 'tail_quantile' (z_q); artifact
  '<name>/forecasts' {day, target, mean, vol, var, var_head}, in day order.
  """

  wants_other_splits = True

  def __init__(
    self,
    name: str,
    batches_fn: Callable[[], Iterable],
    *,
    every_steps: int = 0,
    batches_for: Callable[[str], Iterable] | None = None,
    target_key: str = "target",
    day_key: str = "day",
    level: float = 0.99,
    var_method: str = "filtered_hs",
    calibration_split: str = "train",
    topk=(),
    **unused,
  ):
    del topk, unused
    if var_method not in ("filtered_hs", "quantile_head"):
      raise ValueError(
        f"Evaluator {name!r}: var_method must be 'filtered_hs' or "
        f"'quantile_head', got {var_method!r}."
      )
    if var_method == "filtered_hs" and batches_for is None:
      raise ValueError(
        f"Evaluator {name!r}: var_method='filtered_hs' needs batches_for (the builder passes it)."
      )
    self.name, self.every_steps, self.batches_fn = name, int(every_steps), batches_fn
    self.batches_for, self.calibration_split = batches_for, calibration_split
    self.target_key, self.day_key, self.level = target_key, day_key, float(level)
    self.var_method = var_method

  def _forecasts(self, batches, predict_fn):
    from research.core.tasks import split_forecast

    rows = _collect(batches, predict_fn, [self.target_key, self.day_key])
    order = np.argsort(rows[self.day_key], kind="stable")
    mean, vol, q = (np.asarray(a, np.float64)[order] for a in split_forecast(rows["logits"]))
    return (
      mean,
      vol,
      -q,
      rows[self.target_key].astype(np.float64)[order],
      rows[self.day_key][order],
    )

  def run(self, predict_fn):
    mean, vol, var_head, y, day = self._forecasts(self.batches_fn(), predict_fn)
    scalars = {}
    if self.var_method == "filtered_hs":
      assert self.batches_for is not None, "__init__ requires it for filtered_hs"
      c_mean, c_vol, _, c_y, c_day = self._forecasts(
        self.batches_for(self.calibration_split), predict_fn
      )
      if len(c_day) and len(day) and c_day.max() >= day.min():
        raise ValueError(
          f"Evaluator {self.name!r}: calibration split "
          f"{self.calibration_split!r} reaches day {c_day.max()}, not before "
          f"the first evaluated day {day.min()} (that would look ahead)."
        )
      z = np.quantile((c_y - c_mean) / c_vol, 1.0 - self.level)
      var = -(mean + vol * z)
      scalars["tail_quantile"] = float(z)
    else:
      var = var_head
    scalars.update(market.backtest(y, var, vol=vol, mean=mean, level=self.level))
    scalars["loss"] = float(
      np.mean(0.5 * np.log(2 * np.pi) + np.log(vol) + 0.5 * np.square((y - mean) / vol))
    )
    forecasts = {
      "day": day,
      "target": y,
      "mean": mean,
      "vol": vol,
      "var": var,
      "var_head": var_head,
    }
    return (
      {f"{self.name}/{k}": v for k, v in scalars.items()},
      {f"{self.name}/forecasts": forecasts},
    )


class IntegratedGradientsEvaluator:
  """Per-feature integrated-gradients attributions of a tabular model on the
  first `max_examples` rows of the split; global importance = mean |IG|.

  Scalars '<name>/completeness_error' (mean |sum of attributions - (f(x) -
  f(x'))|, a check of the quadrature); artifact '<name>/feature_importance'
  {'names': [F], 'importance': float [F], 'mean_attribution': float [F]}.
  """

  source_attributes = ("feature_names",)

  def __init__(
    self,
    name: str,
    batches_fn: Callable[[], Iterable],
    *,
    every_steps: int = 0,
    steps: int = 32,
    max_examples: int = 512,
    feature_names=None,
    topk=(),
    **unused,
  ):
    del topk, unused
    self.name, self.every_steps, self.batches_fn = name, int(every_steps), batches_fn
    self.steps, self.max_examples = int(steps), int(max_examples)
    self.feature_names = list(feature_names) if feature_names is not None else None

  def run(self, predict_fn):
    if not hasattr(predict_fn, "variables"):
      raise ValueError(
        f"Evaluator {self.name!r} (integrated_gradients) needs a predict_fn with .model "
        "and .variables() (a research.train.builder.Predictor)."
      )
    numeric, categorical, n = [], [], 0
    for batch in self.batches_fn():
      mask = np.asarray(batch["mask"], bool)
      numeric.append(np.asarray(batch["numeric"])[mask])
      categorical.append(np.asarray(batch["categorical"])[mask])
      n += int(mask.sum())
      if n >= self.max_examples:
        break
    inputs = {
      "numeric": np.concatenate(numeric)[: self.max_examples],
      "categorical": np.concatenate(categorical)[: self.max_examples],
    }
    attr, gap = explain.integrated_gradients(
      predict_fn.model, predict_fn.variables(), inputs, steps=self.steps
    )
    names = self.feature_names or [f"x{i}" for i in range(attr.shape[1])]
    if len(names) != attr.shape[1]:
      raise ValueError(f"{len(names)} feature names for {attr.shape[1]} attributions.")
    error = float(np.mean(np.abs(attr.sum(axis=1) - gap)))
    artifact = {
      "names": names,
      "importance": np.abs(attr).mean(axis=0),
      "mean_attribution": attr.mean(axis=0),
    }
    return (
      {f"{self.name}/completeness_error": error, f"{self.name}/num_examples": float(len(attr))},
      {f"{self.name}/feature_importance": artifact},
    )
