"""Faster formulations in the Transformer blocks compute the same GPT.

On CPU the Transformer blocks use faster formulations (research.platforms.cpu
and research.models.transformer, see their docstrings): dense layers as one
2-D matmul (`flat_dot_general`), exact GELU via erf instead of erfc
(`gelu_exact`), and attention written out with heads-major layouts
(`softmax_attention` instead of `jax.nn.dot_product_attention`, which GPU/TPU
runs use). Each must give the same values and gradients
as the formulation it replaced, the whole GPT too, and the parameter tree
(names, shapes) must not change so checkpoints stay loadable.
"""

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from research import platforms
from research.models import build_model, transformer
from research.platforms import cpu

_TOL = dict(rtol=1e-5, atol=1e-6)


def _assert_trees_close(a, b, **tol):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), **(tol or _TOL))


@pytest.mark.slow
@pytest.mark.parametrize(
  "x_shape,k_shape,n_contract",
  [
    ((3, 5, 8), (8, 16), 1),  # nn.Dense on [batch, seq, dim]
    ((7, 8), (8, 4), 1),  # nn.Dense on [batch, dim]
    ((3, 5, 8), (8, 2, 4), 1),  # DenseGeneral to (heads, head_dim): q/k/v projections
    ((3, 5, 2, 4), (2, 4, 8), 2),  # DenseGeneral over (heads, head_dim): attention output
  ],
)
def test_flat_dot_general_values_and_gradients(x_shape, k_shape, n_contract):
  kx, kk, kg = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(kx, x_shape)
  k = jax.random.normal(kk, k_shape)
  n = len(x_shape)
  dims = ((tuple(range(n - n_contract, n)), tuple(range(n_contract))), ((), ()))
  ref = lambda x, k: jax.lax.dot_general(x, k, dims)
  fast = lambda x, k: cpu.flat_dot_general(x, k, dims)
  y_ref, vjp_ref = jax.vjp(ref, x, k)
  y, vjp = jax.vjp(fast, x, k)
  np.testing.assert_allclose(y, y_ref, **_TOL)
  g = jax.random.normal(kg, y.shape)
  _assert_trees_close(vjp(g), vjp_ref(g))


def test_flat_dot_general_passes_other_dimension_numbers_through():
  x = jax.random.normal(jax.random.key(1), (2, 3, 4))
  y = jax.random.normal(jax.random.key(2), (2, 4, 5))
  dims = (((2,), (1,)), ((0,), (0,)))  # a batched matmul: not the dense pattern
  np.testing.assert_array_equal(cpu.flat_dot_general(x, y, dims), jax.lax.dot_general(x, y, dims))


def test_gelu_exact_equals_flax_erfc_form():
  x = jnp.concatenate(
    [jnp.linspace(-12.0, 12.0, 4001), jax.random.normal(jax.random.key(3), (4096,)) * 3]
  )
  ref = lambda v: nn.gelu(v, approximate=False)
  np.testing.assert_allclose(transformer.gelu_exact(x), ref(x), rtol=1e-5, atol=1e-6)
  grad = jax.vmap(jax.grad(transformer.gelu_exact))(x)
  np.testing.assert_allclose(grad, jax.vmap(jax.grad(ref))(x), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("mask_kind", ["causal", "padding", "none"])
def test_softmax_attention_gradients_match_dot_product_attention(mask_kind):
  kq, kk, kv, kg = jax.random.split(jax.random.key(4), 4)
  b, t, n, h = 3, 9, 2, 8
  q, k, v = (jax.random.normal(key, (b, t, n, h)) for key in (kq, kk, kv))
  mask = {
    "causal": transformer.causal_mask(t),
    "padding": transformer.padding_mask(jnp.array([[1] * 9, [1] * 5 + [0] * 4, [1] * 2 + [0] * 7])),
    "none": None,
  }[mask_kind]
  out_ref, vjp_ref = jax.vjp(lambda *a: jax.nn.dot_product_attention(*a, mask=mask), q, k, v)
  out, vjp = jax.vjp(lambda *a: cpu.softmax_attention(*a, mask), q, k, v)
  np.testing.assert_allclose(out, out_ref, **_TOL)
  g = jax.random.normal(kg, out.shape)
  _assert_trees_close(vjp(g), vjp_ref(g))


def _reference_formulations(monkeypatch):
  """Puts back what the faster code replaced: the GPU/TPU path of
  research.platforms (lax.dot_general in the dense layers,
  jax.nn.dot_product_attention) and flax's erfc GELU."""
  monkeypatch.setattr(platforms, "on_cpu", lambda: False)
  monkeypatch.setitem(transformer.ACTIVATIONS, "gelu", lambda x: nn.gelu(x, approximate=False))


def _gpt():
  # shakespeare_char:gpt_cpu's shape, smaller batch.
  return build_model(
    "gpt",
    vocab_size=65,
    block_size=64,
    num_layers=4,
    num_heads=4,
    embed_dim=128,
    dropout=0.0,
    bias=False,
  )


@pytest.mark.slow
def test_gpt_param_tree_unchanged_and_same_loss_and_gradients(monkeypatch):
  model = _gpt()
  tokens = jax.random.randint(jax.random.key(5), (4, 64), 0, 65)
  targets = jax.random.randint(jax.random.key(6), (4, 64), 0, 65)
  params = nn.meta.unbox(model.init(jax.random.key(7), tokens, train=False)["params"])

  def loss(params):
    logits = model.apply({"params": params}, tokens, train=True)
    lp = jax.nn.log_softmax(logits)
    return -jnp.take_along_axis(lp, targets[..., None], -1).mean(), logits

  (l_fast, logits_fast), g_fast = jax.jit(jax.value_and_grad(loss, has_aux=True))(params)
  with monkeypatch.context() as m:
    _reference_formulations(m)
    ref_params = nn.meta.unbox(model.init(jax.random.key(7), tokens, train=False)["params"])
    (l_ref, logits_ref), g_ref = jax.jit(jax.value_and_grad(loss, has_aux=True))(params)

  # Same parameter names, shapes and initial values (checkpoints stay compatible).
  flat = flax.traverse_util.flatten_dict(params, sep="/")
  flat_ref = flax.traverse_util.flatten_dict(ref_params, sep="/")
  assert {k: v.shape for k, v in flat.items()} == {k: v.shape for k, v in flat_ref.items()}
  assert "h_0/attn/query/kernel" in flat and flat["h_0/attn/query/kernel"].shape == (128, 4, 32)
  _assert_trees_close(params, ref_params, rtol=0, atol=0)

  np.testing.assert_allclose(logits_fast, logits_ref, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(l_fast, l_ref, rtol=1e-6)
  _assert_trees_close(g_fast, g_ref, rtol=1e-4, atol=1e-7)
