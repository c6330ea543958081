"""CPU-only kernels: the same functions as the generic ones, written for XLA CPU.

Only `research.platforms` picks these, and only when the computation runs on
CPU; GPU and TPU runs use the generic ops (cuBLAS/cuDNN-friendly shapes,
`jax.nn.dot_product_attention`, `nn.max_pool`). Each kernel here computes the
same function (values and gradients) as its generic counterpart; the
equivalence tests (tests/test_gpt_speed_equivalence.py,
tests/test_models_speed_equivalence.py) keep proving it. Why each one is
faster on CPU is in its docstring; the measured numbers are in
docs/performance_cpu.md.

Also CPU-only, elsewhere in this package: `cpu_pooling.max_pool` (max pooling
with a cheap exact gradient) and `needs_step_sync` (one step in flight with
several CPU host devices).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp


def flat_dot_general(
  x: jax.Array, kernel: jax.Array, dimension_numbers, precision=None, preferred_element_type=None
) -> jax.Array:
  """`lax.dot_general` for dense layers, computed as one 2-D matmul.

  For the dense-layer pattern, x [*lead, *K] contracted over its trailing
  dims with kernel [*K, *N] over its leading dims (no batch dims) -> [*lead,
  *N], it reshapes to x2 [prod(lead), prod(K)] @ kernel2 [prod(K), prod(N)]:
  the same products and sums, so the same function and gradients. Any other
  dimension numbers go to `lax.dot_general` unchanged.

  Why: the kernel gradient of the N-D form is dot_general(g, x) contracting
  the *leading* (batch, seq) dims of the cotangent g; XLA CPU's dot
  canonicalisation then transposes g, and that transpose gets fused into the
  producer of g (e.g. the exact-GELU backward), which makes the elementwise
  fusion walk memory in transposed order, a large share of gpt_cpu's step.
  On 2-D operands the same gradient is a plain transposed matmul
  (docs/performance_cpu.md, "CPU kernels", has the measurements).
  """
  (x_contract, k_contract), (x_batch, k_batch) = dimension_numbers
  n = len(x_contract)
  if (
    x_batch
    or k_batch
    or tuple(x_contract) != tuple(range(x.ndim - n, x.ndim))
    or tuple(k_contract) != tuple(range(n))
    or x.ndim - n < 1
  ):
    return jax.lax.dot_general(
      x,
      kernel,
      dimension_numbers,
      precision=precision,
      preferred_element_type=preferred_element_type,
    )
  lead, out = x.shape[: x.ndim - n], kernel.shape[n:]
  contract = math.prod(kernel.shape[:n])
  y = jax.lax.dot_general(
    x.reshape(-1, contract),
    kernel.reshape(contract, -1),
    (((1,), (0,)), ((), ())),
    precision=precision,
    preferred_element_type=preferred_element_type,
  )
  return y.reshape(lead + out)


def softmax_attention(
  query: jax.Array,
  key: jax.Array,
  value: jax.Array,
  mask: jax.Array | None = None,
  dropout: Callable[[jax.Array], jax.Array] | None = None,
) -> jax.Array:
  """Attention with the softmax written out, so dropout can act on the probabilities.

  Same contract as `jax.nn.dot_product_attention` (query [B, T, N, H], key/value
  [B, S, N, H], mask broadcastable to [B, N, T, S]) -> [B, T, N, H], and the
  same computation as its XLA implementation (which is also what
  implementation=None picks on GPU unless cuDNN is asked for).

  The heads are moved in front first ([B, N, T, H]), so both matmuls are
  batched over the leading (B, N) dims and the softmax (and its backward)
  reduces over the minor dim of a contiguous [B, N, T, S] array; with
  'btnh,bsnh->bnts' XLA CPU ran the softmax backward on transposed layouts,
  measurably slower (docs/performance_cpu.md, "CPU kernels").
  """
  scale = 1.0 / math.sqrt(query.shape[-1])
  query, key, value = (z.transpose(0, 2, 1, 3) for z in (query, key, value))
  # Logits and softmax in float32 whatever the compute dtype (bfloat16 softmax is lossy).
  logits = jnp.einsum("bnth,bnsh->bnts", query, key, preferred_element_type=jnp.float32) * scale
  if mask is not None:
    # A large finite negative (not -inf), like jax.nn.dot_product_attention:
    # a fully masked row then gives uniform weights instead of NaNs.
    logits = jnp.where(mask, logits, jnp.finfo(jnp.float32).min)
  probs = jax.nn.softmax(logits, axis=-1).astype(value.dtype)
  if dropout is not None:
    probs = dropout(probs)
  return jnp.einsum("bnts,bnsh->bnth", probs, value).transpose(0, 2, 1, 3)


def needs_step_sync(devices: Sequence[jax.Device]) -> bool:
  """True when steps must run one at a time: several CPU devices in this process.

  Why: XLA CPU (jaxlib 0.10.2) launches each device's part of a step as a task
  on one small client thread pool (as many threads as cores), and a task
  blocks that thread while it waits for the device's in-flight slot or for
  the other devices to join an all-reduce. With steps queued ahead by async
  dispatch the pool can fill with one device's waiting tasks while the other
  device's part of the same step never gets a thread: the all-reduce
  rendezvous then aborts the process after 40 s ("Expected 2 threads to join
  the rendezvous, but only 1 of them arrived"). Seen with
  movielens_rating:mf on 2 host devices every run (thread dump: one client
  thread in the all-reduce, the other blocked in Semaphore::Acquire for the
  next launch). Keeping at most one step in flight (`OneInFlight`) fixes it:
  the same run then completed all 6,240 steps. Accelerators and one-device
  CPU runs keep async dispatch.
  """
  local = [d for d in devices if d.process_index == jax.process_index()]
  return len(local) > 1 and all(d.platform == "cpu" for d in local)
