"""Returns, rolling windows and walk-forward (expanding-window) folds. Pure numpy.

Day indices are positions in the returns series. A window for target day t
has inputs on days [t - window, t) and its target on day t, so an input never
shares a day with its own target. Walk-forward: the evaluation period (the
last `test_fraction` of the target days) is cut into `num_folds` contiguous
blocks; fold k trains on every window whose target precedes block k (an
expanding window) and is evaluated on block k. So no training target of fold
k lies at or after its first evaluation day, and the union of the blocks is
every evaluation day exactly once, in time order.
"""

from __future__ import annotations

import numpy as np


def log_returns(prices: np.ndarray, scale: float = 100.0) -> np.ndarray:
  """float64 [T, A] prices -> [T - 1, A] log returns in percent (scale=100)."""
  prices = np.asarray(prices, np.float64)
  if prices.ndim == 1:
    prices = prices[:, None]
  if (prices <= 0).any() or not np.isfinite(prices).all():
    bad = np.argwhere(~(np.isfinite(prices) & (prices > 0)))[0]
    raise ValueError(
      f"prices must be finite and positive; row {bad[0]} column {bad[1]} is {prices[tuple(bad)]!r}."
    )
  return scale * np.diff(np.log(prices), axis=0)


def window_indices(target_days: np.ndarray, window: int) -> np.ndarray:
  """int64 [n, window]: the input days [t - window, t) of each target day t [n]."""
  target_days = np.asarray(target_days, np.int64)
  if (target_days < window).any():
    raise ValueError(
      f"target days must be >= window={window} (the first {window} days have no full input window)."
    )
  return target_days[:, None] - window + np.arange(window)[None, :]


def evaluation_blocks(
  num_days: int, window: int, test_fraction: float, num_folds: int
) -> list[np.ndarray]:
  """The walk-forward evaluation blocks: `num_folds` contiguous day ranges [n_k]."""
  if not 0 < test_fraction < 1:
    raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}.")
  if num_folds < 1:
    raise ValueError(f"num_folds must be >= 1, got {num_folds}.")
  days = np.arange(window, num_days)
  start = len(days) - round(test_fraction * len(days))
  if start < 1 or len(days) - start < num_folds:
    raise ValueError(
      f"{num_days} days with window {window}: too few for test_fraction "
      f"{test_fraction} and {num_folds} folds."
    )
  return list(np.array_split(days[start:], num_folds))


def fold_days(
  num_days: int,
  window: int,
  *,
  test_fraction: float = 0.5,
  num_folds: int = 4,
  fold: int = -1,
  validation_days: int = 0,
) -> dict[str, np.ndarray]:
  """{'train', 'validation', 'test': target days} of one fold.

  fold = k in [0, num_folds): train on every target before block k (expanding
  window), test on block k. fold = -1: train on every target before the first
  block, test on the whole evaluation period (one fit, parameters fixed, still
  strictly forward: each forecast uses inputs before its day only).
  validation_days > 0 moves the last that many days before the test block
  from 'train' to 'validation' (held out from training, e.g. to calibrate
  the VaR on out-of-sample residuals; still before every test day).
  """
  blocks = evaluation_blocks(num_days, window, test_fraction, num_folds)
  if fold == -1:
    test = np.concatenate(blocks)
  elif 0 <= fold < num_folds:
    test = blocks[fold]
  else:
    raise ValueError(
      f"fold must be -1 (whole evaluation period) or in [0, {num_folds}), got {fold}."
    )
  before = np.arange(window, test[0])
  if validation_days < 0 or validation_days >= len(before):
    raise ValueError(
      f"validation_days={validation_days} must be in [0, {len(before)}) (the "
      f"{len(before)} days before the test block)."
    )
  cut = len(before) - validation_days
  return {"train": before[:cut], "validation": before[cut:], "test": test}
