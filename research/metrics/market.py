"""Market-risk backtests on host arrays.

Conventions: returns r_t (percent log returns); VaR_t > 0 is the forecast
loss not exceeded with probability `level` (0.99), made with information up
to day t - 1; an exceedance (hit) is r_t < -VaR_t. Volatility forecasts are
sigma_t (so the variance forecast is sigma_t^2), compared with r_t^2.

* Kupiec (1995) proportion-of-failures: LR = -2 ln[(1-p)^(n-x) p^x /
  ((1-x/n)^(n-x) (x/n)^x)] ~ chi2(1), p = 1 - level.
* Christoffersen (1998) independence: first-order Markov chain of hits,
  LR = -2 ln[L(pi) / L(pi01, pi11)] ~ chi2(1).
* QLIKE = mean(ln sigma^2 + r^2 / sigma^2) (lower is better; robust to noise
  in the r^2 proxy, Patton 2011); MSE = mean((r^2 - sigma^2)^2).
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def _xlogy(x, y):
  return 0.0 if x == 0 else x * np.log(y)


def kupiec_pof(hits, level: float = 0.99) -> tuple[float, float]:
  """(LR statistic, p-value) of the unconditional coverage test."""
  hits = np.asarray(hits, bool)
  n, x = len(hits), int(hits.sum())
  if n == 0:
    raise ValueError("kupiec_pof needs at least one day.")
  p = 1.0 - level
  pi = x / n
  log_null = _xlogy(n - x, 1 - p) + _xlogy(x, p)
  log_alt = _xlogy(n - x, 1 - pi) + _xlogy(x, pi)
  lr = max(-2.0 * (log_null - log_alt), 0.0) + 0.0  # + 0.0: no '-0.0' in reports
  return float(lr), float(stats.chi2.sf(lr, 1))


def christoffersen_independence(hits) -> tuple[float, float]:
  """(LR statistic, p-value) of the independence of consecutive hits."""
  hits = np.asarray(hits, np.int64)
  if len(hits) < 2:
    raise ValueError("christoffersen_independence needs at least two days.")
  prev, cur = hits[:-1], hits[1:]
  n00 = int(np.sum((prev == 0) & (cur == 0)))
  n01 = int(np.sum((prev == 0) & (cur == 1)))
  n10 = int(np.sum((prev == 1) & (cur == 0)))
  n11 = int(np.sum((prev == 1) & (cur == 1)))
  pi01 = n01 / max(n00 + n01, 1)
  pi11 = n11 / max(n10 + n11, 1)
  pi = (n01 + n11) / (n00 + n01 + n10 + n11)
  log_null = _xlogy(n00 + n10, 1 - pi) + _xlogy(n01 + n11, pi)
  log_alt = _xlogy(n00, 1 - pi01) + _xlogy(n01, pi01) + _xlogy(n10, 1 - pi11) + _xlogy(n11, pi11)
  lr = max(-2.0 * (log_null - log_alt), 0.0) + 0.0
  return float(lr), float(stats.chi2.sf(lr, 1))


def qlike(returns, vol) -> float:
  r2, s2 = np.square(np.asarray(returns, np.float64)), np.square(np.asarray(vol, np.float64))
  return float(np.mean(np.log(s2) + r2 / s2))


def backtest(returns, var, *, vol=None, mean=None, level: float = 0.99) -> dict[str, float]:
  """Every backtest number for one model over one out-of-sample period (days in order)."""
  returns = np.asarray(returns, np.float64)
  var = np.asarray(var, np.float64)
  if returns.shape != var.shape:
    raise ValueError(f"returns {returns.shape} and VaR {var.shape} differ in length.")
  hits = returns < -var
  k_lr, k_p = kupiec_pof(hits, level)
  c_lr, c_p = christoffersen_independence(hits)
  out = {
    "days": float(len(returns)),
    "exceedances": float(hits.sum()),
    "exceedance_rate": float(hits.mean()),
    "kupiec_lr": k_lr,
    "kupiec_p": k_p,
    "christoffersen_lr": c_lr,
    "christoffersen_p": c_p,
    "mean_var": float(var.mean()),
  }
  if vol is not None:
    vol = np.asarray(vol, np.float64)
    out["qlike"] = qlike(returns, vol)
    out["vol_mse"] = float(np.mean(np.square(np.square(returns) - np.square(vol))))
  if mean is not None:
    # Direction of the next move as the sign of the forecast mean (0 = up).
    out["direction_accuracy"] = float(np.mean((np.asarray(mean) >= 0) == (returns > 0)))
  return out
