"""Beam search with a length penalty for the encoder-decoder (`Seq2Seq`).

  tokens = beam_search(model, variables, inputs, beam_size=4, max_len=64, alpha=0.6,
                       bos_id=1, eos_id=2)   # int32 [B, max_len], 0-padded after EOS

The algorithm is the one of GNMT (Wu et al. 2016, section 7) as written in the
Flax WMT example and T5X: keep `beam_size` live hypotheses per example; at each
step extend every live one by every token, keep the 2K best extensions (so K
survive even if K of them end), move those that end with EOS to a finished set
scored by log-probability / length penalty, keep the K best of the rest live.
Length penalty `((5 + length) / 6) ** alpha`; alpha = 0 ranks by raw
log-probability (and beam_size 1 is then greedy decoding). The search stops
when no live hypothesis can still beat the worst finished one, or at max_len.

No maintained JAX library ships a beam search for a custom Flax model (the
Flax example and T5X keep theirs inside their own trainers), so it is written
here, against the model's public `encode` / `decode(decode=True)` methods and
its 'cache' collection, whose arrays all have the batch as their first axis.
Compiled once per (model, shapes, beam_size, max_len, alpha, ids) by
`jax.jit`; the loop is a `jax.lax.while_loop`, nothing is retraced per token.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

NEG_INF = -1.0e7  # finite, so sums of "impossible" scores stay ordered and NaN-free


def length_penalty(length: jax.Array | int, alpha: float) -> jax.Array:
  """GNMT's lp(Y) = ((5 + |Y|) / 6) ** alpha (|Y| counts the EOS token)."""
  return ((5.0 + jnp.asarray(length, jnp.float32)) / 6.0) ** alpha


def beam_search(
  model: Any,
  variables: Any,
  inputs: jax.Array,
  *,
  beam_size: int,
  max_len: int,
  alpha: float = 0.6,
  bos_id: int = 1,
  eos_id: int = 2,
) -> jax.Array:
  """Source tokens int [B, S] (0 = padding) -> int32 [B, max_len] best targets.

  The output holds the tokens after the decoder's start token `bos_id`, up to
  and including `eos_id`, then zeros; a hypothesis that never ends is returned
  as its max_len tokens.
  """
  return _beam_search_jit(
    model,
    variables,
    jnp.asarray(inputs, jnp.int32),
    beam_size=int(beam_size),
    max_len=int(max_len),
    alpha=float(alpha),
    bos_id=int(bos_id),
    eos_id=int(eos_id),
  )


def _flatten(x: jax.Array) -> jax.Array:
  """[B, K, ...] -> [B * K, ...]."""
  return x.reshape((x.shape[0] * x.shape[1], *x.shape[2:]))


def _unflatten(x: jax.Array, beams: int) -> jax.Array:
  """[B * K, ...] -> [B, K, ...]."""
  return x.reshape((x.shape[0] // beams, beams, *x.shape[1:]))


def _gather_beams(tree: Any, indices: jax.Array, beams: int, flat: bool) -> Any:
  """Picks beams: every leaf [B, K, ...] (or [B * K, ...] when `flat`) becomes
  [B, N, ...] (or [B * N, ...]) with leaf[b, indices[b, n]]; scalars are kept
  (the cache's write index is the same for every beam)."""

  def gather(x):
    if x.ndim == 0:
      return x
    y = _unflatten(x, beams) if flat else x
    idx = indices.reshape(indices.shape + (1,) * (y.ndim - 2))
    y = jnp.take_along_axis(y, idx, axis=1)
    return _flatten(y) if flat else y

  return jax.tree.map(gather, tree)


@functools.partial(
  jax.jit, static_argnames=("model", "beam_size", "max_len", "alpha", "bos_id", "eos_id")
)
def _beam_search_jit(model, variables, inputs, *, beam_size, max_len, alpha, bos_id, eos_id):
  batch, k = inputs.shape[0], beam_size
  params = {"params": variables["params"]}
  # Every beam of an example reads the same source: encode once, then repeat.
  encoded = model.apply(params, inputs, train=False, method="encode")
  tile = lambda x: jnp.repeat(x, k, axis=0)  # [B, ...] -> [B * K, ...], beams adjacent
  encoded_k, inputs_k = tile(encoded), tile(inputs)
  cache_shapes = jax.eval_shape(
    lambda: model.init(
      jax.random.key(0),
      {"inputs": inputs_k, "decoder_inputs": jnp.zeros((batch * k, max_len), jnp.int32)},
      train=False,
      decode=True,
    )
  )["cache"]
  cache = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), cache_shapes)

  # Sequences hold the start token at position 0: [B, K, max_len + 1].
  seqs = jnp.zeros((batch, k, max_len + 1), jnp.int32).at[:, :, 0].set(bos_id)
  # Only beam 0 is live at the start, so the first step does not pick K copies
  # of the same extension.
  live_logp = jnp.tile(jnp.array([0.0] + [NEG_INF] * (k - 1), jnp.float32), (batch, 1))
  state = dict(
    i=jnp.array(0, jnp.int32),
    live_seqs=seqs,
    live_logp=live_logp,
    done_seqs=seqs,
    done_scores=jnp.full((batch, k), NEG_INF, jnp.float32),
    done_flags=jnp.zeros((batch, k), bool),
    cache=cache,
  )

  def not_finished(s):
    # The best a live beam can still reach: its log-prob (which only falls)
    # under the largest penalty divisor, that of max_len.
    best_live = s["live_logp"][:, 0] / length_penalty(max_len, alpha)
    worst_done = jnp.where(s["done_flags"], s["done_scores"], NEG_INF).min(axis=1)
    # An example is settled once it has K finished hypotheses none of which a
    # live one can overtake.
    settled = jnp.all(s["done_flags"], axis=1) & (worst_done > best_live)
    return (s["i"] < max_len) & ~jnp.all(settled)

  def step(s):
    i = s["i"]
    tokens = jax.lax.dynamic_slice_in_dim(s["live_seqs"], i, 1, axis=2)  # [B, K, 1]
    logits, mutated = model.apply(
      {**params, "cache": s["cache"]},
      encoded_k,
      inputs_k,
      _flatten(tokens),
      train=False,
      decode=True,
      mutable=["cache"],
      method="decode",
    )
    vocab = logits.shape[-1]
    logp = jax.nn.log_softmax(logits[:, -1].astype(jnp.float32))  # [B * K, V]
    cand = s["live_logp"][:, :, None] + _unflatten(logp, k)  # [B, K, V]
    top_logp, top_idx = jax.lax.top_k(cand.reshape(batch, k * vocab), 2 * k)  # [B, 2K]
    beam_idx, token = top_idx // vocab, (top_idx % vocab).astype(jnp.int32)
    top_seqs = _gather_beams(s["live_seqs"], beam_idx, k, flat=False)  # [B, 2K, L + 1]
    top_seqs = jax.lax.dynamic_update_slice_in_dim(top_seqs, token[:, :, None], i + 1, axis=2)
    ended = token == eos_id

    # Live: the K best extensions that did not end (ended ones drop to -inf).
    live_logp, live_pos = jax.lax.top_k(jnp.where(ended, NEG_INF, top_logp), k)
    live_seqs = _gather_beams(top_seqs, live_pos, 2 * k, flat=False)
    cache = _gather_beams(mutated["cache"], jnp.take_along_axis(beam_idx, live_pos, 1), k, True)

    # Finished: merge the new ended ones into the K best so far.
    new_scores = jnp.where(ended, top_logp / length_penalty(i + 1, alpha), NEG_INF)
    all_seqs = jnp.concatenate([s["done_seqs"], top_seqs], axis=1)
    all_scores = jnp.concatenate([s["done_scores"], new_scores], axis=1)
    all_flags = jnp.concatenate([s["done_flags"], ended], axis=1)
    done_scores, done_pos = jax.lax.top_k(jnp.where(all_flags, all_scores, NEG_INF), k)
    return dict(
      i=i + 1,
      live_seqs=live_seqs,
      live_logp=live_logp,
      done_seqs=_gather_beams(all_seqs, done_pos, 3 * k, flat=False),
      done_scores=done_scores,
      done_flags=jnp.take_along_axis(all_flags, done_pos, axis=1),
      cache=cache,
    )

  s = jax.lax.while_loop(not_finished, step, state)
  # An example with no finished hypothesis returns its best live one.
  any_done = s["done_flags"][:, 0]
  best = jnp.where(any_done[:, None], s["done_seqs"][:, 0], s["live_seqs"][:, 0])[:, 1:]
  return zero_after_eos(best, eos_id)


DECODING_METHODS = ("greedy", "beam")


def decode(
  model: Any,
  variables: Any,
  inputs: Any,
  *,
  method: str = "beam",
  beam_size: int = 4,
  alpha: float = 0.6,
  max_len: int,
  bos_id: int,
  eos_id: int,
) -> jax.Array:
  """Greedy or beam decoding of source tokens int [B, S] -> int32 [B, max_len],
  zeros after the first `eos_id` (both methods give this shape)."""
  if method == "beam":
    return beam_search(
      model,
      variables,
      inputs,
      beam_size=beam_size,
      max_len=max_len,
      alpha=alpha,
      bos_id=bos_id,
      eos_id=eos_id,
    )
  if method != "greedy":
    raise ValueError(f"decoding method must be one of {DECODING_METHODS}, got {method!r}.")
  from research.models.seq2seq import greedy_decode

  tokens = greedy_decode(model, variables, inputs, max_len=max_len, bos_id=bos_id)
  return zero_after_eos(tokens, eos_id)


def zero_after_eos(tokens: jax.Array, eos_id: int) -> jax.Array:
  """int [B, L]: tokens after the first `eos_id` of each row set to 0 (the EOS stays)."""
  is_eos = tokens == eos_id
  return jnp.where(jnp.cumsum(is_eos, axis=1) - is_eos > 0, 0, tokens).astype(jnp.int32)


def strip_special(ids: Any, eos_id: int, special_ids: frozenset[int]) -> list[int]:
  """One decoded row -> its text token ids: up to the first EOS, without
  special ids (pad, bos, unk stays: it is text the model could not name)."""
  out = []
  for i in (int(t) for t in ids):
    if i == eos_id:
      break
    if i not in special_ids:
      out.append(i)
  return out
