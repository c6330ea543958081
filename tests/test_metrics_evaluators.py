"""research.metrics.evaluators: a fake predict_fn over padded batches vs sklearn."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics as skm

from research.metrics import evaluators

NUM_CLASSES, DIM, BATCH = 4, 3, 8


def _split(n=21, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, DIM)).astype(np.float32)
  w = rng.normal(size=(DIM, NUM_CLASSES)).astype(np.float32)
  labels = (x @ w + rng.normal(scale=1.0, size=(n, NUM_CLASSES))).argmax(-1)
  return x, labels, w


def _batches_fn(x, labels):
  """Fixed-size batches; the last one padded with junk rows, mask False."""

  def batches():
    for start in range(0, len(x), BATCH):
      xb, yb = x[start : start + BATCH], labels[start : start + BATCH]
      pad = BATCH - len(xb)
      yield {
        "image": np.concatenate([xb, np.full((pad, DIM), 100.0, np.float32)]),
        "label": np.concatenate([yb, np.full(pad, 3)]).astype(np.int32),
        "mask": np.arange(BATCH) < len(xb),
      }

  return batches


def _predict_fn(w):
  apply = jax.jit(lambda x: x @ w)

  def predict(batch):
    return {
      "logits": apply(jnp.asarray(batch["image"])),
      "label": jnp.asarray(batch["label"]),
      "mask": jnp.asarray(batch["mask"]),
    }

  return predict


def test_classification_evaluator_matches_sklearn_on_unpadded_data():
  x, labels, w = _split()
  names = ["a", "b", "c", "d"]
  ev = evaluators.EVALUATORS["classification"](
    "test", _batches_fn(x, labels), num_classes=NUM_CLASSES, topk=(2,), class_names=names
  )
  scalars, artifacts = ev.run(_predict_fn(w))
  logits = x @ w
  preds = logits.argmax(-1)

  np.testing.assert_array_equal(
    artifacts["test/confusion_matrix"],
    skm.confusion_matrix(labels, preds, labels=range(NUM_CLASSES)),
  )
  assert scalars["test/num_examples"] == len(x)
  assert scalars["test/accuracy"] == pytest.approx(skm.accuracy_score(labels, preds))
  assert scalars["test/top2"] == pytest.approx(
    skm.top_k_accuracy_score(labels, logits, k=2, labels=range(NUM_CLASSES))
  )
  probs = np.asarray(jax.nn.softmax(logits.astype(np.float64)))
  assert scalars["test/loss"] == pytest.approx(
    skm.log_loss(labels, probs, labels=range(NUM_CLASSES)), rel=1e-5
  )
  assert scalars["test/f1_macro"] == pytest.approx(
    skm.f1_score(labels, preds, average="macro", zero_division=0)
  )
  recall = skm.recall_score(labels, preds, average=None, labels=range(NUM_CLASSES), zero_division=0)
  for i, name in enumerate(names):
    assert scalars[f"test/recall/{name}"] == pytest.approx(recall[i])
  assert all(k.startswith("test/") for k in scalars)

  # Fixed-size padded batches compile batch_counts once; the jitted fn is shared.
  again = evaluators.ClassificationEvaluator(
    "val", _batches_fn(x, labels), num_classes=NUM_CLASSES, topk=(2,)
  )
  assert again._counts_fn is ev._counts_fn
  again.run(_predict_fn(w))  # second run is re-iterable and gives the same numbers
  assert ev._counts_fn._cache_size() == 1
  assert ev.run(_predict_fn(w))[0] == scalars
  # Without the one-batch lookahead (several CPU devices) the numbers are the same.
  one_at_a_time = _predict_fn(w)
  one_at_a_time.one_in_flight = True
  assert ev.run(one_at_a_time)[0] == scalars


def test_missing_prediction_key_and_empty_split():
  x, labels, w = _split()
  ev = evaluators.ClassificationEvaluator(
    "test", _batches_fn(x, labels), num_classes=NUM_CLASSES, topk=()
  )
  with pytest.raises(KeyError, match="label"):
    ev.run(lambda b: {"logits": jnp.zeros((BATCH, NUM_CLASSES)), "mask": b["mask"]})
  empty = evaluators.ClassificationEvaluator("test", list, num_classes=NUM_CLASSES)
  with pytest.raises(ValueError, match="no unmasked"):
    empty.run(_predict_fn(w))


def test_default_class_names_and_mismatch():
  ev = evaluators.ClassificationEvaluator("test", list, num_classes=3)
  assert ev.class_names == ["0", "1", "2"]
  with pytest.raises(ValueError, match="class_names"):
    evaluators.ClassificationEvaluator("test", list, num_classes=3, class_names=["a"])


def test_check_evaluator_type():
  evaluators.check_evaluator_type("classification")
  with pytest.raises(ValueError, match="classification"):
    evaluators.check_evaluator_type("retrieval")
