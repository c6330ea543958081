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


class ConcatSource:
  """Several sources with the same features, one after another."""

  def __init__(self, sources):
    self.sources = list(sources)
    keys = [set(s.features) for s in self.sources]
    if any(k != keys[0] for k in keys):
      raise ValueError(f"ConcatSource: sources have different features: {keys}.")
    self.features = self.sources[0].features
    self._offsets = np.cumsum([0] + [len(s) for s in self.sources])
    for attr in ("class_names",):
      if hasattr(self.sources[0], attr):
        setattr(self, attr, getattr(self.sources[0], attr))

  def __len__(self) -> int:
    return int(self._offsets[-1])

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    if not 0 <= index < len(self):
      raise IndexError(f"ConcatSource: index {index} out of range for {len(self)} examples.")
    which = int(np.searchsorted(self._offsets, index, side="right") - 1)
    return self.sources[which][index - int(self._offsets[which])]


class IndexedSource:
  """The examples of `source` at `indices` (a subset, a sample, a permutation)."""

  def __init__(self, source, indices):
    self.source = source
    self.indices = np.asarray(indices, np.int64)
    self.features = source.features

  def __len__(self) -> int:
    return len(self.indices)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    return self.source[int(self.indices[index])]
