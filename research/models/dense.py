"""Dense classifiers on flattened inputs: multinomial logistic regression and an MLP.

Both accept any input shape [batch, ...] and flatten everything after the batch
dimension, so the same model runs on images [batch, height, width, channels],
sequences [batch, length, channels] and tabular rows [batch, features].
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp


def flatten(x: jnp.ndarray) -> jnp.ndarray:
  """[batch, ...] -> [batch, prod(...)]."""
  return x.reshape((x.shape[0], -1))


class Logistic(nn.Module):
  """Multinomial logistic regression: flatten, one dense layer, logits.

  Input [batch, ...] float; output float32 logits [batch, num_classes].
  """

  num_classes: int
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
    del train  # No dropout or normalisation: train and eval are the same function.
    x = flatten(jnp.asarray(x, self.dtype))
    x = nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype)(x)
    # Losses and metrics expect float32 logits whatever the compute dtype.
    return x.astype(jnp.float32)


class MLP(nn.Module):
  """Flatten, then `hidden` dense+relu layers (each followed by dropout), then logits.

  Input [batch, ...] float; output float32 logits [batch, num_classes].
  Dropout (rate `dropout`, 'dropout' rng stream) is active only when `train`.
  """

  num_classes: int
  hidden: Sequence[int] = (256, 128, 64)
  dropout: float = 0.0
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
    x = flatten(jnp.asarray(x, self.dtype))
    for width in self.hidden:
      x = nn.Dense(width, dtype=self.dtype, param_dtype=self.param_dtype)(x)
      x = nn.relu(x)
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    x = nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype)(x)
    return x.astype(jnp.float32)
