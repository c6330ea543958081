"""The GAN pieces: FID and precision/recall, the one-scalar two-player loss, optimizer
parameter groups, classifier features and the sample grid (fast tier)."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from research.core import tasks
from research.data import ops as pp_ops
from research.metrics import generative
from research.models import build_model
from research.models.cnn import CNN
from research.outputs import plots
from research.train import optim
from research.train import state as state_lib
from research.train import step as step_lib

# --- FID ------------------------------------------------------------------------


def test_fid_of_a_set_with_itself_is_zero():
  x = np.random.default_rng(0).normal(size=(500, 8)) @ np.diag(np.arange(1.0, 9.0))
  assert generative.fid(x, x) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_matches_the_gaussian_closed_form():
  # Commuting (diagonal) covariances: ||mu1-mu2||^2 + sum_i (s1_i - s2_i)^2 (s = std).
  mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.0])
  s1, s2 = np.array([1.0, 2.0, 0.5]), np.array([3.0, 2.0, 1.5])
  expected = np.sum((mu1 - mu2) ** 2) + np.sum((s1 - s2) ** 2)  # 5 + 4 + 0 + 1 = 10
  got = generative.frechet_distance(mu1, np.diag(s1**2), mu2, np.diag(s2**2))
  assert got == pytest.approx(expected, rel=1e-9) and expected == 10.0
  # A non-diagonal case: rotating both Gaussians together changes nothing.
  theta = 0.3
  rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
  c1, c2 = rot @ np.diag([1.0, 4.0]) @ rot.T, rot @ np.diag([9.0, 1.0]) @ rot.T
  m1, m2 = rot @ np.array([0.0, 0.0]), rot @ np.array([3.0, 4.0])
  assert generative.frechet_distance(m1, c1, m2, c2) == pytest.approx(25 + 4 + 1, rel=1e-9)


def test_fid_of_samples_approaches_the_closed_form():
  rng = np.random.default_rng(1)
  a = rng.normal(0.0, 1.0, size=(20000, 2))
  b = rng.normal(2.0, 2.0, size=(20000, 2))
  # 2 * 2^2 (means) + 2 * (1 - 2)^2 (stds) = 10
  assert generative.fid(a, b) == pytest.approx(10.0, rel=0.03)


# --- precision / recall ------------------------------------------------------------


def test_precision_recall_by_hand():
  real = np.array([[0.0], [1.0], [2.0], [3.0], [4.0]])
  # k=1: every real point's ball reaches its nearest neighbour, radius 1.
  # Fake 0.5 is inside the real manifold, fake 10 is not: precision 1/2.
  # The fakes' own radius is 9.5, which covers every real point: recall 1.
  fake = np.array([[0.5], [10.0]])
  assert generative.precision_recall(real, fake, k=1) == {"precision": 0.5, "recall": 1.0}
  # Fakes far from everything: neither covers the other.
  far = np.array([[100.0], [101.0]])
  assert generative.precision_recall(real, far, k=1) == {"precision": 0.0, "recall": 0.0}


def test_precision_recall_of_a_subset_and_of_a_shift():
  real = np.random.default_rng(2).normal(size=(400, 4))
  same = generative.precision_recall(real, real.copy(), k=3, chunk=64)
  assert same == {"precision": 1.0, "recall": 1.0}
  # A mode-dropping generator (one half-space only): precise, but low recall.
  half = real[real[:, 0] > 0.5]
  pr = generative.precision_recall(real, half, k=3, chunk=64)
  assert pr["precision"] == 1.0 and pr["recall"] < 0.6
  assert generative.precision_recall(real, real + 50.0, k=3) == {"precision": 0.0, "recall": 0.0}


def test_to_uint8_restores_the_bytes_value_range_made():
  images = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
  (op,) = pp_ops.parse("value_range(-1, 1)")
  scaled = op({"image": images}, None)["image"]
  np.testing.assert_array_equal(generative.to_uint8(scaled, (-1.0, 1.0)), images)
  assert generative.to_uint8(np.array([-5.0, 5.0])).tolist() == [0, 255]  # clipped


# --- the two-player loss through the shared step --------------------------------------


def _tiny_gan():
  return build_model(
    "dcgan", latent_dim=4, generator_features=(8, 4), discriminator_features=(4, 8)
  )


def _softplus(x):
  return jax.nn.softplus(x)


def test_one_scalar_gives_each_player_its_own_gradient():
  model, task = _tiny_gan(), tasks.build_task({"name": "gan"})
  x = jax.random.uniform(jax.random.PRNGKey(0), (6, 28, 28, 1), minval=-1, maxval=1)
  variables = model.init(
    {"params": jax.random.PRNGKey(1), "dropout": jax.random.PRNGKey(2)}, x, train=False
  )
  params, stats = variables["params"], {"batch_stats": variables["batch_stats"]}
  rngs = {"dropout": jax.random.PRNGKey(3)}

  def combined(p):
    out, _ = model.apply({"params": p, **stats}, x, train=True, rngs=rngs, mutable=["batch_stats"])
    return task.loss(out, batch={"image": x})[0]

  # The noise __call__ draws: the root module's first 'dropout' key.
  z = model.apply(
    variables, rngs=rngs, method=lambda m: jax.random.normal(m.make_rng("dropout"), (6, 4))
  )

  def fake_of(p):
    images, _ = model.apply(
      {"params": p, **stats}, z, True, method="generate", mutable=["batch_stats"]
    )
    return images

  def d_loss(d_params):
    p = dict(params, discriminator=d_params)
    real = model.apply({"params": p}, x, method="discriminate")
    fake = model.apply({"params": p}, fake_of(params), method="discriminate")
    return (_softplus(-real) + _softplus(fake)).mean()

  def g_loss(g_params):
    p = dict(params, generator=g_params)
    return _softplus(-model.apply({"params": params}, fake_of(p), method="discriminate")).mean()

  grads = jax.grad(combined)(params)
  expected = {
    "discriminator": jax.grad(d_loss)(params["discriminator"]),
    "generator": jax.grad(g_loss)(params["generator"]),
  }
  assert combined(params) == pytest.approx(
    float(d_loss(params["discriminator"]) + g_loss(params["generator"])), rel=1e-5
  )
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), grads, expected)
  # Both players really get a gradient.
  assert all(float(optax.tree.norm(g)) > 0 for g in grads.values())


def test_shared_step_trains_the_gan_with_one_optimizer_per_player():
  model, task = _tiny_gan(), tasks.build_task({"name": "gan"})
  opt = dict(name="adam", lr=2e-4, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0)
  opt["groups"] = {"generator": {"lr": 2e-4, "b1": 0.5}, "discriminator": {"lr": 1e-3}}
  lr = optax.constant_schedule(2e-4)
  tx = optim.make_optimizer(opt, lr)
  sample = jax.ShapeDtypeStruct((1, 28, 28, 1), jnp.float32)
  state = jax.jit(state_lib.make_init_fn(model, tx, sample, seed=0))()
  step = jax.jit(step_lib.make_train_step(model, tx, task, lr))
  batch = {"image": jnp.zeros((8, 28, 28, 1), jnp.float32)}
  new, metrics = step(state, batch)
  assert set(metrics) >= {"loss", "d_loss", "g_loss", "d_real", "d_fake", "grad_norm"}
  # Adam's first step moves every weight by ~lr (sign of the gradient): each player
  # by its own group's lr.
  for player, group_lr in (("generator", 2e-4), ("discriminator", 1e-3)):
    moved = jax.tree.map(
      lambda a, b: jnp.abs(a - b).max(), new.params[player], state.params[player]
    )
    biggest = max(float(v) for v in jax.tree.leaves(moved))
    assert biggest == pytest.approx(group_lr, rel=0.01), player
  # The generator's BatchNorm statistics moved (model_state goes through the step).
  assert not np.allclose(
    new.model_state["batch_stats"]["generator"]["BatchNorm_0"]["mean"],
    state.model_state["batch_stats"]["generator"]["BatchNorm_0"]["mean"],
  )
  # The same step again from the same state gives the same result (noise keyed by step).
  again, _ = step(state, batch)
  jax.tree.map(np.testing.assert_array_equal, again.params, new.params)


# --- optimizer parameter groups ------------------------------------------------------


def _opt(**kw):
  base = dict(name="sgd", lr=1.0, b1=0.9, b2=0.999, eps=1e-8, momentum=0.9, nesterov=False)
  base.update(weight_decay=0.0, decay_mask="all", clip_norm=None, accum_steps=1)
  base.update(kw)
  return base


def test_groups_update_only_their_own_params_with_their_own_lr():
  params = {"a": {"w": jnp.ones(2)}, "b": {"w": jnp.ones(2), "v": jnp.ones(())}}
  grads = {
    "a": {"w": jnp.array([1.0, 2.0])},
    "b": {"w": jnp.array([3.0, 4.0]), "v": jnp.array(5.0)},
  }
  opt = _opt(lr=0.5, groups={"a": {"lr": 0.1}, "b": {}})
  tx = optim.make_optimizer(opt, optax.linear_schedule(0.5, 0.0, 10))
  updates, state = tx.update(grads, tx.init(params), params)
  np.testing.assert_allclose(updates["a"]["w"], [-0.1, -0.2], rtol=1e-6)  # 0.1 = 0.5 x 0.2
  np.testing.assert_allclose(updates["b"]["w"], [-1.5, -2.0], rtol=1e-6)
  np.testing.assert_allclose(updates["b"]["v"], -2.5, rtol=1e-6)
  # A group's schedule is the run's, scaled: at step 5 the lr has halved.
  for _ in range(4):
    updates, state = tx.update(grads, state, params)
  updates, _ = tx.update(grads, state, params)
  np.testing.assert_allclose(updates["a"]["w"], [-0.05, -0.1], rtol=1e-5)
  # A zero gradient in one group leaves that group where it is.
  zero_a = dict(grads, a={"w": jnp.zeros(2)})
  updates, _ = tx.update(zero_a, tx.init(params), params)
  np.testing.assert_array_equal(updates["a"]["w"], 0.0)


def test_groups_may_change_the_optimizer_and_must_cover_every_param():
  params = {"a": {"w": jnp.ones(2)}, "b": {"w": jnp.ones(2)}}
  tx = optim.make_optimizer(
    _opt(groups={"a": {"name": "adam"}, "b": {"name": "sgd"}}), optax.constant_schedule(1.0)
  )
  updates, _ = tx.update(
    {"a": {"w": jnp.full(2, 7.0)}, "b": {"w": jnp.full(2, 7.0)}}, tx.init(params)
  )
  np.testing.assert_allclose(updates["a"]["w"], -1.0, rtol=1e-5)  # adam: ~lr x sign
  np.testing.assert_allclose(updates["b"]["w"], -7.0, rtol=1e-6)  # sgd: lr x grad
  only_a = optim.make_optimizer(_opt(groups={"a": {}}), optax.constant_schedule(1.0))
  with pytest.raises(ValueError, match=r"Parameters \['b'\] are in no optimizer group"):
    only_a.init(params)


def test_group_config_errors_name_the_key():
  schedule = {"name": "constant"}
  with pytest.raises(ValueError, match=r"optimizer.groups.g has unknown key\(s\) \['lrr'\]"):
    optim.check(_opt(groups={"g": {"lrr": 1.0}}), schedule)
  with pytest.raises(ValueError, match="Unknown optimizer 'adamx'"):
    optim.check(_opt(groups={"g": {"name": "adamx"}}), schedule)
  optim.check(_opt(groups={"g": {"lr": 1.0, "b1": 0.5}}), schedule)


# --- classifier features, sample grids ---------------------------------------------


def test_cnn_features_are_the_input_of_its_last_layer_and_logits_are_unchanged():
  model = CNN(num_classes=3, features=(2, 4), hidden=5, dropout=0.5)
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 1))
  variables = model.init(jax.random.PRNGKey(1), x, train=False)
  feats = model.apply(variables, x, train=False, return_features=True)
  logits = model.apply(variables, x, train=False)
  assert feats.shape == (2, 5) and float(feats.min()) >= 0.0  # after the ReLU
  head = variables["params"]["Dense_1"]
  np.testing.assert_allclose(logits, feats @ head["kernel"] + head["bias"], rtol=1e-5, atol=1e-6)
  assert set(variables["params"]) == {"Conv_0", "Conv_1", "Dense_0", "Dense_1"}


def test_image_grid_per_evaluation(tmp_path):
  images = np.random.default_rng(0).integers(0, 256, (10, 28, 28, 1), dtype=np.uint8)
  artifacts = {"val/samples": images, "val/confusion_matrix": np.eye(2)}
  paths = plots.plot_eval_artifacts(str(tmp_path), artifacts, experiment="e", step=500)
  assert paths == [str(tmp_path / "plots" / "val_samples_step500.png")]
  assert (tmp_path / "plots" / "val_samples_step500.png").stat().st_size > 1000
  with pytest.raises(ValueError, match="Image grid needs images"):
    plots.plot_image_grid(np.zeros((4, 28, 28)), str(tmp_path / "x.png"))


def test_gan_task_is_registered_with_its_fields():
  task = tasks.build_task({"name": "gan", "input_key": "img"})
  assert isinstance(task, tasks.GANTask) and task.inputs({"img": 1}) == 1
  assert [f.name for f in dataclasses.fields(task)] == ["input_key"]
  assert isinstance(_tiny_gan(), nn.Module)
