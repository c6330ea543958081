"""Recommendation models and tasks: MF beats the bias baseline on low-rank data,
SASRec is causal, the in-batch softmax applies the log-Q correction."""

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import pytest

from research.core import config as config_lib
from research.core import tasks
from research.data.recsys import dataset
from research.models import build_model
from research.train import loop


@pytest.fixture(autouse=True)
def _fresh_cache():
  dataset._CACHE.clear()
  yield
  dataset._CACHE.clear()


@pytest.mark.slow  # trains MF and the biases model
def test_trained_mf_beats_the_bias_baseline_on_low_rank_data(tmp_path):
  rng = np.random.default_rng(0)
  n_users, n_items, rank = 60, 50, 3
  p, q = rng.normal(0, 0.7, (n_users, rank)), rng.normal(0, 0.7, (n_items, rank))
  b_u, b_i = rng.normal(0, 0.3, n_users), rng.normal(0, 0.3, n_items)
  users, items = np.nonzero(rng.random((n_users, n_items)) < 0.6)
  ratings = 3.0 + b_u[users] + b_i[items] + (p[users] * q[items]).sum(1)
  ratings += rng.normal(0, 0.1, len(users))
  path = tmp_path / "low_rank.csv"
  pd.DataFrame(
    {"user": users, "item": items, "rating": ratings, "timestamp": np.arange(len(users))}
  ).to_csv(path, index=False)
  config = config_lib.load(
    f"recommendation/movielens_rating:mf,source=csv,path={path}",
    {
      "total_epochs": 40,
      "batch_size": 64,
      "model.dim": 8,
      "task.reg": 0.01,
      "optimizer.lr": 1e-2,
      "evals.test.every_epochs": None,
      "ckpt.every_epochs": None,
      "evals.test.clip": None,
      "baselines.user_item_bias.clip": None,
      "progress": False,
      "log_every_steps": 1000,
    },
  )
  summary = loop.run(config, str(tmp_path / "run"))
  baselines = json.loads((tmp_path / "run" / "baselines.json").read_text())
  bias = baselines["user_item_bias"]["test/rmse"]
  assert summary["test/rmse"] < 0.6 * bias, (summary["test/rmse"], bias)
  assert "user_item_bias" in (tmp_path / "run" / "report.md").read_text()


def test_sasrec_is_causal():
  model = build_model(
    "sasrec", num_items=20, max_len=6, dim=8, num_layers=1, num_heads=2, dropout=0.0
  )
  hist = jnp.array([[0, 0, 3, 4, 5, 6]])
  cands = jnp.tile(jnp.arange(1, 4)[None, None, :], (1, 6, 1))
  params = model.init(jax.random.PRNGKey(0), {"history": hist, "candidates": cands})
  out = model.apply(params, {"history": hist, "candidates": cands})
  changed = model.apply(params, {"history": hist.at[0, 5].set(9), "candidates": cands})
  np.testing.assert_allclose(out[0, :5], changed[0, :5], rtol=1e-5, atol=1e-6)
  assert not np.allclose(out[0, 5], changed[0, 5])
  full = model.apply(params, {"history": hist})
  assert full.shape == (1, 20) and np.isfinite(np.asarray(full)).all()


def test_in_batch_softmax_log_q_and_duplicate_masking():
  task = tasks.build_task({"name": "in_batch_softmax"})
  logits = jnp.array([[2.0, 1.0, 0.0], [0.5, 1.5, 0.2], [0.1, 0.3, 1.0]])
  logq = jnp.log(jnp.array([0.5, 0.25, 0.25]))
  batch = {"item": jnp.array([1, 2, 3]), "item_logq": logq}
  loss, _ = task.loss(logits, batch)
  corrected = logits - logq[None, :]
  expected = optax.softmax_cross_entropy_with_integer_labels(corrected, jnp.arange(3)).mean()
  np.testing.assert_allclose(loss, expected, rtol=1e-6)
  # Rows 0 and 2 share an item: neither is the other's negative.
  batch = {"item": jnp.array([1, 2, 1]), "item_logq": logq}
  loss, _ = tasks.build_task({"name": "in_batch_softmax", "logq_correction": False}).loss(
    logits, batch
  )
  row0 = jax.nn.log_softmax(jnp.array([2.0, 1.0]))[0]
  row1 = jax.nn.log_softmax(logits[1])[1]
  row2 = jax.nn.log_softmax(jnp.array([0.3, 1.0]))[1]
  np.testing.assert_allclose(loss, -(row0 + row1 + row2) / 3, rtol=1e-6)


def test_oov_ids_fall_back_to_biases_and_mean():
  model = build_model("biased_mf", num_users=5, num_items=4, dim=3, rating_mean=3.5)
  x = {"user": jnp.array([0, 1]), "item": jnp.array([2, 0])}
  params = nn.meta.unbox(model.init(jax.random.PRNGKey(0), x))
  params = jax.tree.map(lambda a: a + 1.0, params)  # non-zero everywhere, OOV rows too
  pred = model.apply(params, x)
  b = params["params"]
  # user 0 is OOV: mean + item bias only; item 0 is OOV: mean + user bias only.
  np.testing.assert_allclose(pred[0], 3.5 + b["item_bias"]["embedding"][2, 0], rtol=1e-6)
  np.testing.assert_allclose(pred[1], 3.5 + b["user_bias"]["embedding"][1, 0], rtol=1e-6)


@pytest.mark.slow
def test_ncf_run_resumed_midway_ends_bitwise_identical(tmp_path):
  """Sampled negatives come from the pipeline's per-batch rng: a run stopped at
  step 3 and resumed ends with exactly the parameters of an uninterrupted run."""
  # No best metric: the 3-step run's final evaluation would make step 3 the
  # "best" checkpoint, whose metrics the resumed run's summary then reports.
  overrides = {
    "total_steps": 6,
    "ckpt.every_steps": 3,
    "progress": False,
    "evals.test.every_steps": None,
    "ckpt.best_metric": None,
  }
  spec = "recommendation/movielens_ncf:gmf,smoke=True"
  straight = loop.run(config_lib.load(spec, overrides), str(tmp_path / "straight"))
  loop.run(config_lib.load(spec, dict(overrides, total_steps=3)), str(tmp_path / "resumed"))
  resumed = loop.run(
    config_lib.load(spec, overrides),
    str(tmp_path / "resumed"),
    allow_config_change=("total_steps",),
  )
  assert resumed["step"] == straight["step"] == 6
  assert resumed["params_fingerprint"] == straight["params_fingerprint"]
  assert resumed["test/hr@10"] == straight["test/hr@10"]
