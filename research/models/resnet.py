"""ResNet v1.5 (He et al. 2016; torchvision's variant) with BatchNorm.

v1.5 puts the stride of a downsampling bottleneck on its 3x3 convolution rather
than on the first 1x1 (as torchvision and the flax ImageNet example do). Basic
blocks for ResNet-18/34, bottlenecks for ResNet-50. A shortcut is a projection
(1x1 conv + BatchNorm) whenever the block changes the spatial size or the
channel count, identity otherwise.

Layers match torchvision one-to-one (bias-free convolutions, BatchNorm with
momentum 0.9 in flax's convention = 0.1 in PyTorch's, epsilon 1e-5, explicit
symmetric padding), so parameter counts match too: ResNet-18 11,689,512 and
ResNet-50 25,557,032 with the ImageNet stem and 1000 classes.

BatchNorm statistics: under `jax.jit` leave `axis_name=None` (the batch is
global there, so statistics already cover all of it). Under `jax.pmap` set
`axis_name` to the mapped axis name so that the batch mean and mean of squares
are averaged across devices, which gives the same statistics as one jit call
on the concatenated batch (for equal per-device batch sizes).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax.numpy as jnp

# torchvision's `kaiming_normal_(mode='fan_out', nonlinearity='relu')`.
conv_kernel_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


class BasicBlock(nn.Module):
  """Two 3x3 convolutions (ResNet-18/34).

  [batch, height, width, in_channels] ->
  [batch, height / strides, width / strides, features].
  """

  features: int
  strides: int
  conv: Callable[..., nn.Module]
  norm: Callable[..., nn.Module]
  zero_init_residual: bool

  expansion: ClassVar[int] = 1

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    residual = x
    y = self.conv(self.features, (3, 3), strides=self.strides, padding=((1, 1), (1, 1)))(x)
    y = nn.relu(self.norm()(y))
    y = self.conv(self.features, (3, 3), padding=((1, 1), (1, 1)))(y)
    y = self.norm(scale_init=_last_scale_init(self.zero_init_residual))(y)
    return nn.relu(y + _shortcut(residual, y.shape[-1], self.strides, self.conv, self.norm))


class Bottleneck(nn.Module):
  """1x1 -> 3x3 (strided, v1.5) -> 1x1 (4x features) (ResNet-50 and up).

  [batch, height, width, in_channels] ->
  [batch, height / strides, width / strides, 4 * features].
  """

  features: int
  strides: int
  conv: Callable[..., nn.Module]
  norm: Callable[..., nn.Module]
  zero_init_residual: bool

  expansion: ClassVar[int] = 4

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    residual = x
    y = self.conv(self.features, (1, 1))(x)
    y = nn.relu(self.norm()(y))
    y = self.conv(self.features, (3, 3), strides=self.strides, padding=((1, 1), (1, 1)))(y)
    y = nn.relu(self.norm()(y))
    y = self.conv(self.features * self.expansion, (1, 1))(y)
    y = self.norm(scale_init=_last_scale_init(self.zero_init_residual))(y)
    return nn.relu(y + _shortcut(residual, y.shape[-1], self.strides, self.conv, self.norm))


def _last_scale_init(zero: bool):
  # Zero scale on a block's last BatchNorm makes every block start as the
  # identity, which helps large-batch training (Goyal et al. 2017).
  return nn.initializers.zeros if zero else nn.initializers.ones


def _shortcut(x, features, strides, conv, norm):
  """Identity, or 1x1 conv + BatchNorm when the shape changes."""
  if strides == 1 and x.shape[-1] == features:
    return x
  # Called inside the block's compact __call__, so these get the block as parent;
  # explicit names keep parameter paths readable.
  x = conv(features, (1, 1), strides=strides, name="proj_conv")(x)
  return norm(name="proj_norm")(x)


class ResNet(nn.Module):
  """ResNet classifier; subclasses fix depth via `stage_sizes` and `block`.

  Input [batch, height, width, channels] float; output float32 logits
  [batch, num_classes]. Stage i has `width * 2**i` base features (times the
  block's expansion); every stage after the first halves height and width.

  Fields:
    stem: 'imagenet' = 7x7/2 conv + BN + relu + 3x3/2 max pool (224x224 inputs);
      'small' = 3x3/1 conv + BN + relu, no pool (28x28 / 32x32 inputs).
    zero_init_residual: zero-initialise each block's last BatchNorm scale.
    axis_name: None under jit; the pmap axis name under pmap (see module doc).
  """

  num_classes: int
  width: int = 64
  stem: str = "imagenet"
  zero_init_residual: bool = True
  axis_name: str | None = None
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  stage_sizes: ClassVar[Sequence[int]] = ()
  block: ClassVar[type[nn.Module]] = BasicBlock

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
    if not self.stage_sizes:
      raise TypeError("ResNet is a base class; use ResNet18/34/50 or ResNetTiny.")
    if self.stem not in ("imagenet", "small"):
      raise ValueError(f"stem must be 'imagenet' or 'small', got {self.stem!r}.")
    conv = functools.partial(
      nn.Conv,
      use_bias=False,
      kernel_init=conv_kernel_init,
      dtype=self.dtype,
      param_dtype=self.param_dtype,
    )
    norm = functools.partial(
      nn.BatchNorm,
      use_running_average=not train,
      momentum=0.9,
      epsilon=1e-5,
      axis_name=self.axis_name,
      dtype=self.dtype,
      param_dtype=self.param_dtype,
    )

    x = jnp.asarray(x, self.dtype)
    if self.stem == "imagenet":
      x = conv(self.width, (7, 7), strides=2, padding=((3, 3), (3, 3)), name="stem_conv")(x)
      x = nn.relu(norm(name="stem_norm")(x))
      # max_pool pads with -inf, so padding never wins the max (as in PyTorch).
      x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    else:
      x = conv(self.width, (3, 3), padding=((1, 1), (1, 1)), name="stem_conv")(x)
      x = nn.relu(norm(name="stem_norm")(x))

    for i, num_blocks in enumerate(self.stage_sizes):
      for j in range(num_blocks):
        strides = 2 if i > 0 and j == 0 else 1
        x = self.block(
          self.width * 2**i,
          strides,
          conv,
          norm,
          self.zero_init_residual,
          name=f"stage{i + 1}_block{j + 1}",
        )(x)

    x = jnp.mean(x, axis=(1, 2))  # Global average pool: [batch, features].
    x = nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype, name="head")(x)
    return x.astype(jnp.float32)


class ResNet18(ResNet):
  """ResNet-18: basic blocks (2, 2, 2, 2)."""

  stage_sizes: ClassVar[Sequence[int]] = (2, 2, 2, 2)
  block: ClassVar[type[nn.Module]] = BasicBlock


class ResNet34(ResNet):
  """ResNet-34: basic blocks (3, 4, 6, 3)."""

  stage_sizes: ClassVar[Sequence[int]] = (3, 4, 6, 3)
  block: ClassVar[type[nn.Module]] = BasicBlock


class ResNet50(ResNet):
  """ResNet-50: bottleneck blocks (3, 4, 6, 3)."""

  stage_sizes: ClassVar[Sequence[int]] = (3, 4, 6, 3)
  block: ClassVar[type[nn.Module]] = Bottleneck


class ResNetTiny(ResNet):
  """Two stages of one basic block each, base width 8: a seconds-fast ResNet for tests."""

  width: int = 8
  stage_sizes: ClassVar[Sequence[int]] = (1, 1)
  block: ClassVar[type[nn.Module]] = BasicBlock
