"""Language-model metrics and binary ROC AUC, against direct computations."""

import math

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics as skm

from research.core.tasks import TokenPredictionTask
from research.metrics import evaluators


def _logsoftmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_lm_evaluator_is_exact_over_padded_batches():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(5, 4, 7)).astype(np.float32)
  targets = rng.integers(0, 7, (5, 4))
  weights = np.ones((5, 4), np.float32)
  weights[4, 2:] = 0  # padded tail of the last real window
  expected_nll = -np.take_along_axis(_logsoftmax(logits), targets[..., None], -1)[..., 0]
  expected = (expected_nll * weights).sum() / weights.sum()
  # Batches of 3: the second is padded with a garbage row (mask False).
  batches = []
  for lo in (0, 3):
    idx = list(range(lo, min(lo + 3, 5)))
    mask = np.array([True] * len(idx) + [False] * (3 - len(idx)))
    idx += [0] * (3 - len(idx))
    batches.append(
      dict(
        logits=logits[idx] * np.where(mask, 1, np.nan)[:, None, None],
        targets=targets[idx],
        weights=weights[idx],
        mask=mask,
      )
    )
  ev = evaluators.LanguageModelEvaluator("val", lambda: batches)
  scalars, _ = ev.run(lambda b: {k: jnp.asarray(v) for k, v in b.items()})
  assert scalars["val/loss"] == pytest.approx(expected, rel=1e-6)
  assert scalars["val/bits_per_token"] == pytest.approx(expected / math.log(2), rel=1e-6)
  assert scalars["val/perplexity"] == pytest.approx(math.exp(expected), rel=1e-6)
  assert scalars["val/tokens"] == weights.sum()


def test_token_prediction_task_weights_select_positions():
  logits = jnp.asarray(np.random.default_rng(1).normal(size=(2, 3, 5)), jnp.float32)
  targets = jnp.array([[1, 2, 3], [4, 0, 1]])
  weights = jnp.array([[1.0, 0, 0], [0, 0, 1.0]])
  loss, _ = TokenPredictionTask().loss(logits, dict(targets=targets, weights=weights))
  nll = -np.take_along_axis(_logsoftmax(np.asarray(logits)), np.asarray(targets)[..., None], -1)
  assert float(loss) == pytest.approx((nll[0, 0, 0] + nll[1, 2, 0]) / 2, rel=1e-6)


def test_binary_classification_reports_exact_roc_auc():
  rng = np.random.default_rng(2)
  labels = rng.integers(0, 2, 50)
  logits = rng.normal(size=(50, 2)) + labels[:, None] * np.array([0.0, 1.0])
  batches = []
  for lo in range(0, 50, 16):
    idx = np.arange(lo, lo + 16)
    mask = idx < 50
    idx = np.where(mask, idx, 0)
    batches.append(dict(logits=logits[idx].astype(np.float32), label=labels[idx], mask=mask))
  ev = evaluators.ClassificationEvaluator("test", lambda: batches, num_classes=2)
  scalars, _ = ev.run(lambda b: {k: jnp.asarray(v) for k, v in b.items()})
  probs = 1 / (1 + np.exp(logits[:, 0] - logits[:, 1]))
  assert scalars["test/roc_auc"] == pytest.approx(skm.roc_auc_score(labels, probs), abs=1e-9)
  assert scalars["test/recall/1"] == pytest.approx(
    skm.recall_score(labels, logits.argmax(1)), abs=1e-12
  )
