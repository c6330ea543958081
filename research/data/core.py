"""The one data-source shape every domain uses.

A `DataSource` is random access: `len(source)` examples, `source[i]` returns a
flat `dict[str, np.ndarray]` (one example, no batch dimension), and
`source.features` describes each key. Per-process sharding, shuffling,
preprocessing and batching happen once, in `research.data.pipeline`, never in a
source (big_vision `datasets/core.py` habit).

A source may also offer `get_batch(indices) -> {key: [b, ...]}`, equal to
stacking `source[i]` for `i` in `indices` (int `[b]`): in-memory sources do it
with one fancy index per key, and the pipeline then reads a whole batch at
once instead of `b` Python calls.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@dataclasses.dataclass(frozen=True)
class Feature:
  """Shape and dtype of one key of an example (no batch dimension).

  `num_classes` is set for categorical labels; `None` elsewhere. A `None` in
  `shape` is a dimension that varies between examples or data sets.
  """

  shape: tuple[int | None, ...]
  dtype: str
  num_classes: int | None = None


@runtime_checkable
class DataSource(Protocol):
  """Random-access examples: `len`, `[i] -> dict of numpy`, `features`.

  A 0-d value may be a numpy scalar (`np.int32`, `np.str_` for text) rather
  than a 0-d array; both stack the same way into a batch.
  """

  @property
  def features(self) -> Mapping[str, Feature]: ...

  def __len__(self) -> int: ...

  def __getitem__(self, index: int) -> Mapping[str, np.ndarray | np.generic]: ...


def _check_indices(indices, length: int, name: str) -> np.ndarray:
  """`indices` as int64 `[b]`, each in `[-length, length)` like `source[i]`; else IndexError."""
  indices = np.asarray(indices)
  if indices.ndim != 1 or (indices.size and not np.issubdtype(indices.dtype, np.integer)):
    raise IndexError(
      f"{name}: get_batch needs 1-D integer indices, got shape {indices.shape} "
      f"dtype {indices.dtype}."
    )
  indices = indices.astype(np.int64, copy=False)
  if indices.size and not (-length <= indices.min() and indices.max() < length):
    bad = indices[(indices < -length) | (indices >= length)][0]
    raise IndexError(f"{name}: index {bad} out of range for {length} examples.")
  return indices


class ArraySource:
  """A `DataSource` over in-memory arrays that share their first dimension.

  Args:
    arrays: `{key: array[num_examples, ...]}`.
    num_classes: optional `{key: n}` for categorical keys (e.g. `label`).
    name: shown in error messages and `repr`.
  """

  # Metadata a loader may attach; absent unless it does (readers use getattr/hasattr).
  class_names: Sequence[str]  # label index -> name
  feature_names: Sequence[str]  # the columns of a tabular 'inputs' [F]
  group_names: Sequence[str]  # sensitive-attribute group index -> name (fairness)

  def __init__(
    self,
    arrays: Mapping[str, np.ndarray],
    *,
    num_classes: Mapping[str, int] | None = None,
    name: str = "arrays",
  ):
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

  def get_batch(self, indices) -> dict[str, np.ndarray]:
    """`{key: array[b, ...]}` for int `indices` `[b]` (new arrays, one fancy index per key)."""
    indices = _check_indices(indices, self._len, self.name)
    return {k: v[indices] for k, v in self._arrays.items()}

  def column(self, key: str) -> np.ndarray:
    """`key` of every example, `[num_examples, ...]` (a read-only view, no copy)."""
    view = self._arrays[key].view()
    view.flags.writeable = False
    return view

  def __repr__(self) -> str:
    return f"ArraySource({self.name!r}, n={self._len}, features={self.features})"


class ConcatSource:
  """Several sources with the same features, one after another.

  Has `get_batch` only when every source has one (readers test `hasattr`;
  stacking e.g. raw texts just to split them again would only cost time).
  """

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
    if all(hasattr(s, "get_batch") for s in self.sources):
      self.get_batch = self._get_batch

  def __len__(self) -> int:
    return int(self._offsets[-1])

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    if not 0 <= index < len(self):
      raise IndexError(f"ConcatSource: index {index} out of range for {len(self)} examples.")
    which = int(np.searchsorted(self._offsets, index, side="right") - 1)
    return self.sources[which][index - int(self._offsets[which])]

  def _get_batch(self, indices) -> dict[str, np.ndarray]:
    """`{key: [b, ...]}` for `indices` `[b]` in `[0, len)`: each source read once."""
    indices = _check_indices(indices, len(self), "ConcatSource")
    if indices.size and indices.min() < 0:
      raise IndexError(
        f"ConcatSource: index {indices.min()} out of range for {len(self)} examples."
      )
    if not indices.size:
      raise IndexError("ConcatSource: get_batch needs at least one index.")
    which = np.searchsorted(self._offsets, indices, side="right") - 1
    parts, positions = [], []
    for s in np.unique(which):
      at = np.flatnonzero(which == s)
      local = indices[at] - self._offsets[s]
      parts.append(self.sources[s].get_batch(local))
      positions.append(at)
    # Concatenating promotes dtypes exactly as stacking the examples would.
    order = np.concatenate(positions)
    out = {}
    for key in parts[0]:
      values = np.concatenate([p[key] for p in parts])
      out[key] = np.empty_like(values)
      out[key][order] = values
    return out


class IndexedSource:
  """The examples of `source` at `indices` (a subset, a sample, a permutation).

  Has `get_batch` only when `source` has one.
  """

  # Set by whoever cuts the subset (research.data.holdout); absent otherwise.
  name: str
  class_names: Sequence[str]

  def __init__(self, source, indices):
    self.source = source
    self.indices = np.asarray(indices, np.int64)
    self.features = source.features
    if hasattr(source, "get_batch"):
      self.get_batch = self._get_batch

  def __len__(self) -> int:
    return len(self.indices)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    return self.source[int(self.indices[index])]

  def _get_batch(self, indices) -> dict[str, np.ndarray]:
    """`{key: [b, ...]}` for `indices` `[b]`, read with the inner source's `get_batch`."""
    return self.source.get_batch(self.indices[_check_indices(indices, len(self), "IndexedSource")])


class DataNotFoundError(FileNotFoundError):
  """No step of a data set's resolution order found the data; the message says what was tried."""


def short_error(e: BaseException) -> str:
  """One-line, bounded description of an exception for the tried-list."""
  text = " ".join(str(e).split())
  return f"{type(e).__name__}: {text[:400]}{'...' if len(text) > 400 else ''}"
