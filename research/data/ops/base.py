"""What a preprocessing op is, and the small helpers the op modules share.

An op maps one example to a new example: `op(example, rng) -> example`, where
`example` is a flat `dict[str, np.ndarray]` without batch dimension and `rng` is
the per-example `np.random.Generator` the grain pipeline hands to `random_map`
(or `None` in deterministic pipelines such as eval). Ops never mutate their
input dict or its arrays: they return a new dict, so a source's arrays are
never changed behind its back.

An op may also provide a batched implementation, `batch_fn(batch, rng) ->
batch`, on a dict of arrays with a leading batch dimension `[b, ...]` and one
`np.random.Generator` for the whole batch (random ops draw one value per
example from it, e.g. `b` coin flips at once). The pipeline runs it once per
batch instead of `b` Python calls; `research.data.ops.apply_batch` falls back
to the per-example `fn` for ops without one. For a deterministic op both must
give identical results; for a random op the same distribution per example.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Example = dict[str, np.ndarray]
Batch = dict[str, np.ndarray]  # every value has the same leading dimension b
Op = Callable[[Example, "np.random.Generator | None"], Example]


class NamedOp:
  """An `Op` that knows its spec string and whether it needs an rng.

  `random` lets the pipeline reject random ops in eval before any data is read,
  instead of failing on the first example. `batch_fn` is the optional batched
  implementation (see the module docstring). `keys_only` marks ops that only
  move keys around (keep, rename, drop): on examples that are not stacked yet
  they run per example, because stacking first would copy values (e.g. raw
  text) that they may be about to drop.
  """

  def __init__(
    self,
    spec: str,
    fn: Callable[[Example, Any], Example],
    *,
    random: bool = False,
    batch_fn: Callable[[Batch, Any], Batch] | None = None,
    keys_only: bool = False,
  ):
    self.spec = spec
    self.random = random
    self.keys_only = keys_only
    self._fn = fn
    self._batch_fn = batch_fn

  def _check_rng(self, rng) -> None:
    if self.random and rng is None:
      raise ValueError(
        f"Op '{self.spec}' is random and needs a np.random.Generator, got rng=None. "
        "Random ops belong in training pipelines; eval pipelines are deterministic."
      )

  def __call__(self, example: Example, rng: np.random.Generator | None = None) -> Example:
    self._check_rng(rng)
    return self._fn(example, rng)

  @property
  def batched(self) -> bool:
    """Whether the op has a batched implementation (`apply_batch`)."""
    return self._batch_fn is not None

  def apply_batch(self, batch: Batch, rng: np.random.Generator | None = None) -> Batch:
    """The op on a whole batch `{key: [b, ...]}`: one rng draws for every example."""
    if self._batch_fn is None:
      raise NotImplementedError(f"Op '{self.spec}' has no batched implementation.")
    self._check_rng(rng)
    return self._batch_fn(batch, rng)

  def __repr__(self) -> str:
    return f"Op({self.spec})"


def spec_string(name: str, *args: Any, **kwargs: Any) -> str:
  """`name(arg, key=value)` as it would be written in a spec string."""
  parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
  return f"{name}({', '.join(parts)})"


def get(example: Example, key: str, spec: str) -> np.ndarray:
  """`example[key]`, with an error naming the op and the keys that exist."""
  if key not in example:
    raise KeyError(f"Op '{spec}': example has no key {key!r}; keys are {sorted(example)}.")
  return np.asarray(example[key])


def replace(example: Example, key: str, value: np.ndarray) -> Example:
  """A new dict equal to `example` except for `key` (input left untouched)."""
  out = dict(example)
  out[key] = value
  return out


def image_hwc(x: np.ndarray, spec: str) -> np.ndarray:
  """Checks that `x` is an image `[H, W, C]`."""
  if x.ndim != 3:
    raise ValueError(f"Op '{spec}' expects an image [H, W, C], got shape {x.shape}.")
  return x


def image_bhwc(x: np.ndarray, spec: str) -> np.ndarray:
  """Checks that `x` is a batch of images `[b, H, W, C]`."""
  if x.ndim != 4:
    raise ValueError(f"Op '{spec}' expects a batch of images [b, H, W, C], got shape {x.shape}.")
  return x


def size_hw(size: Any, opname: str) -> tuple[int, int]:
  """`size` as `(h, w)`: an int means a square."""
  if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
    size = (int(size), int(size))
  if (
    not isinstance(size, (tuple, list))
    or len(size) != 2
    or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in size)
  ):
    raise ValueError(f"{opname}: size must be an int or a pair of ints, got {size!r}.")
  if min(size) <= 0:
    raise ValueError(f"{opname}: size must be positive, got {size!r}.")
  return int(size[0]), int(size[1])
