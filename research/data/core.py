"""The one data-source shape every domain uses.

A `DataSource` is random access: `len(source)` examples, `source[i]` returns a
flat `dict[str, np.ndarray]` (one example, no batch dimension), and
`source.features` describes each key. Per-process sharding, shuffling,
preprocessing and batching happen once, in `research.data.pipeline`, never in a
source (big_vision `datasets/core.py` habit).
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, Protocol, runtime_checkable

import numpy as np


@dataclasses.dataclass(frozen=True)
class Feature:
  """Shape and dtype of one key of an example (no batch dimension).

  `num_classes` is set for categorical labels; `None` elsewhere.
  """

  shape: tuple[int, ...]
  dtype: str
  num_classes: int | None = None


@runtime_checkable
class DataSource(Protocol):
  """Random-access examples: `len`, `[i] -> dict of numpy`, `features`."""

  features: Mapping[str, Feature]

  def __len__(self) -> int:
    ...

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    ...


class ArraySource:
  """A `DataSource` over in-memory arrays that share their first dimension.

  Args:
    arrays: `{key: array[num_examples, ...]}`.
    num_classes: optional `{key: n}` for categorical keys (e.g. `label`).
    name: shown in error messages and `repr`.
  """

  def __init__(self, arrays: Mapping[str, np.ndarray], *,
               num_classes: Mapping[str, int] | None = None, name: str = "arrays"):
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) != 1:
      raise ValueError(f"{name}: arrays must share their first dimension, got {lengths}.")
    self._arrays = {k: np.asarray(v) for k, v in arrays.items()}
    self._len = next(iter(lengths.values()))
    num_classes = dict(num_classes or {})
    self.name = name
    self.features = {
        k: Feature(tuple(v.shape[1:]), str(v.dtype), num_classes.get(k))
        for k, v in self._arrays.items()
    }

  def __len__(self) -> int:
    return self._len

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    if not -self._len <= index < self._len:
      raise IndexError(f"{self.name}: index {index} out of range for {self._len} examples.")
    return {k: v[index] for k, v in self._arrays.items()}

  def __repr__(self) -> str:
    return f"ArraySource({self.name!r}, n={self._len}, features={self.features})"
