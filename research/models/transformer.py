"""Generic Transformer building blocks on embeddings [batch, seq, dim].

Nothing here knows about tokens: the language models (gpt, bert, seq2seq) and
the later recommendation (SASRec) and tabular (FT-Transformer) models embed
their own inputs and stack these blocks.

Masks are boolean and broadcast to [batch, heads, query_len, key_len], True
where a query may attend to a key (the convention of
`jax.nn.dot_product_attention`). `padding_mask` and `causal_mask` build the
usual ones and `combine_masks` ANDs any number of them (None = no mask).

Incremental decoding (the flax way): call a causal self-attention module with
`decode=True` once on a [batch, max_len, dim] input (inside `init`) to create
its 'cache' collection (keys, values and the write index), then call it with
`decode=True` and `mutable=['cache']` on chunks [batch, L, dim]: each call
appends the chunk's keys/values at the write index and attends causally to
everything written so far. `LearnedPositions` / `SinusoidalPositions` keep their
own position counter in the same collection, so a model built from these
blocks decodes without any bookkeeping of its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from research import platforms
from research.models import partitioning

Initializer = Callable[..., jax.Array]


def gelu_exact(x: jax.Array) -> jax.Array:
  """Exact GELU x * Phi(x) = x / 2 * (1 + erf(x / sqrt(2))), elementwise, any shape.

  The same function as `nn.gelu(x, approximate=False)`, which writes it with
  erfc (x / 2 * erfc(-x / sqrt(2))); this is PyTorch's form. Why: XLA CPU
  expands erfc into exp, a division and selects, erf into one rational
  polynomial; in shakespeare_char:gpt_cpu the erfc fusions (forward + backward)
  were ~10% of the step. Values agree to float32 rounding (tested in
  tests/test_gpt_speed_equivalence.py).
  """
  return 0.5 * x * (1.0 + jax.lax.erf(x * (1.0 / math.sqrt(2.0))))


# Exact (erf) GELU as in BERT and nanoGPT's nn.GELU(); tanh GELU as in GPT-2's TF code.
ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
  "gelu": gelu_exact,
  "gelu_tanh": lambda x: nn.gelu(x, approximate=True),
  "relu": nn.relu,
}


def activation_fn(name: str) -> Callable[[jax.Array], jax.Array]:
  try:
    return ACTIVATIONS[name]
  except KeyError:
    raise ValueError(f"Unknown activation {name!r}; valid: {sorted(ACTIVATIONS)}.") from None


# --------------------------------------------------------------------------- masks


def padding_mask(tokens: jax.Array, pad_id: int = 0) -> jax.Array:
  """tokens int [batch, seq] -> key mask bool [batch, 1, 1, seq] (True = real token)."""
  return (tokens != pad_id)[:, None, None, :]


def causal_mask(query_len: int, key_len: int | None = None) -> jax.Array:
  """bool [1, 1, query_len, key_len]: query i sees keys j <= i (+ key_len - query_len).

  With key_len > query_len the queries are the last query_len positions of the
  key sequence (a suffix), as when a chunk attends to a longer prefix.
  """
  key_len = query_len if key_len is None else key_len
  q = jnp.arange(query_len)[:, None] + (key_len - query_len)
  return (jnp.arange(key_len)[None, :] <= q)[None, None]


def combine_masks(*masks: jax.Array | None) -> jax.Array | None:
  """Logical AND of the given masks (None entries are ignored; all None -> None)."""
  present = [m for m in masks if m is not None]
  if not present:
    return None
  out = present[0]
  for m in present[1:]:
    out = jnp.logical_and(out, m)
  return out


# --------------------------------------------------------------------------- attention


class MultiHeadAttention(nn.Module):
  """Multi-head dot-product attention (self- or cross-), with an optional KV cache.

  `__call__(x [B, T, D], context [B, S, Dc] | None, *, mask, train, decode)`
  -> [B, T, out_dim or D]. Self-attention when `context` is None (keys and
  values from `x`), cross-attention otherwise. `mask` (bool, broadcastable to
  [B, heads, T, S]) is ANDed with the causal mask when `causal`.

  `decode=True` (causal self-attention only) uses the 'cache' collection as
  described in the module docstring; the mask passed then refers to the cache's
  max_len keys.
  """

  num_heads: int
  head_dim: int | None = None  # None: input dim // num_heads.
  out_dim: int | None = None  # None: input dim.
  causal: bool = False
  dropout: float = 0.0  # On the attention probabilities.
  use_bias: bool = True
  kernel_init: Initializer = nn.initializers.lecun_normal()
  out_kernel_init: Initializer | None = None  # None: kernel_init.
  bias_init: Initializer = nn.initializers.zeros
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(
    self,
    x: jax.Array,
    context: jax.Array | None = None,
    *,
    mask: jax.Array | None = None,
    train: bool,
    decode: bool = False,
  ) -> jax.Array:
    dim = x.shape[-1]
    head_dim = self.head_dim or dim // self.num_heads
    if self.head_dim is None and dim % self.num_heads:
      raise ValueError(f"dim {dim} is not divisible by num_heads {self.num_heads}.")
    dot_general = platforms.dense_dot_general()
    # Logical axes (research.train.sharding maps them to mesh axes): Megatron's
    # layout shards the heads of q/k/v and of the output projection.
    proj = lambda name: nn.DenseGeneral(
      (self.num_heads, head_dim),
      use_bias=self.use_bias,
      kernel_init=nn.with_logical_partitioning(self.kernel_init, ("embed", "heads", "kv")),
      bias_init=nn.with_logical_partitioning(self.bias_init, ("heads", "kv")),
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      dot_general=dot_general,
      name=name,
    )
    kv_input = x if context is None else context
    # Split by batch (and heads under tensor parallelism), never gathered: see
    # research.models.partitioning (no-ops outside a sharded step).
    heads = lambda y: partitioning.constrain(y, ("batch", "length", "heads", "kv"))
    query, key, value = (
      heads(proj("query")(x)),
      heads(proj("key")(kv_input)),
      heads(proj("value")(kv_input)),
    )

    if decode:
      if context is not None or not self.causal:
        raise ValueError("decode=True is for causal self-attention only.")
      key, value, decode_mask = self._update_cache(key, value)
      mask = combine_masks(mask, decode_mask)

    # The platform picks the kernel (research.platforms): written out on CPU
    # or with dropout on the probabilities, jax.nn.dot_product_attention
    # (cuDNN's fused kernel on GPU where it applies) elsewhere.
    drop = nn.Dropout(self.dropout, deterministic=False) if self.dropout > 0.0 and train else None
    out = platforms.attention(
      query, key, value, mask=mask, causal=self.causal and not decode, dropout=drop
    )
    return nn.DenseGeneral(
      self.out_dim or dim,
      axis=(-2, -1),
      use_bias=self.use_bias,
      kernel_init=nn.with_logical_partitioning(
        self.out_kernel_init or self.kernel_init, ("heads", "kv", "embed")
      ),
      bias_init=nn.with_logical_partitioning(self.bias_init, ("embed",)),
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      dot_general=dot_general,
      name="out",
    )(out)

  def _update_cache(self, key: jax.Array, value: jax.Array):
    """Writes key/value [B, L, N, H] at the cache index; returns the whole cache
    [B, max_len, N, H] and the mask bool [1, 1, L, max_len] of what chunk
    position i may see (cache slots <= index + i)."""
    initialized = self.has_variable("cache", "cached_key")
    cached_key = self.variable("cache", "cached_key", jnp.zeros, key.shape, key.dtype)
    cached_value = self.variable("cache", "cached_value", jnp.zeros, value.shape, value.dtype)
    index = self.variable("cache", "cache_index", lambda: jnp.array(0, jnp.int32))
    length = key.shape[1]
    if not initialized:
      # The call that creates the cache (init with the full max_len input)
      # attends causally over its own input and writes nothing.
      return key, value, causal_mask(length)
    i = index.value
    key = jax.lax.dynamic_update_slice(
      cached_key.value, key.astype(cached_key.value.dtype), (0, i, 0, 0)
    )
    value = jax.lax.dynamic_update_slice(
      cached_value.value, value.astype(cached_value.value.dtype), (0, i, 0, 0)
    )
    cached_key.value, cached_value.value = key, value
    index.value = i + length
    visible = jnp.arange(key.shape[1])[None, :] <= (i + jnp.arange(length))[:, None]
    return key, value, visible[None, None]


# --------------------------------------------------------------------------- positions


def _position_offset(module: nn.Module, length: int, decode: bool) -> jax.Array | int:
  """0, or in decode mode the number of positions already seen (then advanced by `length`)."""
  if not decode:
    return 0
  initialized = module.has_variable("cache", "position_index")
  index = module.variable("cache", "position_index", lambda: jnp.array(0, jnp.int32))
  if not initialized:
    return 0
  offset = index.value
  index.value = offset + length
  return offset


class LearnedPositions(nn.Module):
  """Adds a learned position embedding: x [B, T, D] -> x + P[offset : offset + T].

  `max_len` rows; T > max_len is an error. In decode mode the offset is the
  number of positions fed so far (kept in the 'cache' collection); positions
  past max_len are the caller's responsibility (they would be clamped).
  """

  max_len: int
  embedding_init: Initializer = nn.initializers.normal(stddev=0.02)
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, decode: bool = False) -> jax.Array:
    length, dim = x.shape[-2], x.shape[-1]
    if length > self.max_len:
      raise ValueError(f"Sequence length {length} exceeds max_len {self.max_len}.")
    table = self.param("embedding", self.embedding_init, (self.max_len, dim), self.param_dtype)
    offset = _position_offset(self, length, decode)
    pos = jax.lax.dynamic_slice_in_dim(table, offset, length, axis=0)
    return x + pos.astype(self.dtype)


def sinusoidal_table(
  length: int, dim: int, offset: jax.Array | int = 0, max_timescale: float = 10_000.0
) -> jax.Array:
  """float32 [length, dim]: Vaswani et al.'s sin (first half) / cos (second half) table."""
  half = dim // 2
  positions = (jnp.arange(length) + offset).astype(jnp.float32)[:, None]
  inv_freq = jnp.exp(-math.log(max_timescale) * jnp.arange(half, dtype=jnp.float32) / half)
  angles = positions * inv_freq[None, :]
  table = jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)
  return jnp.pad(table, ((0, 0), (0, dim - 2 * half)))  # An odd dim gets a zero column.


class SinusoidalPositions(nn.Module):
  """Adds fixed sinusoidal positions: x [B, T, D] -> x + table[offset : offset + T].

  No parameters and no length limit; decode mode keeps an offset like
  `LearnedPositions`.
  """

  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, decode: bool = False) -> jax.Array:
    length, dim = x.shape[-2], x.shape[-1]
    offset = _position_offset(self, length, decode)
    return x + sinusoidal_table(length, dim, offset).astype(self.dtype)


# --------------------------------------------------------------------------- blocks


class FeedForward(nn.Module):
  """dense(hidden_dim) -> activation -> dense(input dim): [B, T, D] -> [B, T, D]."""

  hidden_dim: int
  activation: str = "gelu"
  use_bias: bool = True
  kernel_init: Initializer = nn.initializers.lecun_normal()
  out_kernel_init: Initializer | None = None
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    # Megatron's layout: the hidden ('mlp') axis is the one tensor parallelism shards.
    dense = lambda features, init, axes, name: nn.Dense(
      features,
      use_bias=self.use_bias,
      kernel_init=nn.with_logical_partitioning(init, axes),
      bias_init=nn.with_logical_partitioning(nn.initializers.zeros, axes[1:]),
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      dot_general=platforms.dense_dot_general(),
      name=name,
    )
    y = dense(self.hidden_dim, self.kernel_init, ("embed", "mlp"), "fc")(x)
    y = partitioning.constrain(y, ("batch", "length", "mlp"))
    y = activation_fn(self.activation)(y)
    return dense(x.shape[-1], self.out_kernel_init or self.kernel_init, ("mlp", "embed"), "proj")(y)


class TransformerBlock(nn.Module):
  """Self-attention (+ optional cross-attention) + feed-forward, with residuals.

  `__call__(x [B, T, D], *, mask, context [B, S, Dc], context_mask, train,
  decode)` -> [B, T, D].

  pre_ln=True (GPT-2 / nanoGPT): x + drop(sublayer(LN(x))); the model adds a
  final LayerNorm after the last block. pre_ln=False (original Transformer,
  BERT): LN(x + drop(sublayer(x))). `dropout` acts on each sublayer's output
  before the residual sum, `attention_dropout` on attention probabilities.
  `residual_init` initialises the projections that write into the residual
  stream (GPT-2 scales them by 1/sqrt(2 * num_layers)).
  """

  num_heads: int
  mlp_dim: int | None = None  # None: mlp_ratio * D.
  mlp_ratio: float = 4.0
  head_dim: int | None = None
  dropout: float = 0.0
  attention_dropout: float = 0.0
  pre_ln: bool = True
  causal: bool = False
  cross_attention: bool = False
  use_bias: bool = True
  activation: str = "gelu"
  layer_norm_eps: float = 1e-5
  kernel_init: Initializer = nn.initializers.lecun_normal()
  residual_init: Initializer | None = None
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(
    self,
    x: jax.Array,
    mask: jax.Array | None = None,
    context: jax.Array | None = None,
    context_mask: jax.Array | None = None,
    train: bool | None = None,
    decode: bool = False,
  ) -> jax.Array:
    # Positional-or-keyword so that `remat_block`'s nn.remat can mark `train`
    # and `decode` static by position; `train` is still required.
    if train is None:
      raise TypeError("TransformerBlock needs train=True or train=False.")
    # Keeps the residual stream split by batch under FSDP / tensor parallelism
    # (weights are then gathered, activations are not); a no-op unless the
    # step is traced for such a mesh (research.models.partitioning).
    x = partitioning.constrain(x, ("batch", "length", "embed"))
    if self.cross_attention != (context is not None):
      raise ValueError("Pass `context` exactly when cross_attention=True.")
    dim = x.shape[-1]
    norm = lambda name: nn.LayerNorm(
      epsilon=self.layer_norm_eps,
      use_bias=self.use_bias,
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      name=name,
    )
    drop = nn.Dropout(self.dropout, deterministic=not train)
    attention = lambda causal, name: MultiHeadAttention(
      self.num_heads,
      head_dim=self.head_dim,
      causal=causal,
      dropout=self.attention_dropout,
      use_bias=self.use_bias,
      kernel_init=self.kernel_init,
      out_kernel_init=self.residual_init,
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      name=name,
    )

    def sublayer(x, fn, norm_name):
      if self.pre_ln:
        return x + drop(fn(norm(norm_name)(x)))
      return norm(norm_name)(x + drop(fn(x)))

    x = sublayer(
      x, lambda h: attention(self.causal, "attn")(h, mask=mask, train=train, decode=decode), "ln_1"
    )
    if self.cross_attention:
      # The context (encoder output) is fixed while decoding: no cache needed.
      x = sublayer(
        x,
        lambda h: attention(False, "cross_attn")(h, context, mask=context_mask, train=train),
        "ln_cross",
      )
    mlp = FeedForward(
      self.mlp_dim or int(self.mlp_ratio * dim),
      activation=self.activation,
      use_bias=self.use_bias,
      kernel_init=self.kernel_init,
      out_kernel_init=self.residual_init,
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      name="mlp",
    )
    return sublayer(x, mlp, "ln_2")


# Rematerialisation (config.remat): what the backward pass may keep from the
# forward pass of each block. 'block' keeps the outputs of the dense layers'
# matmuls (dots without batch dimensions: the projections and the MLP) and
# recomputes the rest (norms, activations, the [T, S] attention scores);
# 'full' keeps nothing but the block's input.
REMAT_POLICIES = {
  "block": jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
  "full": jax.checkpoint_policies.nothing_saveable,
}
REMAT_MODES = ("none",) + tuple(REMAT_POLICIES)


def remat_block(remat: str = "none"):
  """The block class to stack: `TransformerBlock`, or it under `nn.remat`.

  Call the result positionally, `block(x, mask, context, context_mask, train,
  decode)` (nn.remat marks train and decode static by position). The
  parameter tree is the same either way, so checkpoints do not depend on it.
  """
  if remat == "none":
    return TransformerBlock
  if remat not in REMAT_POLICIES:
    raise ValueError(f"Unknown remat {remat!r}; valid: {', '.join(REMAT_MODES)}.")
  # static_argnums count `self` as 0: train is 5, decode is 6.
  return nn.remat(TransformerBlock, static_argnums=(5, 6), policy=REMAT_POLICIES[remat])
