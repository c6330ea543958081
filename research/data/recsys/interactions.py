"""The columnar interactions table every recommendation source returns.

An `Interactions` holds N interactions as parallel numpy columns (raw IDs, as
in the files: ints or strings) plus optional item metadata keyed by raw item
ID. Splitting and ID mapping happen later (`splits.py`, `vocab.py`), so a
source never decides anything about the protocol.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from research.core import lazy

with lazy.imports():
  import pandas as pd


@dataclasses.dataclass
class Interactions:
  """N interactions, as columns.

  Attributes:
    user: raw user IDs [N] (int64 or object).
    item: raw item IDs [N].
    rating: float32 [N] (1.0 for implicit data).
    timestamp: int64 [N] (seconds; row order when the source has none).
    items: optional item metadata, a DataFrame indexed by raw item ID with
      columns 'title' (str), 'genres' ('A|B|C' str) and 'year' (float, NaN if
      unknown); any may be missing.
    name: where it came from, for messages and the report.
  """

  user: np.ndarray
  item: np.ndarray
  rating: np.ndarray
  timestamp: np.ndarray
  items: pd.DataFrame | None = None
  name: str = "interactions"

  def __post_init__(self):
    n = len(self.user)
    lengths = {k: len(getattr(self, k)) for k in ("user", "item", "rating", "timestamp")}
    if len(set(lengths.values())) != 1:
      raise ValueError(f"{self.name}: interaction columns have different lengths {lengths}.")
    self.rating = np.asarray(self.rating, np.float32)
    self.timestamp = np.asarray(self.timestamp, np.int64)
    if n and not np.all(np.isfinite(self.rating)):
      raise ValueError(f"{self.name}: ratings contain NaN/Inf; clean the file or drop those rows.")

  def __len__(self) -> int:
    return len(self.user)

  def take(self, index) -> Interactions:
    """The rows at `index` (int [M] or bool [N]), same metadata."""
    return Interactions(
      self.user[index],
      self.item[index],
      self.rating[index],
      self.timestamp[index],
      self.items,
      self.name,
    )

  @classmethod
  def from_frame(
    cls,
    df: pd.DataFrame,
    *,
    user: str,
    item: str,
    rating: str | None,
    timestamp: str | None,
    items: pd.DataFrame | None = None,
    name: str = "interactions",
  ) -> Interactions:
    """From a DataFrame with the named columns (rating None -> implicit 1.0,
    timestamp None -> row order). Missing columns raise naming what exists."""
    needed = [c for c in (user, item, rating, timestamp) if c is not None]
    missing = [c for c in needed if c not in df.columns]
    if missing:
      raise ValueError(
        f"{name}: no column(s) {missing}; the columns are {list(df.columns)}. "
        "Name the right ones in config.data.options (user_col, item_col, "
        "rating_col, timestamp_col)."
      )
    n = len(df)
    return cls(
      user=df[user].to_numpy(),
      item=df[item].to_numpy(),
      rating=(df[rating].to_numpy(np.float32) if rating else np.ones(n, np.float32)),
      timestamp=(df[timestamp].to_numpy(np.int64) if timestamp else np.arange(n, dtype=np.int64)),
      items=items,
      name=name,
    )
