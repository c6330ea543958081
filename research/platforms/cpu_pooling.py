"""Non-overlapping max pooling with a cheap, exact gradient (for XLA CPU).

`flax.linen.max_pool` is `lax.reduce_window(max)`, whose gradient is XLA's
`select-and-scatter`. On XLA CPU that op is a slow scalar loop that cost the
'cnn' model more than both its convolutions (docs/performance_cpu.md, "CPU
kernels").

`max_pool` here computes the same function with a reshape and a max over the
window axes, and defines its derivative explicitly: the cotangent of each
output goes to the *first* maximal element of its window in row-major window
order, which is exactly what select-and-scatter (select = `>=`) does. Windows
do not overlap, so each input receives either one cotangent or zero and no
sums are formed: outputs and gradients equal `nn.max_pool`'s bit for bit
(tests/test_models_speed_equivalence.py), including ties (e.g. a constant
background region, where several window elements are equal).

The derivative is a `custom_jvp` (a masked selection, linear in the tangent),
so forward mode, reverse mode and higher orders all work, and XLA fuses the
backward pass into a few elementwise loops.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp


def max_pool(x: jax.Array, window: Sequence[int] = (2, 2)) -> jax.Array:
  """Max pooling with strides == window and 'VALID' padding.

  Args:
    x: [batch, height, width, channels] (NHWC).
    window: (wh, ww) window size, also the strides.

  Returns:
    [batch, height // wh, width // ww, channels]; same values and gradients as
    `nn.max_pool(x, window, strides=window, padding='VALID')`. Trailing rows /
    columns that do not fill a window are dropped (their gradient is 0), as
    with 'VALID' padding.
  """
  wh, ww = (int(w) for w in window)
  if x.ndim != 4:
    raise ValueError(f"max_pool expects NHWC [batch, height, width, channels], got {x.shape}.")
  _b, h, w, _c = x.shape
  if h < wh or w < ww:
    raise ValueError(f"Window {window} is larger than the {h}x{w} input.")
  x = x[:, : h // wh * wh, : w // ww * ww, :]
  return _max_pool_impl(x, wh, ww)


def _windows(x: jax.Array, wh: int, ww: int) -> jax.Array:
  """[b, H, W, c] -> [b, H/wh, wh, W/ww, ww, c] (a free reshape of row-major NHWC)."""
  b, h, w, c = x.shape
  return x.reshape(b, h // wh, wh, w // ww, ww, c)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _max_pool_impl(x: jax.Array, wh: int, ww: int) -> jax.Array:
  return _windows(x, wh, ww).max(axis=(2, 4))


def _first_max_mask(x: jax.Array, y: jax.Array, wh: int, ww: int) -> jax.Array:
  """bool [b, H/wh, wh, W/ww, ww, c]: True at the first maximum of each window.

  "First" is row-major order inside the window, the order in which XLA's
  select-and-scatter visits it, keeping the earlier element on ties.
  """
  xw = _windows(x, wh, ww)
  # Window position p = i * ww + j of every element; the first hit is the
  # smallest p whose value equals the window's max.
  pos = (jnp.arange(wh)[:, None, None] * ww + jnp.arange(ww)[None, None, :]).astype(jnp.int32)
  pos = pos.reshape(1, 1, wh, 1, ww, 1)
  hit = xw == y[:, :, None, :, None, :]
  sentinel = jnp.int32(wh * ww)  # a window whose max is NaN has no hit: use its last element
  first = jnp.min(jnp.where(hit, pos, sentinel), axis=(2, 4), keepdims=True)
  first = jnp.minimum(first, sentinel - 1)
  return pos == first


@_max_pool_impl.defjvp
def _max_pool_jvp(wh, ww, primals, tangents):
  (x,), (t,) = primals, tangents
  y = _max_pool_impl(x, wh, ww)
  mask = _first_max_mask(x, y, wh, ww)
  # Exactly one True per window: the sum adds zeros to one element, so it is exact.
  t_out = jnp.where(mask, _windows(t, wh, ww), jnp.zeros((), t.dtype)).sum(axis=(2, 4))
  return y, t_out
