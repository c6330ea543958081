"""Credit-scoring metrics on host arrays: how risk teams judge a score.

Scores `p` are predicted probabilities of the positive class (the 'bad'
outcome, e.g. default), labels `y` are 0/1. Every function takes the whole
split at once (a credit split fits in memory), so values are exact.

ROC AUC is scikit-learn's (the same function the classification evaluator
uses); Gini = 2 AUC - 1; KS = max over cut-offs of |TPR - FPR| (the largest
gap between the cumulative score distributions of bads and goods); PSI
compares a score distribution with a reference one (training) on the
reference's decile bins; ECE is the sample-weighted mean |observed rate -
mean score| over equal-width score bins.
"""

from __future__ import annotations

import numpy as np

from research.core import lazy
from research.metrics import fairness

with lazy.imports():
  from sklearn import metrics as skm

_EPS = 1e-6


def _check(y, p):
  y = np.asarray(y).astype(np.int64).reshape(-1)
  p = np.asarray(p, np.float64).reshape(-1)
  if y.shape != p.shape:
    raise ValueError(f"labels {y.shape} and scores {p.shape} differ in length.")
  if not np.isin(y, (0, 1)).all():
    raise ValueError("labels must be 0/1.")
  return y, p


def probabilities_from_logits(logits: np.ndarray) -> np.ndarray:
  """Two-class logits [n, 2] -> p(class 1) [n] (sigmoid of the logit gap, no overflow)."""
  logits = np.asarray(logits, np.float64)
  return 0.5 * (1.0 + np.tanh(0.5 * (logits[:, 1] - logits[:, 0])))


def roc_auc(y, p) -> float:
  y, p = _check(y, p)
  return float(skm.roc_auc_score(y, p))


def ks_statistic(y, p) -> tuple[float, float]:
  """(KS, the score at which it is reached)."""
  y, p = _check(y, p)
  fpr, tpr, thresholds = skm.roc_curve(y, p)
  # |.|: a score ranking goods above bads separates them just as much.
  i = int(np.argmax(np.abs(tpr - fpr)))
  # roc_curve's first threshold is +inf (nothing declined); report it as 1.
  return float(abs(tpr[i] - fpr[i])), float(min(thresholds[i], 1.0))


def ks_curve(y, p, points: int = 101) -> dict[str, np.ndarray]:
  """Cumulative share of bads and goods with score <= s, on a grid of s."""
  y, p = _check(y, p)
  grid = np.linspace(0, 1, points)
  bads, goods = np.sort(p[y == 1]), np.sort(p[y == 0])
  return {
    "score": grid,
    "cum_bad": np.searchsorted(bads, grid, side="right") / max(len(bads), 1),
    "cum_good": np.searchsorted(goods, grid, side="right") / max(len(goods), 1),
  }


def psi(reference, actual, bins: int = 10) -> float:
  """Population stability index of `actual` scores against `reference` scores.

  Bins are the reference's quantiles (deciles by default; repeated edges
  merged); PSI = sum_i (a_i - r_i) ln(a_i / r_i) over the bin shares, with
  shares floored at 1e-6 so an empty bin gives a large, finite value.
  """
  reference = np.asarray(reference, np.float64).reshape(-1)
  actual = np.asarray(actual, np.float64).reshape(-1)
  if not len(reference) or not len(actual):
    raise ValueError("psi needs non-empty reference and actual scores.")
  edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
  r = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1) / len(
    reference
  )
  a = np.bincount(np.searchsorted(edges, actual, side="right"), minlength=len(edges) + 1) / len(
    actual
  )
  r, a = np.maximum(r, _EPS), np.maximum(a, _EPS)
  return float(np.sum((a - r) * np.log(a / r)))


def calibration_curve(y, p, bins: int = 10) -> dict[str, np.ndarray]:
  """Equal-width bins on [0, 1]: mean score, observed rate and count per bin."""
  y, p = _check(y, p)
  index = np.clip((p * bins).astype(np.int64), 0, bins - 1)
  count = np.bincount(index, minlength=bins).astype(np.float64)
  sum_p = np.bincount(index, weights=p, minlength=bins)
  sum_y = np.bincount(index, weights=y.astype(np.float64), minlength=bins)
  safe = np.maximum(count, 1)
  return {"mean_score": sum_p / safe, "observed_rate": sum_y / safe, "count": count}


def expected_calibration_error(y, p, bins: int = 10) -> float:
  curve = calibration_curve(y, p, bins)
  n = curve["count"].sum()
  return float(np.sum(curve["count"] / n * np.abs(curve["observed_rate"] - curve["mean_score"])))


def brier_score(y, p) -> float:
  y, p = _check(y, p)
  return float(np.mean((p - y) ** 2))


def log_loss(y, p) -> float:
  y, p = _check(y, p)
  p = np.clip(p, 1e-12, 1 - 1e-12)
  return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def credit_report(
  y, p, *, reference_scores=None, cutoff: float = 0.5, groups=None, group_names=None
) -> tuple[dict[str, float], dict[str, object]]:
  """Every credit metric of one split, and the curves to plot.

  Args:
    y: int [n] labels (1 = positive / bad).
    p: float [n] scores p(bad).
    reference_scores: float [m] training scores for PSI (None: no PSI).
    cutoff: rows with p >= cutoff are predicted bad (declined).
    groups: optional int [n] sensitive group ids (-1 = unknown) for fairness.

  Returns:
    (scalars: roc_auc, gini, ks, brier, log_loss, ece, psi, accuracy,
     bad_rate, approval_rate and the fairness metrics;
     artifacts: confusion_matrix int [2, 2], roc_curve, ks_curve, calibration,
     score_distribution).
  """
  y, p = _check(y, p)
  auc = roc_auc(y, p)
  ks, ks_at = ks_statistic(y, p)
  declined = p >= cutoff
  scalars = {
    "roc_auc": auc,
    "gini": 2 * auc - 1,
    "ks": ks,
    "ks_score": ks_at,
    "brier": brier_score(y, p),
    "log_loss": log_loss(y, p),
    "ece": expected_calibration_error(y, p),
    "accuracy": float(np.mean(declined == y)),
    "bad_rate": float(y.mean()),
    "approval_rate": float(1 - declined.mean()),
  }
  if reference_scores is not None:
    scalars["psi"] = psi(reference_scores, p)
  if groups is not None:
    scalars.update(fairness.fairness_report(y, declined, groups))
  cm = np.zeros((2, 2), np.int64)
  np.add.at(cm, (y, declined.astype(np.int64)), 1)
  fpr, tpr, _ = skm.roc_curve(y, p)
  artifacts = {
    "confusion_matrix": cm,
    "roc_curve": {"fpr": fpr, "tpr": tpr, "auc": np.float64(auc)},
    "ks_curve": dict(ks_curve(y, p), ks=np.float64(ks)),
    "calibration": calibration_curve(y, p),
    "score_distribution": {
      "scores": p,
      "labels": y,
      **(
        {"reference": np.asarray(reference_scores, np.float64)}
        if reference_scores is not None
        else {}
      ),
    },
  }
  return scalars, artifacts
