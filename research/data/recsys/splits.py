"""Train/test splits of an `Interactions` table. Nothing here looks at IDs'
vocabularies: those are built afterwards from the training split only.

* 'random': a seeded permutation; `test_fraction` of all interactions go to test.
* 'leave_last_out': per user, the latest interaction (by timestamp; ties keep
  file order) goes to test, the rest to train. Users with one interaction
  stay wholly in train (nothing to hold out).
* 'time': a global cutoff; interactions at or after it go to test. `cutoff`
  is a timestamp, or with `cutoff=None` the `1 - test_fraction` quantile.
"""

from __future__ import annotations

import numpy as np

from research.data.recsys.interactions import Interactions

SPLITS = ("random", "leave_last_out", "time", "predefined")


def random_split(data: Interactions, *, test_fraction: float, seed: int):
  if not 0.0 < test_fraction < 1.0:
    raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}.")
  order = np.random.default_rng([seed, 1]).permutation(len(data))
  n_test = round(test_fraction * len(data))
  test = np.sort(order[:n_test])
  train = np.sort(order[n_test:])
  return data.take(train), data.take(test)


def leave_last_out(data: Interactions):
  """Per user the latest interaction goes to test (stable over equal timestamps)."""
  n = len(data)
  # lexsort: last key is primary -> group by user, then timestamp, then row.
  users = _codes(data.user)
  order = np.lexsort((np.arange(n), data.timestamp, users))
  sorted_users = users[order]
  last = np.ones(n, bool)
  last[:-1] = sorted_users[:-1] != sorted_users[1:]
  first = np.ones(n, bool)
  first[1:] = sorted_users[1:] != sorted_users[:-1]
  is_test = np.zeros(n, bool)
  is_test[order[last & ~first]] = True  # single-interaction users stay in train
  return data.take(np.flatnonzero(~is_test)), data.take(np.flatnonzero(is_test))


def time_split(data: Interactions, *, cutoff: int | None = None, test_fraction: float = 0.2):
  if cutoff is None:
    cutoff = int(np.quantile(data.timestamp, 1.0 - test_fraction))
  is_test = data.timestamp >= cutoff
  if is_test.all() or not is_test.any():
    raise ValueError(
      f"time split: cutoff {cutoff} puts {int(is_test.sum())} of {len(data)} "
      "interactions in test; pick a cutoff inside the data's time range "
      f"[{data.timestamp.min()}, {data.timestamp.max()}]."
    )
  return data.take(np.flatnonzero(~is_test)), data.take(np.flatnonzero(is_test))


def split(
  data: Interactions,
  method: str,
  *,
  seed: int = 0,
  test_fraction: float = 0.2,
  cutoff: int | None = None,
):
  """(train, test) `Interactions` by `method` (see the module docstring)."""
  if method == "random":
    return random_split(data, test_fraction=test_fraction, seed=seed)
  if method == "leave_last_out":
    return leave_last_out(data)
  if method == "time":
    return time_split(data, cutoff=cutoff, test_fraction=test_fraction)
  raise ValueError(
    f"Unknown split {method!r}; valid: {', '.join(SPLITS)} ('predefined' only "
    "for sources that ship a split: ml-100k with fold=, ncf)."
  )


def _codes(values: np.ndarray) -> np.ndarray:
  """Dense int codes of raw IDs (any dtype), for sorting and grouping."""
  return np.unique(values, return_inverse=True)[1].reshape(-1)
