"""The MNIST-1D paper's convolutional baseline (Greydanus 2020, `ConvBase`).

Three 1-D convolutions, each stride 2, padding 1, relu, 25 channels, with kernel
sizes 5, 3, 3 as in greydanus/mnist1d `models.py` (`nn.Conv1d(1, 25, 5, ...)`,
then `nn.Conv1d(25, 25, 3, ...)` twice), then one linear layer. For length-40
inputs the lengths go 40 -> 19 -> 10 -> 5, so the linear layer sees 5 * 25 = 125
features (the reference's `linear_in=125`), about 5.2k parameters in all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp


class CNN1D(nn.Module):
  """1-D CNN for sequences.

  Input [batch, length, channels] float (MNIST-1D: [batch, 40, 1]); a
  [batch, length] input is treated as one channel. Output float32 logits
  [batch, num_classes].
  """

  num_classes: int
  channels: int = 25
  kernel_sizes: Sequence[int] = (5, 3, 3)
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
    del train  # No dropout or normalisation.
    x = jnp.asarray(x, self.dtype)
    if x.ndim == 2:
      # The mnist1d package stores signals as [num_examples, 40], no channel axis.
      x = x[..., None]
    for kernel in self.kernel_sizes:
      # Explicit (1, 1) padding reproduces PyTorch's padding=1 exactly.
      x = nn.Conv(
        self.channels,
        (kernel,),
        strides=(2,),
        padding=((1, 1),),
        dtype=self.dtype,
        param_dtype=self.param_dtype,
      )(x)
      x = nn.relu(x)
    x = x.reshape((x.shape[0], -1))
    x = nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype)(x)
    return x.astype(jnp.float32)
