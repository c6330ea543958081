"""LeNet-5 style CNN (LeCun et al. 1998), with relu and max pooling.

conv 5x5 (6, 'SAME') -> relu -> maxpool 2 -> conv 5x5 (16, 'VALID') -> relu ->
maxpool 2 -> flatten -> dense 120 -> relu -> dense 84 -> relu -> dense num_classes.

The first convolution is 'SAME' so that 28x28 inputs (MNIST) give the classic
5x5x16 feature map; 32x32 inputs (CIFAR) give 6x6x16 and work as well.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp


class LeNet(nn.Module):
  """LeNet-5.

  Input [batch, height, width, channels] float (28x28 or 32x32 and up);
  output float32 logits [batch, num_classes].
  """

  num_classes: int
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
    del train  # No dropout or normalisation.
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    x = jnp.asarray(x, self.dtype)
    x = nn.relu(nn.Conv(6, (5, 5), padding="SAME", **kw)(x))
    x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = nn.relu(nn.Conv(16, (5, 5), padding="VALID", **kw)(x))
    x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(nn.Dense(120, **kw)(x))
    x = nn.relu(nn.Dense(84, **kw)(x))
    x = nn.Dense(self.num_classes, **kw)(x)
    return x.astype(jnp.float32)
