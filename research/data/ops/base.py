"""What a preprocessing op is, and the small helpers the op modules share.

An op maps one example to a new example: `op(example, rng) -> example`, where
`example` is a flat `dict[str, np.ndarray]` without batch dimension and `rng` is
the per-example `np.random.Generator` the grain pipeline hands to `random_map`
(or `None` in deterministic pipelines such as eval). Ops never mutate their
input dict or its arrays: they return a new dict, so a source's arrays are
never changed behind its back.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

Example = dict[str, np.ndarray]
Op = Callable[[Example, "np.random.Generator | None"], Example]


class NamedOp:
  """An `Op` that knows its spec string and whether it needs an rng.

  `random` lets the pipeline reject random ops in eval before any data is read,
  instead of failing on the first example.
  """

  def __init__(self, spec: str, fn: Callable[[Example, Any], Example], *,
               random: bool = False):
    self.spec = spec
    self.random = random
    self._fn = fn

  def __call__(self, example: Example, rng: np.random.Generator | None = None) -> Example:
    if self.random and rng is None:
      raise ValueError(
          f"Op '{self.spec}' is random and needs a np.random.Generator, got rng=None. "
          "Random ops belong in training pipelines; eval pipelines are deterministic.")
    return self._fn(example, rng)

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


def size_hw(size: Any, opname: str) -> tuple[int, int]:
  """`size` as `(h, w)`: an int means a square."""
  if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
    size = (int(size), int(size))
  if (not isinstance(size, (tuple, list)) or len(size) != 2
      or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in size)):
    raise ValueError(f"{opname}: size must be an int or a pair of ints, got {size!r}.")
  if min(size) <= 0:
    raise ValueError(f"{opname}: size must be positive, got {size!r}.")
  return int(size[0]), int(size[1])
