"""U-Net (Ronneberger, Fischer and Brox 2015) for per-pixel classification.

Contracting path: at each level two 3x3 convolutions + ReLU, then a 2x2 max
pool; the width doubles per level in the paper (64, 128, 256, 512, 1024 for
`features`). Expanding path: a 2x2 stride-2 transposed convolution
("up-convolution") halving the width, concatenation with the contracting
path's feature map at that level (the skip connection), two 3x3 convolutions
+ ReLU. A final 1x1 convolution gives the per-pixel logits.

Two departures from the paper, both the common modern practice: 'SAME'
padding (the output has the input's height and width, so no cropping of the
skip maps and no overlap-tile input), and optional GroupNorm after each
convolution (`norm_groups`; 0 = none, as in the paper). Dropout, as in the
paper, sits at the end of the contracting path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from research import platforms


class UNet(nn.Module):
  """Input [batch, H, W, C] (H and W divisible by 2**(len(features) - 1));
  output float32 logits [batch, H, W, num_classes].

  num_classes: labels per pixel (for segmentation with background: the
    task's num_classes + 1).
  features: widths of the levels, top to bottom; the last is the bottleneck.
  norm_groups: GroupNorm groups after each convolution (0 = no normalisation).
  dropout: rate at the end of the contracting path (training only).
  """

  num_classes: int
  features: Sequence[int] = (64, 128, 256, 512, 1024)
  norm_groups: int = 0
  dropout: float = 0.0
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  def _block(self, x: jnp.ndarray, features: int) -> jnp.ndarray:
    for _ in range(2):
      x = nn.Conv(features, (3, 3), dtype=self.dtype, param_dtype=self.param_dtype)(x)
      if self.norm_groups:
        x = nn.GroupNorm(self.norm_groups, dtype=self.dtype, param_dtype=self.param_dtype)(x)
      x = nn.relu(x)
    return x

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
    levels = len(self.features)
    if levels < 1:
      raise ValueError("UNet needs at least one level in `features`.")
    factor = 2 ** (levels - 1)
    if x.ndim != 4 or x.shape[1] % factor or x.shape[2] % factor:
      raise ValueError(
        f"UNet with {levels} levels needs input [batch, H, W, C] with H and W divisible by "
        f"{factor}, got {x.shape}; pad or resize the images, or use fewer levels."
      )
    x = jnp.asarray(x, self.dtype)
    skips = []
    for features in self.features[:-1]:
      x = self._block(x, features)
      skips.append(x)
      x = platforms.max_pool(x, (2, 2))
    x = self._block(x, self.features[-1])
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    for features, skip in zip(reversed(self.features[:-1]), reversed(skips), strict=True):
      x = nn.ConvTranspose(
        features, (2, 2), strides=(2, 2), dtype=self.dtype, param_dtype=self.param_dtype
      )(x)
      x = jnp.concatenate([skip, x], axis=-1)
      x = self._block(x, features)
    x = nn.Conv(self.num_classes, (1, 1), dtype=self.dtype, param_dtype=self.param_dtype)(x)
    return x.astype(jnp.float32)
