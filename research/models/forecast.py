"""Forecasters of the next-day return distribution from a window of past returns.

Input float [B, window, assets] (log returns in percent); output float32
[B, num_outputs] (+1, see below). With the 'risk_forecast' task num_outputs =
3 (mean, volatility, 1% quantile; see `research.core.tasks.split_forecast`); with
the classification task (direction of the next move) num_outputs = 2 logits.

`ewma_scale=True` (the default) divides each asset's returns by its
RiskMetrics volatility over the window (EWMA of squared returns, decay 0.94)
before the network sees them, and, for num_outputs = 3, appends the target
asset's RiskMetrics volatility as a 4th output column, the unit of the
forecast mean and volatility. Why: volatility regimes drift (the 1995-1998
evaluation period of EuStockMarkets is far more volatile than 1991-1994), and
a network fed raw returns must extrapolate to levels it never saw; in units of
the recent volatility the inputs and targets stay on one scale.
"""

from __future__ import annotations

from typing import Any, cast

import flax.linen as nn
import jax
import jax.numpy as jnp

from research.models.transformer import LearnedPositions, remat_block


def ewma_volatility(x: jax.Array, decay: float) -> jax.Array:
  """RiskMetrics volatility of each asset over the window: [B, T, A] -> [B, A]
  (weights decay^(T-1-t), normalised; floor 1e-3 against flat windows)."""
  t = x.shape[1]
  w = decay ** jnp.arange(t - 1, -1, -1, dtype=jnp.float32)
  w = w / w.sum()
  return jnp.sqrt(jnp.einsum("t,bta->ba", w, jnp.square(x)) + 1e-6)


def _normalise(x: jax.Array, enabled: bool, decay: float, target_asset: int):
  """(inputs in units of their EWMA volatility, target asset's scale [B] or None)."""
  x = x.astype(jnp.float32)
  if not enabled:
    return x, None
  scale = jax.lax.stop_gradient(ewma_volatility(x, decay))  # [B, A]
  return x / scale[:, None, :], scale[:, target_asset]


def _head(
  module: nn.Module, h: jax.Array, scale, num_outputs: int, tail_per_example: bool
) -> jax.Array:
  """Dense head [B, H] -> [B, num_outputs] (+ scale column). For the risk task
  (num_outputs = 3) the tail multiple is one learned scalar unless
  `tail_per_example`: with ~1% of days in the tail, a per-day tail estimate has
  a handful of examples to learn from and overfits them."""
  if num_outputs == 3 and not tail_per_example:
    out = nn.Dense(2, dtype=module.dtype, param_dtype=module.param_dtype, name="head")(h)
    tail = module.param("tail", nn.initializers.zeros, (1,), module.param_dtype)
    out = jnp.concatenate([out, jnp.broadcast_to(tail, (h.shape[0], 1))], axis=-1)
  else:
    out = nn.Dense(num_outputs, dtype=module.dtype, param_dtype=module.param_dtype, name="head")(h)
  if scale is None or num_outputs != 3:
    return out.astype(jnp.float32)
  return jnp.concatenate([out, scale[:, None]], axis=-1).astype(jnp.float32)


class LSTMForecaster(nn.Module):
  """Stacked LSTM over the window; the last hidden state feeds a dense head.

  [B, T, A] -> [B, num_outputs] (+ the scale column, see the module docstring).
  """

  num_outputs: int = 3
  hidden: int = 32
  num_layers: int = 1
  dropout: float = 0.0
  ewma_scale: bool = True
  ewma_decay: float = 0.94
  target_asset: int = 0
  tail_per_example: bool = False
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    x, scale = _normalise(x, self.ewma_scale, self.ewma_decay, self.target_asset)
    for i in range(self.num_layers):
      cell = nn.OptimizedLSTMCell(self.hidden, dtype=self.dtype, param_dtype=self.param_dtype)
      # flax types the result as `Array | (carry, Array)`; without return_carry it is the Array.
      x = cast(jax.Array, nn.RNN(cell, name=f"lstm_{i}")(x))  # [B, T, H]
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return _head(self, x[:, -1], scale, self.num_outputs, self.tail_per_example)


class TransformerForecaster(nn.Module):
  """Linear embedding of each day + learned positions, causal pre-LN Transformer
  blocks (shared `TransformerBlock`), head on the last day's state.

  [B, T, A] -> [B, num_outputs] (+ the scale column, see the module docstring).
  """

  num_outputs: int = 3
  dim: int = 32
  num_layers: int = 2
  num_heads: int = 4
  max_len: int = 256
  dropout: float = 0.1
  ewma_scale: bool = True
  ewma_decay: float = 0.94
  target_asset: int = 0
  tail_per_example: bool = False
  remat: str = "none"  # "none" | "block" | "full" (research.models.transformer.remat_block)
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    if x.shape[1] > self.max_len:
      raise ValueError(f"window {x.shape[1]} > max_len {self.max_len}; raise model.max_len.")
    x, scale = _normalise(x, self.ewma_scale, self.ewma_decay, self.target_asset)
    h = nn.Dense(self.dim, dtype=self.dtype, param_dtype=self.param_dtype, name="embed")(x)
    h = LearnedPositions(
      self.max_len, dtype=self.dtype, param_dtype=self.param_dtype, name="positions"
    )(h)
    for i in range(self.num_layers):
      h = remat_block(self.remat)(
        self.num_heads,
        dropout=self.dropout,
        causal=True,
        pre_ln=True,
        dtype=self.dtype,
        param_dtype=self.param_dtype,
        name=f"block_{i}",
      )(h, None, None, None, train, False)
    h = nn.LayerNorm(dtype=self.dtype, param_dtype=self.param_dtype, name="final_ln")(h[:, -1])
    return _head(self, h, scale, self.num_outputs, self.tail_per_example)
