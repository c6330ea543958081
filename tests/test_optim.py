"""Optimizers and schedules from config."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from research.train import optim


def _opt(**kw):
  base = dict(
    name="adamw",
    lr=1e-3,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    momentum=0.9,
    nesterov=False,
    weight_decay=0.0,
    decay_mask="no_bias_or_norm",
    clip_norm=None,
    accum_steps=1,
  )
  base.update(kw)
  return base


def test_warmup_then_cosine_and_step_schedules():
  lr = optim.make_schedule(
    {"name": "cosine", "end_factor": 0.1}, base_lr=1.0, total_steps=110, warmup_steps=10
  )
  assert float(lr(0)) == 0.0 and float(lr(5)) == pytest.approx(0.5)
  assert float(lr(10)) == pytest.approx(1.0)
  assert float(lr(60)) == pytest.approx(0.55, abs=1e-6)  # halfway down the cosine to 0.1
  assert float(lr(110)) == pytest.approx(0.1, abs=1e-6)
  step = optim.make_schedule(
    {"name": "step", "boundaries": (0.5, 0.75), "decay_factor": 0.1},
    base_lr=1.0,
    total_steps=100,
    warmup_steps=0,
  )
  assert [float(step(s)) for s in (0, 49, 51, 76)] == pytest.approx([1.0, 1.0, 0.1, 0.01])


def test_adamw_decays_only_kernels():
  params = {"dense": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones((2,))}}
  tx = optim.make_optimizer(_opt(weight_decay=0.5, lr=0.1), optax.constant_schedule(0.1))
  zero_grads = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(zero_grads, tx.init(params), params)
  np.testing.assert_allclose(updates["dense"]["kernel"], -0.05)  # -lr * wd * w
  np.testing.assert_allclose(updates["dense"]["bias"], 0.0)


def test_clipping_and_gradient_accumulation():
  params = {"w": jnp.zeros(3)}
  tx = optim.make_optimizer(_opt(name="sgd", lr=1.0, clip_norm=1.0), optax.constant_schedule(1.0))
  updates, _ = tx.update({"w": jnp.array([3.0, 4.0, 0.0])}, tx.init(params), params)
  np.testing.assert_allclose(updates["w"], [-0.6, -0.8, 0.0], rtol=1e-6)
  tx = optim.make_optimizer(_opt(name="sgd", lr=1.0, accum_steps=2), optax.constant_schedule(1.0))
  state = tx.init(params)
  u1, state = tx.update({"w": jnp.ones(3)}, state, params)
  u2, state = tx.update({"w": 3 * jnp.ones(3)}, state, params)
  np.testing.assert_allclose(u1["w"], 0.0)  # first micro-batch only accumulates
  np.testing.assert_allclose(u2["w"], -2.0)  # mean of the two gradients


def test_bad_names():
  with pytest.raises(ValueError, match="Unknown optimizer.decay_mask 'some'"):
    optim.check(_opt(decay_mask="some"), {"name": "cosine"})
  with pytest.raises(ValueError, match="accum_steps must be >= 1"):
    optim.check(_opt(accum_steps=0), {"name": "cosine"})
  with pytest.raises(ValueError, match="use 'adamw'"):
    optim.check(_opt(name="adam", weight_decay=0.1), {"name": "cosine"})
