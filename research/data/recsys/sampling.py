"""Negative sampling, the NCF candidate protocol and padded histories (numpy, vectorised).

Negatives are drawn from a generator the caller passes in: the training
pipeline hands each batch one derived from (seed, batch number), so the
negatives are re-drawn every epoch yet a resumed run redraws exactly the same
ones (no stateful RNG to checkpoint).
"""

from __future__ import annotations

import numpy as np


class PairSet:
  """A set of (user, item) index pairs with vectorised membership tests."""

  def __init__(self, users: np.ndarray, items: np.ndarray, num_items: int):
    self.num_items = int(num_items)
    self.keys = np.unique(
      np.asarray(users, np.int64) * self.num_items + np.asarray(items, np.int64)
    )

  def contains(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """bool, broadcast shape of `users` and `items`."""
    keys = np.asarray(users, np.int64) * self.num_items + np.asarray(items, np.int64)
    if not len(self.keys):
      return np.zeros(keys.shape, bool)
    pos = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
    return self.keys[pos] == keys


def sample_negatives(
  users: np.ndarray,
  num: int,
  num_items: int,
  exclude: PairSet,
  rng: np.random.Generator,
  max_rounds: int = 100,
) -> np.ndarray:
  """Items int32 [*users.shape, num] drawn uniformly from 1..num_items-1 (never OOV 0),
  none of them in `exclude` for its user (rejection sampling, redrawing only the
  rejected entries each round)."""
  users = np.asarray(users)
  shape = users.shape + (num,)
  u = np.broadcast_to(users[..., None], shape)
  items = rng.integers(1, num_items, size=shape)
  bad = exclude.contains(u, items)
  for _ in range(max_rounds):
    if not bad.any():
      return items.astype(np.int32)
    items[bad] = rng.integers(1, num_items, size=int(bad.sum()))
    bad = exclude.contains(u, items)
  raise ValueError(
    f"Could not draw {num} negatives for some users in {max_rounds} rounds: they "
    f"have interacted with almost all {num_items - 1} items. Lower the number of "
    "negatives or drop such users."
  )


def ncf_candidates(
  users: np.ndarray,
  positives: np.ndarray,
  num_items: int,
  exclude: PairSet,
  num_negatives: int = 99,
  seed: int = 0,
) -> np.ndarray:
  """The NCF protocol (He et al. 2017): each test positive with `num_negatives`
  items the user never interacted with (train positives and the test item
  itself excluded), fixed by `seed`.

  Returns:
    int32 [N, 1 + num_negatives]; column 0 is the positive.
  """
  rng = np.random.default_rng([seed, 99])
  users = np.asarray(users, np.int64)
  positives = np.asarray(positives, np.int64)
  both = PairSet(
    np.concatenate([exclude.keys // exclude.num_items, users]),
    np.concatenate([exclude.keys % exclude.num_items, positives]),
    num_items,
  )
  negatives = sample_negatives(users, num_negatives, num_items, both, rng)
  return np.concatenate([positives[:, None].astype(np.int32), negatives], axis=1)


def histories(
  users: np.ndarray, items: np.ndarray, timestamps: np.ndarray, num_users: int, max_len: int
) -> tuple[np.ndarray, np.ndarray]:
  """Each user's items in time order, the last `max_len`, left-padded with 0.

  Returns:
    (int32 [num_users, max_len] (row u = user u), int32 [num_users] full lengths).
  """
  order = np.lexsort((np.arange(len(users)), timestamps, users))
  u, it = np.asarray(users)[order], np.asarray(items)[order]
  counts = np.bincount(u, minlength=num_users)
  starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
  # Position of each interaction counted from the user's last one (0 = latest).
  from_end = (starts[u] + counts[u] - 1) - np.arange(len(u))
  keep = from_end < max_len
  out = np.zeros((num_users, max_len), np.int32)
  out[u[keep], max_len - 1 - from_end[keep]] = it[keep]
  return out, counts.astype(np.int32)


def padded_sets(users: np.ndarray, items: np.ndarray, num_users: int) -> np.ndarray:
  """Each user's items (any order), right-padded with 0: int32 [num_users, max count]."""
  order = np.argsort(users, kind="stable")
  u, it = np.asarray(users)[order], np.asarray(items)[order]
  counts = np.bincount(u, minlength=num_users)
  width = max(int(counts.max(initial=0)), 1)
  starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
  col = np.arange(len(u)) - starts[u]
  out = np.zeros((num_users, width), np.int32)
  out[u, col] = it
  return out
