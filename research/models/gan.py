"""DCGAN (Radford et al. 2016) for small grey images, as one module with two players.

The parameters are {'generator': ..., 'discriminator': ...}, so an optimizer
per player is an optimizer per top-level parameter group
(`config.optimizer.groups`, research.train.optim), and the shared training step
needs nothing GAN-specific: `__call__` returns the discriminator's logits in
such a way that the gradient of one scalar (research.core.tasks.GANTask) is
each player's own gradient:

  L = L_D(theta_D; x, stop_gradient(G(z))) + L_G(theta_G; stop_gradient(theta_D))

The generator's fakes reach L_D through `stop_gradient`, and the discriminator
sees the fakes for L_G through parameters whose gradient is stopped
(`nn.map_variables`), so theta_D gets exactly dL_D and theta_G exactly dL_G: a
simultaneous update of both players in one compiled step.

The generator follows DCGAN (project, then stride-2 transposed convolutions
with BatchNorm and ReLU, tanh output); the discriminator uses stride-2
convolutions with leaky ReLU and no normalisation, so its two calls per step
(real and fake batches) share no batch statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

# DCGAN's initialisation: "all weights ... from a zero-centered Normal
# distribution with standard deviation 0.02" (Radford et al. 2016, section 4).
_INIT = nn.initializers.normal(stddev=0.02)


class Generator(nn.Module):
  """z [batch, latent_dim] -> images [batch, size, size, channels] in [-1, 1].

  size = 4 * base_size when `features` has two entries (7 -> 28): each entry
  but the last doubles the resolution with a 4x4 stride-2 transposed conv.
  """

  features: Sequence[int] = (128, 64)
  base_size: int = 7
  channels: int = 1
  axis_name: str | None = None
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z: jax.Array, *, train: bool) -> jax.Array:
    def norm(x):
      return nn.BatchNorm(
        use_running_average=not train,
        momentum=0.9,
        axis_name=self.axis_name,
        dtype=self.dtype,
        param_dtype=self.param_dtype,
      )(x)

    s, f0 = self.base_size, self.features[0]
    x = nn.Dense(
      s * s * f0, use_bias=False, dtype=self.dtype, param_dtype=self.param_dtype, kernel_init=_INIT
    )(jnp.asarray(z, self.dtype))
    x = nn.relu(norm(x.reshape((z.shape[0], s, s, f0))))
    for features in self.features[1:]:
      x = nn.ConvTranspose(
        features,
        (4, 4),
        strides=(2, 2),
        use_bias=False,
        dtype=self.dtype,
        param_dtype=self.param_dtype,
        kernel_init=_INIT,
      )(x)
      x = nn.relu(norm(x))
    x = nn.ConvTranspose(
      self.channels,
      (4, 4),
      strides=(2, 2),
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      kernel_init=_INIT,
    )(x)
    return jnp.tanh(x.astype(jnp.float32))


class Discriminator(nn.Module):
  """Images [batch, H, W, C] in [-1, 1] -> real-vs-fake logits [batch] (float32)."""

  features: Sequence[int] = (64, 128)
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = jnp.asarray(x, self.dtype)
    for features in self.features:
      x = nn.Conv(
        features,
        (4, 4),
        strides=(2, 2),
        dtype=self.dtype,
        param_dtype=self.param_dtype,
        kernel_init=_INIT,
      )(x)
      x = nn.leaky_relu(x, 0.2)
    x = x.reshape((x.shape[0], -1))
    x = nn.Dense(1, dtype=self.dtype, param_dtype=self.param_dtype, kernel_init=_INIT)(x)
    return x[:, 0].astype(jnp.float32)


class DCGAN(nn.Module):
  """Generator and discriminator under one parameter tree.

  `__call__(images [b, H, W, C] in [-1, 1], train)` -> {'real': D(x) [b],
  'fake': D(stop_gradient(G(z))) [b], 'fake_for_generator': D with stopped
  parameters on G(z) [b]}, all logits. z ~ N(0, I) [b, latent_dim] is drawn
  from the 'dropout' rng stream, which the shared step keys by `fold_in(rng,
  step)`: a resumed run draws the same noise. With train=False (init,
  predict) z is zeros, so no rng is needed there.

  `generate(z [n, latent_dim], train=False)` -> images [n, H, W, C] in [-1, 1]
  and `discriminate(images)` -> logits [n]: call them with
  `model.apply(variables, ..., method='generate')`.
  """

  latent_dim: int = 64
  generator_features: Sequence[int] = (128, 64)
  discriminator_features: Sequence[int] = (64, 128)
  base_size: int = 7
  channels: int = 1
  axis_name: str | None = None
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  def setup(self):
    self.generator = Generator(
      features=self.generator_features,
      base_size=self.base_size,
      channels=self.channels,
      axis_name=self.axis_name,
      dtype=self.dtype,
      param_dtype=self.param_dtype,
    )
    self.discriminator = Discriminator(
      features=self.discriminator_features, dtype=self.dtype, param_dtype=self.param_dtype
    )

  def __call__(self, images: jax.Array, *, train: bool) -> dict[str, jax.Array]:
    b = images.shape[0]
    if train:
      z = jax.random.normal(self.make_rng("dropout"), (b, self.latent_dim), jnp.float32)
    else:
      z = jnp.zeros((b, self.latent_dim), jnp.float32)
    fake = self.generator(z, train=train)
    # The discriminator's parameters, seen with their gradient stopped: the
    # generator's loss moves the generator only.
    frozen = nn.map_variables(
      lambda module, x: module.discriminator(x),
      "params",
      trans_in_fn=jax.lax.stop_gradient,
      mutable=False,
    )
    return {
      "real": self.discriminator(images),
      "fake": self.discriminator(jax.lax.stop_gradient(fake)),
      "fake_for_generator": frozen(self, fake),
    }

  def generate(self, z: jax.Array, train: bool = False) -> jax.Array:
    return self.generator(z, train=train)

  def discriminate(self, images: jax.Array) -> jax.Array:
    return self.discriminator(images)
