"""ID vocabularies built from the training split only.

Index 0 is the explicit out-of-vocabulary (OOV) index: an evaluation user or
item never seen in training maps to 0, so nothing about the test split leaks
into the vocabulary (or into embedding table sizes). Known IDs map to
1..size-1 in sorted raw-ID order. Index 0 also pads user histories.
"""

from __future__ import annotations

import numpy as np

OOV = 0


class Vocab:
  """Raw IDs <-> dense indices; `size` = number of known IDs + 1 (the OOV slot)."""

  def __init__(self, raw_ids: np.ndarray, name: str = "ids"):
    self.name = name
    self.ids = np.unique(np.asarray(raw_ids))  # sorted; index i+1 <-> ids[i]
    self.size = len(self.ids) + 1

  def lookup(self, raw: np.ndarray) -> np.ndarray:
    """Raw IDs [N] -> int32 indices [N]; unknown -> OOV (0)."""
    raw = np.asarray(raw)
    if not len(self.ids) or not len(raw):
      return np.zeros(len(raw), np.int32)
    try:
      pos = np.searchsorted(self.ids, raw)
    except TypeError as e:
      raise ValueError(
        f"{self.name}: evaluation IDs of type {raw.dtype} cannot be compared with "
        f"training IDs of type {self.ids.dtype}; read both splits the same way."
      ) from e
    pos = np.minimum(pos, len(self.ids) - 1)
    known = self.ids[pos] == raw
    return np.where(known, pos + 1, OOV).astype(np.int32)

  def raw(self, index: np.ndarray) -> np.ndarray:
    """Indices -> raw IDs (OOV -> None)."""
    index = np.asarray(index)
    out = np.empty(index.shape, object)
    known = index > 0
    out[known] = self.ids[index[known] - 1]
    out[~known] = None
    return out

  def to_json(self) -> dict:
    return {"name": self.name, "ids": [v.item() if hasattr(v, "item") else v for v in self.ids]}
