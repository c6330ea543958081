"""What differs by platform, asked in one place.

Models, the step and the backends ask this module which kernel to use; they
never test the platform themselves. The CPU-only kernels (written-out
attention, 2-D dense matmuls, max pooling with a cheap gradient, one step in
flight with several host devices) live in `research.platforms.cpu` and
`research.platforms.cpu_pooling` and are picked only when the computation runs
on CPU; `research.platforms.xla_flags` holds the CPU-only XLA flags and host devices.
GPU and TPU runs get the generic ops: `jax.nn.dot_product_attention` (cuDNN's
fused kernel on GPU where it applies), `lax.dot_general`, `nn.max_pool`.

The choice is made when a function is traced, from `jax.default_backend()`
(the platform the computation is compiled for in this codebase: one platform
per process).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from research.platforms import cpu, cpu_pooling
from research.platforms.cpu import needs_step_sync

__all__ = ["attention", "dense_dot_general", "max_pool", "needs_step_sync", "on_cpu"]


def on_cpu() -> bool:
  return jax.default_backend() == "cpu"


def dense_dot_general() -> Callable:
  """The `dot_general` for dense layers: one 2-D matmul on CPU, plain elsewhere."""
  return cpu.flat_dot_general if on_cpu() else jax.lax.dot_general


def max_pool(x: jax.Array, window: Sequence[int] = (2, 2)) -> jax.Array:
  """Non-overlapping max pooling, NHWC [B, H, W, C] -> [B, H/wh, W/ww, C]."""
  if on_cpu():
    return cpu_pooling.max_pool(x, window)
  return nn.max_pool(x, tuple(window), strides=tuple(window))


def attention(
  query: jax.Array,
  key: jax.Array,
  value: jax.Array,
  *,
  mask: jax.Array | None = None,
  causal: bool = False,
  dropout: Callable[[jax.Array], jax.Array] | None = None,
) -> jax.Array:
  """Dot-product attention: query [B, T, N, H], key/value [B, S, N, H] -> [B, T, N, H].

  mask: bool, broadcastable to [B, N, T, S] (True = may attend); causal: also
  mask keys after each query (queries are the last T positions of the keys).
  dropout: applied to the attention probabilities (training only).

  CPU, or dropout on the probabilities (which needs the softmax written out on
  any platform): `cpu.softmax_attention`. GPU: cuDNN's fused kernel where it
  applies (bfloat16/float16 inputs, no mask beyond the causal one, head dim a
  multiple of 8 up to 128), else XLA's. TPU: XLA's.
  """
  if on_cpu() or dropout is not None:
    if causal:
      mask = _and(mask, _causal(query.shape[1], key.shape[1]))
    return cpu.softmax_attention(query, key, value, mask, dropout=dropout)
  if mask is not None and causal:  # one mask: fold the causal one in
    mask, causal = _and(mask, _causal(query.shape[1], key.shape[1])), False
  if causal and query.shape[1] != key.shape[1]:  # a suffix of queries: an explicit mask
    mask, causal = _causal(query.shape[1], key.shape[1]), False
  implementation: Literal["cudnn"] | None = None  # None: XLA's
  if (
    jax.default_backend() == "gpu"
    and mask is None
    and query.dtype in (jnp.bfloat16, jnp.float16)
    and query.shape[-1] % 8 == 0
    and query.shape[-1] <= 128
  ):
    implementation = "cudnn"  # fused flash attention; causal or no mask only, here
  if mask is not None:
    mask = jnp.broadcast_to(mask, (query.shape[0], query.shape[2], query.shape[1], key.shape[1]))
  return jax.nn.dot_product_attention(
    query, key, value, mask=mask, is_causal=causal, implementation=implementation
  )


def _causal(query_len: int, key_len: int) -> jax.Array:
  """bool [1, 1, T, S] (models.transformer.causal_mask; not imported: it imports this module)."""
  q = jnp.arange(query_len)[:, None] + (key_len - query_len)
  return (jnp.arange(key_len)[None, :] <= q)[None, None]


def _and(a: Any, b: jax.Array) -> jax.Array:
  return b if a is None else jnp.logical_and(a, b)
