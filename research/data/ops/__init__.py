"""Preprocessing as small `dict -> dict` ops, built from spec strings.

    ops_list = ops.parse("value_range(0, 1)|random_crop(28, pad=4)|flip_lr")
    example = ops.apply(ops_list, example, rng)
    batch = ops.apply_batch(ops_list, batch, rng)   # {key: [b, ...]}, one rng per batch

An `Op` is `op(example, rng) -> new example`: `example` is a flat
`dict[str, np.ndarray]` without batch dimension; `rng` is a
`np.random.Generator` (random ops) or `None` (deterministic pipelines, where a
random op raises). `OPS` (a `research.core.registry.Registry`) lists every op
of the op modules here, so which ops exist never depends on what else happened
to be imported.

Some ops need run state that a spec string cannot hold (the text ops need the
run's tokenizer). Their factories carry `context_keys` (e.g.
`('tokenizer',)`, set by `ops.text.uses_context`) and receive those keyword
arguments from `parse(spec, context={'tokenizer': tok})`; `check(spec)`
validates everything else without them.

The pipeline runs ops a batch at a time (`apply_batch`): ops with a batched
implementation (`NamedOp.batched`) run once on `{key: [b, ...]}`; the others
run per example inside the same call, so every op list works either way.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeGuard

import numpy as np

from research.core.registry import Registry
from research.data.ops import base, generic, image, recsys, text
from research.data.ops import spec as _spec

Op = base.Op
NamedOp = base.NamedOp

# Spec name -> op factory. Spec strings report unknown names themselves
# (`spec.parse` quotes the whole spec), so the field here is for `OPS.get`.
OPS: Registry[Callable[..., Op]] = Registry(
  "op",
  "config.data.pp_train / pp_eval",
  {
    # Key-level, any example (generic).
    "keep": generic.keep,
    "rename": generic.rename,
    "cast": generic.cast,
    # Images [H, W, C] (image).
    "value_range": image.value_range,
    "standardize": image.standardize,
    "random_crop": image.random_crop,
    "center_crop": image.center_crop,
    "flip_lr": image.flip_lr,
    "random_rotate_scale": image.random_rotate_scale,
    "color_jitter": image.color_jitter,
    "random_erasing": image.random_erasing,
    # Batch-level: pair examples within a batch, add 'label_mix' and 'mix_weight'.
    "mixup": image.mixup,
    "cutmix": image.cutmix,
    # Text; tokenize and mlm_mask take the run's tokenizer as context (text).
    "tokenize": text.tokenize,
    "truncate_pad": text.truncate_pad,
    "mlm_mask": text.mlm_mask,
    "drop": text.drop,
    "shift_right": text.shift_right,
    # Interactions; both take the run's RecsysData as context 'recsys' (recsys).
    "sample_negatives": recsys.sample_negatives,
    "sequence_negatives": recsys.sequence_negatives,
  },
)


class _MissingContext(Exception):
  """Raised inside spec parsing (not a ValueError, so the parser does not reword it)."""

  def __init__(self, op: str, key: str):
    super().__init__(op, key)
    self.op, self.key = op, key


class _WithContext:
  """`factory` with its context arguments filled in (None when only checking).

  Its `__signature__` leaves those arguments out: `spec.parse` binds a spec's
  arguments against it, so a spec string cannot pass them, and error messages
  show only what a spec may set.
  """

  def __init__(
    self,
    name: str,
    factory: Callable[..., Op],
    keys: Sequence[str],
    context: Mapping[str, Any] | None,
    checking: bool,
  ):
    signature = inspect.signature(factory)
    self.__signature__ = signature.replace(
      parameters=[p for p in signature.parameters.values() if p.name not in keys]
    )
    self.__name__ = name
    self._factory, self._keys = factory, tuple(keys)
    self._context, self._checking = context, checking

  def __call__(self, *args: Any, **kwargs: Any) -> Op:
    values: dict[str, Any] = {}
    for key in self._keys:
      if self._checking:
        values[key] = None
      elif self._context is None or self._context.get(key) is None:
        raise _MissingContext(self.__name__, key)
      else:
        values[key] = self._context[key]
    return self._factory(*args, **kwargs, **values)


def _table(context: Mapping[str, Any] | None, checking: bool) -> dict[str, Callable[..., Op]]:
  table: dict[str, Callable[..., Op]] = {}
  for name, factory in OPS.items():
    # Set by `text.uses_context` on the factories that take run state.
    keys = getattr(factory, "context_keys", ())
    table[name] = _WithContext(name, factory, keys, context, checking) if keys else factory
  return table


def parse(spec: str | None, context: Mapping[str, Any] | None = None) -> list[Op]:
  """`"a(1)|b(key='x')|c"` -> `[Op, ...]`; '' or None -> []. Raises ValueError.

  `context` supplies what ops declare in `context_keys` (e.g.
  `{'tokenizer': tok}` for `tokenize` and `mlm_mask`).
  """
  if context is not None and not isinstance(context, Mapping):
    raise ValueError(
      f"ops.parse: context must be a mapping such as {{'tokenizer': tok}}, got "
      f"{type(context).__name__}."
    )
  try:
    return _spec.parse(spec, _table(context, checking=False))
  except _MissingContext as e:
    raise ValueError(
      f"Op {e.op!r} in spec {spec!r} needs the run's {e.key}, and none was given: build the "
      f"ops with ops.parse(spec, context={{{e.key!r}: ...}}) (the tokenizer from "
      "research.data.text.tokenizers.get_or_train_tokenizer)."
    ) from None


def check(spec: str | None) -> None:
  """Validates a spec at config-load time (unknown op, bad arguments): ValueError.

  Ops that need context (the tokenizer) are checked without it.
  """
  _spec.parse(spec, _table(None, checking=True))


def apply(
  ops_list: Sequence[Op], example: dict[str, np.ndarray], rng: np.random.Generator | None
) -> dict[str, np.ndarray]:
  """Runs `ops_list` in order on one example; the input dict is not modified."""
  for op in ops_list:
    example = op(example, rng)
  return example


def is_random(op: Op) -> bool:
  """Whether `op` needs an rng (False for plain callables, which cannot say)."""
  return bool(getattr(op, "random", False))


def _batched(op: Op, rng: np.random.Generator | None, stacked: bool) -> TypeGuard[NamedOp]:
  """Whether `op` runs once on the whole batch rather than per example (then a NamedOp)."""
  if not (isinstance(op, NamedOp) and op.batched):
    return False
  if op.random and rng is None:
    return False  # no batch rng (eval): per example, on each example's own rng
  # Key-only ops on unstacked examples: cheaper than stacking what they may drop.
  return stacked or not op.keys_only


def _needs_rng(op: Op) -> bool:
  # Plain callables cannot say, so they get an rng as they always did.
  return not isinstance(op, NamedOp) or op.random


def _unstack(batch: base.Batch) -> list[base.Example]:
  sizes = {k: len(v) for k, v in batch.items()}
  if len(set(sizes.values())) > 1:
    raise ValueError(f"Batch keys have different leading dimensions: {sizes}.")
  size = next(iter(sizes.values()), 0)
  return [{k: v[i] for k, v in batch.items()} for i in range(size)]


def stack(examples: Sequence[base.Example]) -> base.Batch:
  """`[{key: [...]}] * b -> {key: [b, ...]}`; ValueError naming the key if shapes differ."""
  if not examples:
    raise ValueError("Cannot stack an empty list of examples.")
  keys = set(examples[0])
  if any(set(e) != keys for e in examples):
    raise ValueError(
      f"Examples have different keys: {sorted({tuple(sorted(e)) for e in examples})}."
    )
  out = {}
  for key in examples[0]:
    values = [np.asarray(e[key]) for e in examples]
    shapes = {v.shape for v in values}
    if len(shapes) > 1:
      raise ValueError(
        f"Cannot batch key {key!r}: examples have different shapes "
        f"{sorted(shapes)} (pad or crop them to one shape, e.g. truncate_pad)."
      )
    out[key] = np.stack(values)
  return out


ExampleRng = Callable[[int], np.random.Generator | None]


def apply_batch(
  ops_list: Sequence[Op],
  batch: base.Batch | Sequence[base.Example],
  rng: np.random.Generator | None,
  *,
  example_rng: ExampleRng | None = None,
) -> base.Batch:
  """Runs `ops_list` on a whole batch; returns `{key: [b, ...]}`.

  Args:
    ops_list: the ops, in order.
    batch: `{key: [b, ...]}` (e.g. from a source's `get_batch`), or a list of
      `b` examples not stacked yet (from a source without one). Not modified.
    rng: the batch's generator, or None. Batched random ops draw all `b`
      examples' randomness from it; per-example ops then get one generator per
      example seeded from it (drawn once per run of such ops).
    example_rng: optional `i -> Generator` giving example `i`'s own generator.
      When given, per-example ops use it instead of `rng`; with `rng=None`
      random ops then all run per example on it (a seeded eval: each example's
      randomness depends on that example only, not on how it was batched).

  Ops with a batched implementation run once on the stacked arrays; runs of
  other ops (tokenize, mlm_mask, random_rotate_scale, plain callables) run
  per example, and the examples are stacked again afterwards, so every op list
  that works with `apply` works here.
  """
  # Stacked `{key: [b, ...]}` while batched ops run, a list of examples while
  # per-example ops run; each form is converted only when the next op needs the other.
  data: base.Batch | list[base.Example] = dict(batch) if isinstance(batch, Mapping) else list(batch)
  if isinstance(data, dict) and not data:
    raise ValueError("apply_batch: empty batch (no keys).")
  i, ops_list = 0, list(ops_list)
  while i < len(ops_list):
    op = ops_list[i]
    if _batched(op, rng, stacked=isinstance(data, dict)):
      data = op.apply_batch(data if isinstance(data, dict) else stack(data), rng)
      i += 1
      continue
    # The longest run of ops that must run per example from here.
    j = i + 1
    while j < len(ops_list) and not _batched(ops_list[j], rng, stacked=False):
      j += 1
    run = ops_list[i:j]
    examples = _unstack(data) if isinstance(data, dict) else data
    rngs: list[np.random.Generator | None] = [None] * len(examples)
    if any(_needs_rng(o) for o in run):
      if example_rng is not None:
        rngs = [example_rng(k) for k in range(len(examples))]
      elif rng is not None:
        # Generator construction is the per-example cost here; Philox keyed
        # by a 64-bit draw is the cheapest well-mixed generator numpy has.
        keys = rng.integers(0, 2**63, size=len(examples), dtype=np.uint64)
        rngs = [np.random.Generator(np.random.Philox(key=int(k))) for k in keys]
    data = [apply(run, e, r) for e, r in zip(examples, rngs)]
    i = j
  return data if isinstance(data, dict) else stack(data)
