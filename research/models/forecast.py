"""Forecasters of the next-day return distribution from a window of past returns.

Input float [B, window, assets] (log returns in percent); output float32
[B, num_outputs]. With the 'risk_forecast' task num_outputs = 3 (mean,
volatility, 1% quantile; see `research.tasks.split_forecast`); with the
classification task (direction of the next move) num_outputs = 2 logits.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from research.models.transformer import LearnedPositions, TransformerBlock


class LSTMForecaster(nn.Module):
  """Stacked LSTM over the window; the last hidden state feeds a dense head.

  [B, T, A] -> [B, num_outputs].
  """

  num_outputs: int = 3
  hidden: int = 32
  num_layers: int = 1
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    x = x.astype(jnp.float32)
    for i in range(self.num_layers):
      x = nn.RNN(nn.OptimizedLSTMCell(self.hidden), name=f"lstm_{i}")(x)  # [B, T, H]
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(self.num_outputs, name="head")(x[:, -1]).astype(jnp.float32)


class TransformerForecaster(nn.Module):
  """Linear embedding of each day + learned positions, causal pre-LN Transformer
  blocks (shared `TransformerBlock`), head on the last day's state.

  [B, T, A] -> [B, num_outputs].
  """

  num_outputs: int = 3
  dim: int = 32
  num_layers: int = 2
  num_heads: int = 4
  max_len: int = 256
  dropout: float = 0.1

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    if x.shape[1] > self.max_len:
      raise ValueError(f"window {x.shape[1]} > max_len {self.max_len}; raise model.max_len.")
    h = nn.Dense(self.dim, name="embed")(x.astype(jnp.float32))
    h = LearnedPositions(self.max_len, name="positions")(h)
    for i in range(self.num_layers):
      h = TransformerBlock(self.num_heads, dropout=self.dropout, causal=True, pre_ln=True,
                           name=f"block_{i}")(h, train=train)
    h = nn.LayerNorm(name="final_ln")(h[:, -1])
    return nn.Dense(self.num_outputs, name="head")(h).astype(jnp.float32)
