"""Text ops: tokenize, truncate_pad, mlm_mask, drop.

Only `drop` has a batched implementation; the others run per example inside
the pipeline's batch function (their inputs are ragged until `truncate_pad`).

    ops.parse("tokenize(add_cls=True)|truncate_pad(128)|mlm_mask(0.15)|drop('text')",
              context={'tokenizer': tokenizer})

`tokenize` and `mlm_mask` need the run's tokenizer (a
`research.data.text.tokenizers.Tokenizer`): their factories declare it with
`uses_context('tokenizer')`, and `ops.parse(spec, context)` passes
`context['tokenizer']` in. Spec strings cannot name it; `ops.check(spec)`
validates the other arguments without one. `research.data.ops.OPS` names
them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from research.data.ops import base
from research.data.text.sources import as_text


def uses_context(*keys: str) -> Callable[[Callable[..., base.Op]], Callable[..., base.Op]]:
  """Marks an op factory as taking keyword arguments `keys` from `ops.parse`'s context."""

  def mark(factory):
    factory.context_keys = keys
    return factory

  return mark


def _is_str(*values: Any) -> bool:
  return all(isinstance(v, str) and v for v in values)


def _no_tokenizer(spec: str) -> base.NamedOp:
  """What a factory built without a tokenizer returns (ops.check): fails if ever run."""

  def fn(example, rng):
    raise ValueError(
      f"Op '{spec}' was built without a tokenizer; build it with "
      "ops.parse(spec, context={'tokenizer': tokenizer})."
    )

  return base.NamedOp(spec, fn)


def _token_array(example: base.Example, key: str, spec: str) -> np.ndarray:
  x = base.get(example, key, spec)
  if x.ndim != 1 or not np.issubdtype(x.dtype, np.integer):
    raise ValueError(
      f"Op '{spec}': {key!r} must be 1-D integer token ids, got shape {x.shape} dtype {x.dtype}."
    )
  return x


@uses_context("tokenizer")
def tokenize(
  *,
  key: str = "text",
  out: str = "tokens",
  add_cls: bool = False,
  add_eos: bool = False,
  tokenizer: Any = None,
) -> base.NamedOp:
  """Text `example[key]` (str or UTF-8 bytes) -> `example[out]` int32 `[L]`.

  `add_cls` prepends the cls/bos id, `add_eos` appends the eos/sep id (both
  must exist in the tokenizer: the char tokenizer has neither).
  """
  spec = base.spec_string("tokenize", key=key, out=out, add_cls=add_cls, add_eos=add_eos)
  if not _is_str(key, out):
    raise ValueError(f"{spec}: key and out must be non-empty strings.")
  if not isinstance(add_cls, bool) or not isinstance(add_eos, bool):
    raise ValueError(f"{spec}: add_cls and add_eos must be True or False.")
  if tokenizer is None:
    return _no_tokenizer(spec)
  prefix: list[int] = []
  suffix: list[int] = []
  for wanted, attr, where in ((add_cls, "cls_id", prefix), (add_eos, "eos_id", suffix)):
    if wanted:
      i = getattr(tokenizer, attr)
      if i is None:
        raise ValueError(
          f"{spec}: the {tokenizer.type!r} tokenizer has no {attr} (it has no "
          "special tokens); drop the option or use a sentencepiece tokenizer."
        )
      where.append(int(i))

  def fn(example, rng):
    del rng
    ids = tokenizer.encode(as_text(base.get(example, key, spec)))
    return base.replace(example, out, np.asarray(prefix + ids + suffix, np.int32))

  return base.NamedOp(spec, fn)


def truncate_pad(
  length: int, *, key: str = "tokens", pad_id: int = 0, keep: str = "first"
) -> base.NamedOp:
  """`example[key]` `[L]` -> int32 `[length]`: cut to `length` or padded with `pad_id`.

  Adds `example[key + '_mask']` bool `[length]`, True on real tokens; padding
  always goes at the end. Cutting keeps the first `length` tokens
  (keep='first'; an appended eos is cut off with the rest) or the last ones
  (keep='last', Keras `pad_sequences`' default truncating='pre': a review's
  verdict is usually at its end; a prepended cls is cut off with the rest).
  """
  spec = base.spec_string("truncate_pad", length, key=key, pad_id=pad_id, keep=keep)
  if keep not in ("first", "last"):
    raise ValueError(f"{spec}: keep must be 'first' or 'last', got {keep!r}.")
  if not isinstance(length, int) or isinstance(length, bool) or length < 1:
    raise ValueError(f"{spec}: length must be a positive int.")
  if not isinstance(pad_id, int) or isinstance(pad_id, bool) or pad_id < 0:
    raise ValueError(f"{spec}: pad_id must be a non-negative int.")
  if not _is_str(key):
    raise ValueError(f"{spec}: key must be a non-empty string.")

  def fn(example, rng):
    del rng
    x = _token_array(example, key, spec)
    x = x[:length] if keep == "first" else x[max(len(x) - length, 0) :]
    out = np.full(length, pad_id, np.int32)
    out[: len(x)] = x
    mask = np.zeros(length, np.bool_)
    mask[: len(x)] = True
    example = base.replace(example, key, out)
    return base.replace(example, f"{key}_mask", mask)

  return base.NamedOp(spec, fn)


@uses_context("tokenizer")
def mlm_mask(
  rate: float = 0.15,
  *,
  key: str = "tokens",
  out_inputs: str = "inputs",
  out_targets: str = "targets",
  out_weights: str = "weights",
  max_predictions: int | None = None,
  out_positions: str = "positions",
  tokenizer: Any = None,
) -> base.NamedOp:
  """BERT masking of `example[key]` (int `[L]`) for masked-language-model training.

  Selects `max(1, round(rate * n))` of the n positions that are neither a
  special id (pad, unk, cls, sep, mask) nor padding (`<key>_mask` False, when
  present), uniformly without replacement; of those, 80% become the mask id,
  10% a random non-special id and 10% stay unchanged (BERT's
  create_pretraining_data). Writes `out_inputs` int32 `[L]` (the corrupted
  ids), `out_targets` int32 `[L]` (the original ids) and `out_weights`
  float32 `[L]` (1.0 at selected positions, else 0). Random: needs an rng.

  max_predictions=P (BERT's max_predictions_per_seq): at most P positions are
  selected, and the targets come gathered: `out_positions` int32 `[P]` (the
  selected positions, ascending, padded with 0), `out_targets` int32 `[P]` and
  `out_weights` float32 `[P]` (0 on padding). The model then runs its MLM
  head on P positions instead of all L (~6x less head compute at 15%).
  """
  spec = base.spec_string(
    "mlm_mask",
    rate,
    key=key,
    out_inputs=out_inputs,
    out_targets=out_targets,
    out_weights=out_weights,
    max_predictions=max_predictions,
  )
  if max_predictions is not None and (
    not isinstance(max_predictions, int) or isinstance(max_predictions, bool) or max_predictions < 1
  ):
    raise ValueError(f"{spec}: max_predictions must be a positive int or None.")
  if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0 < rate <= 1:
    raise ValueError(f"{spec}: rate must be a number in (0, 1].")
  if not _is_str(key, out_inputs, out_targets, out_weights):
    raise ValueError(f"{spec}: key names must be non-empty strings.")
  if len({out_inputs, out_targets, out_weights}) != 3:
    raise ValueError(f"{spec}: out_inputs, out_targets and out_weights must differ.")
  if tokenizer is None:
    return _no_tokenizer(spec)
  mask_id = tokenizer.mask_id
  if mask_id is None:
    raise ValueError(
      f"{spec}: the {tokenizer.type!r} tokenizer has no mask id; masked "
      "language modelling needs a sentencepiece tokenizer."
    )
  special = np.array(sorted(tokenizer.special_ids), np.int64)
  replacements = np.setdiff1d(np.arange(tokenizer.vocab_size), special)
  if not len(replacements):
    raise ValueError(f"{spec}: the tokenizer has no non-special ids to draw random tokens from.")

  def fn(example, rng):
    tokens = _token_array(example, key, spec)
    candidates = ~np.isin(tokens, special)
    real = example.get(f"{key}_mask")
    if real is not None:
      candidates &= np.asarray(real, np.bool_)
    positions = np.flatnonzero(candidates)
    num = min(len(positions), max(1, round(rate * len(positions)))) if len(positions) else 0
    if max_predictions is not None:
      num = min(num, max_predictions)
    chosen = rng.choice(positions, num, replace=False) if num else positions
    u = rng.random(num)
    inputs = tokens.astype(np.int32)  # a copy: the input example stays untouched
    masked = chosen[u < 0.8]
    randomized = chosen[(u >= 0.8) & (u < 0.9)]
    inputs[masked] = mask_id
    inputs[randomized] = rng.choice(replacements, len(randomized))
    out = base.replace(example, out_inputs, inputs)
    if max_predictions is not None:
      picked = np.zeros(max_predictions, np.int32)
      picked[:num] = np.sort(chosen)
      weights = np.zeros(max_predictions, np.float32)
      weights[:num] = 1.0
      out = base.replace(out, out_positions, picked)
      out = base.replace(out, out_targets, (tokens[picked] * (weights > 0)).astype(np.int32))
      return base.replace(out, out_weights, weights)
    weights = np.zeros(len(tokens), np.float32)
    weights[chosen] = 1.0
    out = base.replace(out, out_targets, tokens.astype(np.int32))
    return base.replace(out, out_weights, weights)

  return base.NamedOp(spec, fn, random=True)


@uses_context("tokenizer")
def shift_right(
  *, key: str = "targets", out: str = "decoder_inputs", tokenizer: Any = None
) -> base.NamedOp:
  """Teacher forcing: `example[out]` = [bos, *example[key][:-1]] int32 `[T]`.

  The decoder input of an encoder-decoder: at position t the model sees the
  targets before t. Padding (0 after the targets) shifts along, so positions
  past the end see pads and are masked by the targets' mask.
  """
  spec = base.spec_string("shift_right", key=key, out=out)
  if not _is_str(key, out):
    raise ValueError(f"{spec}: key and out must be non-empty strings.")
  if tokenizer is None:
    return _no_tokenizer(spec)
  bos = tokenizer.bos_id
  if bos is None:
    raise ValueError(
      f"{spec}: the {tokenizer.type!r} tokenizer has no bos_id; use a sentencepiece tokenizer."
    )

  def fn(example, rng):
    del rng
    x = _token_array(example, key, spec)
    shifted = np.concatenate([np.asarray([bos], np.int32), x[:-1].astype(np.int32)])
    return base.replace(example, out, shifted)

  return base.NamedOp(spec, fn)


def drop(*keys: str) -> base.NamedOp:
  """Removes `keys` (each must exist), e.g. the raw 'text' once it is tokenized."""
  spec = base.spec_string("drop", *keys)
  if not keys or not _is_str(*keys):
    raise ValueError(f"{spec}: give one or more key names as strings.")

  def fn(example, rng):
    del rng
    for k in keys:
      base.get(example, k, spec)  # a missing key is likely a typo: say so
    return {k: v for k, v in example.items() if k not in keys}

  # Works unchanged on a batch {key: [b, ...]}.
  return base.NamedOp(spec, fn, batch_fn=fn, keys_only=True)
