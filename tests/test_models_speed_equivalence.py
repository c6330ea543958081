"""Faster formulations compute the same network: values and gradients.

`research.platforms.cpu_pooling.max_pool` (the 'cnn' model's pooling on CPU) must
equal `flax.linen.max_pool` (reduce_window, gradient by select-and-scatter),
including which element of a tied window gets the gradient.
"""

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from research.models import build_model
from research.platforms import cpu_pooling as pooling


def _reference_pool(x, window=(2, 2)):
  return nn.max_pool(x, window, strides=window, padding="VALID")


def _inputs_with_ties(shape, seed=0):
  """relu(normal) (many zeros) with a constant block and repeated values (ties)."""
  rng = np.random.default_rng(seed)
  x = np.maximum(rng.standard_normal(shape), 0).astype(np.float32)
  x[:, : shape[1] // 3] = 0.5  # constant region: 4-way ties at 0.5
  w2 = shape[2] // 2 * 2
  x[:, -2:, 1:w2:2] = x[:, -2:, 0:w2:2]  # pairwise ties along width
  return jnp.asarray(x)


@pytest.mark.slow
@pytest.mark.parametrize(
  "shape,window",
  [
    ((3, 8, 8, 5), (2, 2)),
    ((2, 7, 9, 4), (2, 2)),  # odd sizes: trailing row/column dropped ('VALID')
    ((2, 9, 6, 3), (3, 2)),
    ((4, 28, 28, 32), (2, 2)),
  ],
)
def test_max_pool_values_and_gradients_equal_reduce_window(shape, window):
  x = _inputs_with_ties(shape)
  y_ref, vjp_ref = jax.vjp(lambda v: _reference_pool(v, window), x)
  y_new, vjp_new = jax.vjp(lambda v: pooling.max_pool(v, window), x)
  np.testing.assert_array_equal(y_new, y_ref)
  g = jax.random.normal(jax.random.PRNGKey(1), y_ref.shape)
  # Bitwise: every input gets its window's cotangent or exactly zero.
  np.testing.assert_array_equal(vjp_new(g)[0], vjp_ref(g)[0])
  # Forward mode too (the derivative is a custom_jvp, so jvp works directly).
  t = jax.random.normal(jax.random.PRNGKey(2), x.shape)
  _, jvp_new = jax.jvp(lambda v: pooling.max_pool(v, window), (x,), (t,))
  _, jvp_ref = jax.jvp(lambda v: _reference_pool(v, window), (x,), (t,))
  np.testing.assert_array_equal(jvp_new, jvp_ref)


@pytest.mark.slow
def test_max_pool_under_jit_and_second_order():
  x = _inputs_with_ties((2, 6, 6, 3))
  f_new = lambda v: (pooling.max_pool(v) ** 3).sum()
  f_ref = lambda v: (_reference_pool(v) ** 3).sum()
  np.testing.assert_array_equal(jax.jit(jax.grad(f_new))(x), jax.jit(jax.grad(f_ref))(x))
  hvp = lambda f: jax.jvp(jax.grad(f), (x,), (jnp.ones_like(x),))[1]
  np.testing.assert_allclose(hvp(f_new), hvp(f_ref), rtol=1e-6)


def test_max_pool_rejects_bad_shapes():
  with pytest.raises(ValueError, match="NHWC"):
    pooling.max_pool(jnp.zeros((4, 4, 3)))
  with pytest.raises(ValueError, match="larger"):
    pooling.max_pool(jnp.zeros((1, 1, 4, 3)))


def _cnn_loss_and_grads(pool_impl, x, labels, dropout_rng):
  model = build_model("cnn", num_classes=10, dropout=0.3, pool_impl=pool_impl)
  variables = model.init({"params": jax.random.PRNGKey(0)}, x[:1], train=False)

  def loss_fn(params):
    logits = model.apply({"params": params}, x, train=True, rngs={"dropout": dropout_rng})
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], 1)), logits

  (loss, logits), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(variables["params"])
  return variables["params"], loss, logits, grads


@pytest.mark.slow
def test_cnn_pool_impls_are_the_same_network():
  rng = np.random.default_rng(0)
  # Fashion-MNIST-like: a constant background (ties in every pooling window there).
  x = np.full((16, 28, 28, 1), -0.81, np.float32)
  x[:, 6:22, 8:20, 0] = rng.standard_normal((16, 16, 12))
  x = jnp.asarray(x)
  labels = jnp.asarray(rng.integers(0, 10, 16))
  drop = jax.random.PRNGKey(3)
  p_new, loss_new, logits_new, g_new = _cnn_loss_and_grads("reshape", x, labels, drop)
  p_ref, loss_ref, logits_ref, g_ref = _cnn_loss_and_grads("reduce_window", x, labels, drop)
  # Same parameter tree and initialisation (checkpoints stay compatible).
  assert jax.tree.structure(p_new) == jax.tree.structure(p_ref)
  jax.tree.map(np.testing.assert_array_equal, p_new, p_ref)
  np.testing.assert_allclose(logits_new, logits_ref, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(loss_new, loss_ref, rtol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), g_new, g_ref)


def test_cnn_default_pool_is_the_platforms_and_param_tree_unchanged():
  model = build_model("cnn", num_classes=10)
  assert model.pool_impl == "auto"
  params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)), train=False)["params"]
  shapes = {"/".join(k): v.shape for k, v in flax.traverse_util.flatten_dict(params).items()}
  assert shapes == {
    "Conv_0/kernel": (3, 3, 1, 32),
    "Conv_0/bias": (32,),
    "Conv_1/kernel": (3, 3, 32, 64),
    "Conv_1/bias": (64,),
    "Dense_0/kernel": (3136, 256),
    "Dense_0/bias": (256,),
    "Dense_1/kernel": (256, 10),
    "Dense_1/bias": (10,),
  }


def test_cnn_rejects_unknown_pool_impl():
  model = build_model("cnn", num_classes=10, pool_impl="nope")
  with pytest.raises(ValueError, match="pool_impl"):
    model.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)), train=False)
