"""'seq2seq': an encoder-decoder Transformer (Vaswani et al. 2017).

Input (what `task.inputs(batch)` gives the train step) is a dict
  {'inputs': int [B, S] source tokens, 'decoder_inputs': int [B, T] targets
   shifted right (bos_id first)}
and the output float32 logits [B, T, vocab_size]: logits[:, t] predict
target t from the source and targets < t. pad_id (0) marks padding in both.

Source and target share one vocabulary and one embedding matrix, also used
as the output projection (as in the paper with a shared BPE vocabulary).
Embeddings are initialised N(0, 1/embed_dim) and multiplied by
sqrt(embed_dim), so tokens and sinusoidal positions have similar scale.

`pointer_generator=True` adds a pointer-generator head (See et al. 2017, "Get To The
Point"): one extra attention from the decoder's last state over the encoder
output gives a copy distribution over the source tokens, and a learned gate
p_gen mixes it with the vocabulary softmax,
  p(w) = p_gen p_vocab(w) + (1 - p_gen) sum_{s: source_s = w} a_s,
which lets a small model trained on little data reuse the source's rare words
(names, subjects). The output is then log p [B, T, vocab_size]: already
normalised, so softmax cross-entropy, greedy argmax and beam search's
log_softmax treat it exactly like logits.

`greedy_decode` generates with the decoder's KV cache, jit-compiled once.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from research.models.transformer import (
  LearnedPositions,
  SinusoidalPositions,
  TransformerBlock,
  padding_mask,
)


class Seq2Seq(nn.Module):
  """Encoder (self-attention, padding mask) + decoder (causal self-attention,
  cross-attention to the encoder output)."""

  vocab_size: int
  num_layers: int
  num_heads: int
  embed_dim: int
  num_decoder_layers: int | None = None  # None: num_layers.
  mlp_dim: int | None = None  # None: 4 * embed_dim.
  max_len: int = 256  # Longest source / target (learned positions only).
  positions: str = "sinusoidal"  # 'sinusoidal' | 'learned'
  dropout: float = 0.1
  attention_dropout: float = 0.0
  pre_ln: bool = True
  pad_id: int = 0
  pointer_generator: bool = False  # copy from the source (module docstring)
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  def setup(self):
    if self.positions not in ("sinusoidal", "learned"):
      raise ValueError(f"positions must be 'sinusoidal' or 'learned', got {self.positions!r}.")
    self.embed = nn.Embed(
      self.vocab_size,
      self.embed_dim,
      embedding_init=nn.initializers.normal(stddev=self.embed_dim**-0.5),
      dtype=self.dtype,
      param_dtype=self.param_dtype,
    )
    positions = lambda: (
      LearnedPositions(self.max_len, dtype=self.dtype, param_dtype=self.param_dtype)
      if self.positions == "learned"
      else SinusoidalPositions(self.dtype)
    )
    self.encoder_positions = positions()
    self.decoder_positions = positions()
    block = lambda causal, cross, name: TransformerBlock(
      self.num_heads,
      mlp_dim=self.mlp_dim or 4 * self.embed_dim,
      dropout=self.dropout,
      attention_dropout=self.attention_dropout,
      pre_ln=self.pre_ln,
      causal=causal,
      cross_attention=cross,
      activation="relu",
      kernel_init=nn.initializers.xavier_uniform(),
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      name=name,
    )
    self.encoder_blocks = [block(False, False, f"encoder_{i}") for i in range(self.num_layers)]
    self.decoder_blocks = [
      block(True, True, f"decoder_{i}") for i in range(self.num_decoder_layers or self.num_layers)
    ]
    norm = lambda: nn.LayerNorm(dtype=self.dtype, param_dtype=self.param_dtype)
    # Pre-LN stacks end with a LayerNorm (post-LN blocks already end with one).
    self.encoder_ln = norm() if self.pre_ln else None
    self.decoder_ln = norm() if self.pre_ln else None
    self.drop = nn.Dropout(self.dropout)
    if self.pointer_generator:
      dense = lambda features, name: nn.Dense(
        features, dtype=self.dtype, param_dtype=self.param_dtype, name=name
      )
      self.copy_query = dense(self.embed_dim, "copy_query")
      self.copy_key = dense(self.embed_dim, "copy_key")
      self.copy_gate = dense(1, "copy_gate")

  def __call__(self, x: Mapping[str, jax.Array], *, train: bool, decode: bool = False) -> jax.Array:
    encoded = self.encode(x["inputs"], train=train)
    return self.decode(encoded, x["inputs"], x["decoder_inputs"], train=train, decode=decode)

  def _embed(self, tokens, positions, *, train, decode=False):
    x = self.embed(tokens) * math.sqrt(self.embed_dim)
    return self.drop(positions(x, decode=decode), deterministic=not train)

  def encode(self, inputs: jax.Array, *, train: bool) -> jax.Array:
    """Source tokens [B, S] -> encoder output [B, S, embed_dim]."""
    x = self._embed(inputs, self.encoder_positions, train=train)
    mask = padding_mask(inputs, self.pad_id)
    for block in self.encoder_blocks:
      x = block(x, mask=mask, train=train)
    return self.encoder_ln(x) if self.encoder_ln is not None else x

  def decode(
    self,
    encoded: jax.Array,
    inputs: jax.Array,
    decoder_inputs: jax.Array,
    *,
    train: bool,
    decode: bool = False,
  ) -> jax.Array:
    """encoded [B, S, D], source tokens [B, S] (for their padding mask),
    decoder_inputs [B, T] -> float32 logits [B, T, vocab_size].

    decode=True: decoder_inputs is the next chunk after those in the 'cache'
    collection (mutable=['cache']). Decoder padding needs no mask: causal
    attention never lets a real target position see a later pad.
    """
    x = self._embed(decoder_inputs, self.decoder_positions, train=train, decode=decode)
    context_mask = padding_mask(inputs, self.pad_id)
    for block in self.decoder_blocks:
      x = block(x, context=encoded, context_mask=context_mask, train=train, decode=decode)
    if self.decoder_ln is not None:
      x = self.decoder_ln(x)
    logits = self.embed.attend(x).astype(jnp.float32)
    if not self.pointer_generator:
      return logits
    return self._copy_log_probs(logits, x, encoded, inputs)

  def _copy_log_probs(self, logits, x, encoded, inputs) -> jax.Array:
    """Pointer-generator mixture: logits [B, T, V], decoder states x [B, T, D],
    encoded [B, S, D], source tokens [B, S] -> float32 log p [B, T, V]."""
    q = self.copy_query(x).astype(jnp.float32)
    k = self.copy_key(encoded).astype(jnp.float32)
    scores = jnp.einsum("btd,bsd->bts", q, k) / math.sqrt(self.embed_dim)
    scores = jnp.where((inputs != self.pad_id)[:, None, :], scores, -1e9)
    attention = jax.nn.softmax(scores, axis=-1)  # [B, T, S]
    context = jnp.einsum("bts,bsd->btd", attention, encoded.astype(jnp.float32))
    p_gen = jax.nn.sigmoid(self.copy_gate(jnp.concatenate([x.astype(jnp.float32), context], -1)))
    source = jax.nn.one_hot(inputs, self.vocab_size, dtype=jnp.float32)  # [B, S, V]
    p_copy = jnp.einsum("bts,bsv->btv", attention, source)
    p = p_gen * jax.nn.softmax(logits, axis=-1) + (1 - p_gen) * p_copy
    return jnp.log(jnp.maximum(p, 1e-9))


def greedy_decode(
  model: Seq2Seq, variables: Any, inputs: jax.Array, *, max_len: int, bos_id: int = 1
) -> jax.Array:
  """Greedy generation: source tokens int [B, S] -> int32 [B, max_len] (the
  predicted targets, without the bos_id that starts the decoder).

  Encodes once, then one decoder step per token with the KV cache inside a
  `jax.lax.scan`; jit-compiled once per (model, shapes, max_len, bos_id).
  """
  return _greedy_decode_jit(
    model, variables, jnp.asarray(inputs, jnp.int32), max_len=max_len, bos_id=bos_id
  )


@functools.partial(jax.jit, static_argnames=("model", "max_len", "bos_id"))
def _greedy_decode_jit(model, variables, inputs, *, max_len, bos_id):
  batch = inputs.shape[0]
  params = {"params": variables["params"]}
  encoded = model.apply(params, inputs, train=False, method=Seq2Seq.encode)
  # An empty cache of the right shapes: init with a full-length decoder input.
  cache_shapes = jax.eval_shape(
    lambda: model.init(
      jax.random.key(0),
      {"inputs": inputs, "decoder_inputs": jnp.zeros((batch, max_len), jnp.int32)},
      train=False,
      decode=True,
    )
  )["cache"]
  cache = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), cache_shapes)

  def step(carry, _):
    token, cache = carry
    logits, mutated = model.apply(
      {**params, "cache": cache},
      encoded,
      inputs,
      token[:, None],
      train=False,
      decode=True,
      mutable=["cache"],
      method=Seq2Seq.decode,
    )
    token = jnp.argmax(logits[:, -1], axis=-1).astype(jnp.int32)
    return (token, mutated["cache"]), token

  start = jnp.full((batch,), bos_id, jnp.int32)
  _, tokens = jax.lax.scan(step, (start, cache), None, length=max_len)
  return tokens.T
