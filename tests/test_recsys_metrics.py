"""Ranking and rating metrics on hand-built rankings; evaluators exact over padded batches."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from research.baselines import recsys as rec_baselines
from research.metrics import evaluators, ranking


def _metrics(scores, targets, exclude=None, full=True, ks=(1, 3)):
  return ranking.ranking_metrics_numpy(
    np.asarray(scores, np.float32),
    np.asarray(targets),
    None if exclude is None else np.asarray(exclude),
    ks=ks,
    full_ranking=full,
  )


def test_single_target_ranks_by_hand():
  # Full ranking over items 0..5; column 0 (OOV) never ranks.
  scores = [
    [9.0, 0.1, 0.5, 0.3, 0.9, 0.2],  # target 2: items by score 4, 2 -> rank 1
    [9.0, 0.9, 0.1, 0.2, 0.3, 0.4],  # target 1: rank 0
    [9.0, 0.6, 0.5, 0.4, 0.3, 0.2],
  ]  # target 5: rank 4
  m = _metrics(scores, [[2], [1], [5]])
  assert m["hr@1"] == pytest.approx(1 / 3)
  assert m["hr@3"] == pytest.approx(2 / 3)
  assert m["recall@3"] == pytest.approx(2 / 3)
  assert m["ndcg@3"] == pytest.approx((1 / math.log2(3) + 1.0 + 0.0) / 3)
  assert m["mrr"] == pytest.approx((1 / 2 + 1 + 1 / 5) / 3)
  # Coverage@3 over the 5 real items: rows recommend {4,2,1}, {1,5,4}, {1,2,3}.
  assert m["coverage@3"] == pytest.approx(5 / 5)


def test_excluded_items_do_not_take_slots():
  scores = [[0.0, 0.9, 0.8, 0.1, 0.7]]
  # Items 1 and 2 are the user's training items: target 3 is behind only item 4.
  assert _metrics(scores, [[3]], exclude=[[1, 2, 0]], ks=(1, 2))["hr@2"] == 1.0
  assert _metrics(scores, [[3]], exclude=[[1, 2, 0]], ks=(1, 2))["hr@1"] == 0.0
  assert _metrics(scores, [[3]], ks=(1, 2))["hr@2"] == 0.0


def test_ties_count_against_the_target_and_oov_targets_never_hit():
  m = _metrics([[0.0, 1.0, 1.0, 1.0]], [[2]], ks=(1, 3))
  assert m["hr@1"] == 0.0 and m["hr@3"] == 1.0  # rank 2 with ties pessimistic
  m = _metrics([[100.0, 1.0, 2.0]], [[0]], ks=(1, 2))  # target OOV (0)
  assert m["hr@2"] == 0.0 and m["mrr"] == 0.0


def test_multiple_targets_recall_and_ndcg():
  scores = [[0.0, 0.9, 0.8, 0.7, 0.6, 0.5]]
  m = _metrics(scores, [[1, 4, -1]], ks=(2,))
  assert m["hr@2"] == 1.0
  assert m["recall@2"] == pytest.approx(0.5)
  assert m["ndcg@2"] == pytest.approx(1.0 / (1.0 + 1 / math.log2(3)))
  assert m["mrr"] == 1.0


def test_sampled_protocol_ranks_given_candidates():
  # Column 0 is the positive; nothing is excluded.
  m = _metrics([[0.5, 0.9, 0.1, 0.2], [0.95, 0.9, 0.1, 0.2]], [[0], [0]], full=False, ks=(1, 2))
  assert m["hr@1"] == 0.5 and m["hr@2"] == 1.0
  assert m["ndcg@2"] == pytest.approx((1 / math.log2(3) + 1.0) / 2)
  assert "coverage@2" not in m


def test_ranking_evaluator_is_exact_over_padded_batches():
  rng = np.random.default_rng(0)
  scores = rng.normal(size=(7, 12)).astype(np.float32)
  targets = rng.integers(1, 12, size=(7, 1))
  exclude = np.zeros((7, 3), np.int64)
  exclude[:, 0] = (targets[:, 0] % 11) + 1
  exclude[exclude == targets] = 0
  expected = _metrics(scores, targets, exclude, ks=(5,))

  def batches():
    for s in range(0, 8, 4):  # two batches of 4; the last row is padding
      idx = np.arange(s, s + 4)
      real = idx < 7
      idx = np.where(real, idx, 0)
      yield {"targets": targets[idx], "exclude": exclude[idx], "mask": real, "s": scores[idx]}

  ev = evaluators.RankingEvaluator("test", batches, ks=(5,), full_ranking=True)
  out, _ = ev.run(lambda b: dict(b, logits=jnp.asarray(b["s"])))
  for k, v in expected.items():
    assert out[f"test/{k}"] == pytest.approx(v, abs=1e-6), k
  assert out["test/num_examples"] == 7


def test_rating_evaluator_rmse_mae_clip_and_oov_counts():
  pred = np.array([3.0, 6.0, 1.0, 4.0], np.float32)
  rating = np.array([4.0, 5.0, 1.0, 2.0], np.float32)
  batch = {
    "rating": rating,
    "user": np.array([1, 0, 2, 3]),
    "item": np.array([0, 0, 1, 2]),
    "mask": np.array([True, True, True, False]),
  }
  ev = evaluators.RatingEvaluator("test", lambda: [batch], clip=(0.5, 5.0))
  out, _ = ev.run(lambda b: dict(b, logits=jnp.asarray(pred)))
  # Real rows: errors -1, 0 (6 clipped to 5), 0.
  assert out["test/rmse"] == pytest.approx(math.sqrt(1 / 3))
  assert out["test/mae"] == pytest.approx(1 / 3)
  assert out["test/oov_users"] == 1 and out["test/oov_items"] == 2


def test_bias_baseline_recovers_planted_biases():
  rng = np.random.default_rng(0)
  users = rng.integers(1, 50, 5000)
  items = rng.integers(1, 40, 5000)
  b_u, b_i = rng.normal(0, 0.5, 50), rng.normal(0, 0.5, 40)
  ratings = 3.0 + b_u[users] + b_i[items]
  mu, fu, fi = rec_baselines.fit_biases(
    users, items, ratings, 50, 40, reg_u=0.0, reg_i=0.0, epochs=30
  )
  pred = mu + fu[users] + fi[items]
  assert np.sqrt(np.mean((pred - ratings) ** 2)) < 1e-3


def test_compare_runs_puts_baselines_and_every_run_in_one_table(tmp_path):
  import json

  from tools.compare_runs import comparison

  for name, hr in (("a", 0.5), ("b", 0.7)):
    (tmp_path / name).mkdir()
    (tmp_path / name / "summary.json").write_text(
      json.dumps({"test/hr@10": hr, "train_seconds": 3.0})
    )
    (tmp_path / name / "config.json").write_text(
      json.dumps(
        {
          "experiment": f"exp:{name}",
          "references": [{"metric": "test/hr@10", "value": 0.726, "source": "paper"}],
        }
      )
    )
  (tmp_path / "a" / "baselines.json").write_text(
    json.dumps({"popularity": {"test/hr@10": 0.4, "seconds": 1.0}})
  )
  text = comparison([str(tmp_path / "a"), str(tmp_path / "b")], ["test/hr@10"])
  rows = [r for r in text.splitlines() if r.startswith("| ") and "---" not in r][1:]
  assert rows == [
    "| popularity (baseline, same split) | 0.4000 | — |",
    "| exp:a | 0.5000 | 3 s |",
    "| exp:b | 0.7000 | 3 s |",
  ]
  assert "published test/hr@10 = 0.726 (paper)" in text
