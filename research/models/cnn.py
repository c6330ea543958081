"""The two-convolution CNN of the flax MNIST example / Fashion-MNIST benchmarks.

conv 3x3 (32) -> relu -> maxpool 2 -> conv 3x3 (64) -> relu -> maxpool 2 ->
flatten -> dense (256) -> relu -> dropout -> dense (num_classes).

Kept deliberately plain and NHWC (XLA CPU's native convolution layout), since
this is the model the CPU benchmarks time; tuning belongs in the benchmark.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp


class CNN(nn.Module):
  """Small image CNN.

  Input [batch, height, width, channels] float (e.g. [batch, 28, 28, 1]);
  output float32 logits [batch, num_classes]. Convolutions use 'SAME' padding,
  so a 28x28 input reaches the dense layer as 7x7x64.
  """

  num_classes: int
  features: Sequence[int] = (32, 64)
  hidden: int = 256
  dropout: float = 0.0
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
    x = jnp.asarray(x, self.dtype)
    for features in self.features:
      x = nn.Conv(features, (3, 3), dtype=self.dtype, param_dtype=self.param_dtype)(x)
      x = nn.relu(x)
      x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = x.reshape((x.shape[0], -1))
    x = nn.Dense(self.hidden, dtype=self.dtype, param_dtype=self.param_dtype)(x)
    x = nn.relu(x)
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    x = nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype)(x)
    return x.astype(jnp.float32)
