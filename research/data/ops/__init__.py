"""Preprocessing as small `dict -> dict` ops, built from spec strings.

    ops_list = ops.parse("value_range(0, 1)|random_crop(28, pad=4)|flip_lr")
    example = ops.apply(ops_list, example, rng)

An `Op` is `op(example, rng) -> new example`: `example` is a flat
`dict[str, np.ndarray]` without batch dimension; `rng` is a
`np.random.Generator` (random ops) or `None` (deterministic pipelines, where a
random op raises). `OPS` is built explicitly from each op module's own table,
so which ops exist never depends on what else happened to be imported.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from research.data.ops import base
from research.data.ops import generic
from research.data.ops import image
from research.data.ops import spec as _spec

Op = base.Op
NamedOp = base.NamedOp


def _merge(*tables: dict[str, Callable[..., Op]]) -> dict[str, Callable[..., Op]]:
  merged: dict[str, Callable[..., Op]] = {}
  for table in tables:
    clash = set(merged) & set(table)
    if clash:
      raise ValueError(f"Op names defined twice: {sorted(clash)}.")
    merged.update(table)
  return merged


OPS: dict[str, Callable[..., Op]] = _merge(generic.OPS, image.OPS)


def parse(spec: str | None) -> list[Op]:
  """`"a(1)|b(key='x')|c"` -> `[Op, ...]`; '' or None -> []. Raises ValueError."""
  return _spec.parse(spec, OPS)


def check(spec: str | None) -> None:
  """Validates a spec at config-load time (unknown op, bad arguments): ValueError."""
  parse(spec)


def apply(ops_list: Sequence[Op], example: dict[str, np.ndarray],
          rng: np.random.Generator | None) -> dict[str, np.ndarray]:
  """Runs `ops_list` in order on one example; the input dict is not modified."""
  for op in ops_list:
    example = op(example, rng)
  return example


def is_random(op: Op) -> bool:
  """Whether `op` needs an rng (False for plain callables, which cannot say)."""
  return bool(getattr(op, "random", False))
