"""Preprocessing as small `dict -> dict` ops, built from spec strings.

    ops_list = ops.parse("value_range(0, 1)|random_crop(28, pad=4)|flip_lr")
    example = ops.apply(ops_list, example, rng)

An `Op` is `op(example, rng) -> new example`: `example` is a flat
`dict[str, np.ndarray]` without batch dimension; `rng` is a
`np.random.Generator` (random ops) or `None` (deterministic pipelines, where a
random op raises). `OPS` is built explicitly from each op module's own table,
so which ops exist never depends on what else happened to be imported.

Some ops need run state that a spec string cannot hold (the text ops need the
run's tokenizer). Their factories carry `context_keys` (e.g.
`('tokenizer',)`, set by `ops.text.uses_context`) and receive those keyword
arguments from `parse(spec, context={'tokenizer': tok})`; `check(spec)`
validates everything else without them.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from research.data.ops import base
from research.data.ops import generic
from research.data.ops import image
from research.data.ops import spec as _spec
from research.data.ops import text

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


OPS: dict[str, Callable[..., Op]] = _merge(generic.OPS, image.OPS, text.OPS)


class _MissingContext(Exception):
  """Raised inside spec parsing (not a ValueError, so the parser does not reword it)."""

  def __init__(self, op: str, key: str):
    super().__init__(op, key)
    self.op, self.key = op, key


def _with_context(name: str, factory: Callable[..., Op], keys: Sequence[str],
                  context: Mapping[str, Any] | None, checking: bool) -> Callable[..., Op]:
  """`factory` with its context arguments filled in (None when only checking).

  The wrapper's signature leaves those arguments out, so a spec string cannot
  pass them and error messages show only what a spec may set.
  """
  signature = inspect.signature(factory)
  public = signature.replace(
      parameters=[p for p in signature.parameters.values() if p.name not in keys])

  def build(*args, **kwargs):
    values = {}
    for key in keys:
      if checking:
        values[key] = None
      elif context is None or context.get(key) is None:
        raise _MissingContext(name, key)
      else:
        values[key] = context[key]
    return factory(*args, **kwargs, **values)

  build.__signature__ = public
  build.__name__ = name
  return build


def _table(context: Mapping[str, Any] | None, checking: bool) -> dict[str, Callable[..., Op]]:
  return {name: (_with_context(name, f, f.context_keys, context, checking)
                 if getattr(f, "context_keys", ()) else f)
          for name, f in OPS.items()}


def parse(spec: str | None, context: Mapping[str, Any] | None = None) -> list[Op]:
  """`"a(1)|b(key='x')|c"` -> `[Op, ...]`; '' or None -> []. Raises ValueError.

  `context` supplies what ops declare in `context_keys` (e.g.
  `{'tokenizer': tok}` for `tokenize` and `mlm_mask`).
  """
  if context is not None and not isinstance(context, Mapping):
    raise ValueError(f"ops.parse: context must be a mapping such as {{'tokenizer': tok}}, got "
                     f"{type(context).__name__}.")
  try:
    return _spec.parse(spec, _table(context, checking=False))
  except _MissingContext as e:
    raise ValueError(
        f"Op {e.op!r} in spec {spec!r} needs the run's {e.key}, and none was given: build the "
        f"ops with ops.parse(spec, context={{{e.key!r}: ...}}) (the tokenizer from "
        "research.data.text.tokenizers.get_or_train_tokenizer).") from None


def check(spec: str | None) -> None:
  """Validates a spec at config-load time (unknown op, bad arguments): ValueError.

  Ops that need context (the tokenizer) are checked without it.
  """
  _spec.parse(spec, _table(None, checking=True))


def apply(ops_list: Sequence[Op], example: dict[str, np.ndarray],
          rng: np.random.Generator | None) -> dict[str, np.ndarray]:
  """Runs `ops_list` in order on one example; the input dict is not modified."""
  for op in ops_list:
    example = op(example, rng)
  return example


def is_random(op: Op) -> bool:
  """Whether `op` needs an rng (False for plain callables, which cannot say)."""
  return bool(getattr(op, "random", False))
