"""The two-convolution CNN of the flax MNIST example / Fashion-MNIST benchmarks.

conv 3x3 (32) -> relu -> maxpool 2 -> conv 3x3 (64) -> relu -> maxpool 2 ->
flatten -> dense (256) -> relu -> dropout -> dense (num_classes).

Kept deliberately plain and NHWC (XLA CPU's native convolution layout), since
this is the model the CPU benchmarks time. The one speed choice is `pool_impl`:
both implementations compute the same function with the same gradients (bit for
bit; tests/test_models_speed_equivalence.py), the default one is ~10x cheaper to
differentiate on XLA CPU (see research/platforms/cpu_pooling.py). It has no parameters,
so the parameter tree (and checkpoints) do not depend on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from research import platforms
from research.platforms import cpu_pooling

POOL_IMPLS = ("auto", "reshape", "reduce_window")


class CNN(nn.Module):
  """Small image CNN.

  Input [batch, height, width, channels] float (e.g. [batch, 28, 28, 1]);
  output float32 logits [batch, num_classes]. Convolutions use 'SAME' padding,
  so a 28x28 input reaches the dense layer as 7x7x64.

  `return_features=True` returns the penultimate activations [batch, hidden]
  (after the hidden layer's ReLU, before dropout) instead of the logits: the
  feature space of research.metrics.generative (FID, precision/recall).

  pool_impl: how the 2x2 max pools are computed: 'auto' (the platform's
    choice, research.platforms.max_pool), 'reshape' (reshape + max with an
    explicit select-the-first-max derivative, `cpu_pooling.max_pool`, much
    faster on CPU) or 'reduce_window' (`nn.max_pool`, whose gradient is XLA's
    select-and-scatter). Same values and gradients either way.
  """

  num_classes: int
  features: Sequence[int] = (32, 64)
  hidden: int = 256
  dropout: float = 0.0
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  pool_impl: str = "auto"

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool, return_features: bool = False) -> jnp.ndarray:
    if self.pool_impl not in POOL_IMPLS:
      raise ValueError(f"pool_impl must be one of {POOL_IMPLS}, got {self.pool_impl!r}.")
    x = jnp.asarray(x, self.dtype)
    for features in self.features:
      x = nn.Conv(features, (3, 3), dtype=self.dtype, param_dtype=self.param_dtype)(x)
      x = nn.relu(x)
      if self.pool_impl == "auto":
        x = platforms.max_pool(x, (2, 2))
      elif self.pool_impl == "reshape":
        x = cpu_pooling.max_pool(x, (2, 2))
      else:
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = x.reshape((x.shape[0], -1))
    x = nn.Dense(self.hidden, dtype=self.dtype, param_dtype=self.param_dtype)(x)
    x = nn.relu(x)
    if return_features:
      return x.astype(jnp.float32)
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    x = nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype)(x)
    return x.astype(jnp.float32)
