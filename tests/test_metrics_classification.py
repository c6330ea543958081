"""research.metrics.classification: hand-computed cases and sklearn agreement."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics as skm

from research.metrics import classification as cls


def _counts(logits, labels, mask, **kw):
  out = cls.batch_counts(jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(mask), **kw)
  return jax.tree.map(np.asarray, out)


def test_batch_counts_hand_computed():
  # 3 classes; rows: true 0 pred 0, true 1 pred 2, true 2 pred 2, padding (true 0 pred 1).
  logits = np.array(
    [[2.0, 0.0, 0.0], [0.0, 1.0, 3.0], [0.0, 0.0, 1.0], [0.0, 9.0, 0.0]], np.float32
  )
  labels = np.array([0, 1, 2, 0])
  mask = np.array([True, True, True, False])
  c = _counts(logits, labels, mask, num_classes=3, topk=(2, 5))
  np.testing.assert_array_equal(c["confusion"], [[1, 0, 0], [0, 0, 1], [0, 0, 1]])
  assert c["confusion"].dtype == np.int32
  assert int(c["count"]) == 3
  # top-2: row 1's label (1) is second best -> hit; all 3 unmasked rows hit.
  assert int(c["top2_correct"]) == 3
  assert "top5_correct" not in c  # k >= C carries no information

  def ce(row, y):
    return -(row[y] - np.log(np.exp(row).sum()))

  expected = ce(logits[0], 0) + ce(logits[1], 1) + ce(logits[2], 2)
  np.testing.assert_allclose(float(c["loss_sum"]), expected, rtol=1e-6)
  assert c["loss_sum"].dtype == np.float32


def test_padding_with_garbage_contributes_nothing():
  logits = np.array([[1.0, 0.0], [np.nan, np.inf]], np.float32)
  labels = np.array([0, -7])  # padding label out of range too
  mask = np.array([True, False])
  c = _counts(logits, labels, mask, num_classes=2, topk=(1,))
  np.testing.assert_array_equal(c["confusion"], [[1, 0], [0, 0]])
  assert int(c["count"]) == 1 and int(c["top1_correct"]) == 1
  assert np.isfinite(c["loss_sum"])


def test_batch_counts_jits():
  fn = jax.jit(lambda logits, y, m: cls.batch_counts(logits, y, m, num_classes=4, topk=(2,)))
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(6, 4)).astype(np.float32)
  labels = rng.integers(0, 4, 6)
  mask = np.ones(6, bool)
  eager = _counts(logits, labels, mask, num_classes=4, topk=(2,))
  jitted = jax.tree.map(np.asarray, fn(logits, labels, mask))
  for k in eager:
    np.testing.assert_allclose(jitted[k], eager[k], rtol=1e-6)


def _random_split(rng, n, c):
  logits = rng.normal(size=(n, c)).astype(np.float32)
  labels = rng.integers(0, c, n)
  # Make the classifier better than chance so metrics are not all ~1/C.
  logits[np.arange(n), labels] += rng.uniform(0, 2.5, n).astype(np.float32)
  return logits, labels


def _accumulate(logits, labels, sizes, pad_to, num_classes, topk, class_names=None):
  """Feeds uneven batches, each padded with junk rows up to `pad_to`."""
  acc = cls.ClassificationAccumulator(num_classes, topk, class_names)
  start = 0
  for size in sizes:
    lo, y = logits[start : start + size], labels[start : start + size]
    pad = pad_to - size
    lo = np.concatenate([lo, np.full((pad, num_classes), 5.0, np.float32)])
    y = np.concatenate([y, np.zeros(pad, y.dtype)])
    mask = np.arange(pad_to) < size
    acc.update(_counts(lo, y, mask, num_classes=num_classes, topk=topk))
    start += size
  assert start == len(labels)
  return acc


def test_accumulator_matches_sklearn():
  rng = np.random.default_rng(42)
  n, c = 203, 7
  logits, labels = _random_split(rng, n, c)
  names = [f"c{i}" for i in range(c)]
  acc = _accumulate(logits, labels, [64, 64, 50, 25], 64, c, (2, 5), names)
  res = acc.result()
  preds = logits.argmax(-1)

  np.testing.assert_array_equal(
    acc.confusion_matrix(), skm.confusion_matrix(labels, preds, labels=range(c))
  )
  assert acc.confusion_matrix().dtype == np.int64
  assert res["accuracy"] == pytest.approx(skm.accuracy_score(labels, preds), abs=1e-12)
  for k in (2, 5):
    assert res[f"top{k}"] == pytest.approx(
      skm.top_k_accuracy_score(labels, logits, k=k, labels=range(c)), abs=1e-12
    )
  assert res["loss"] == pytest.approx(
    skm.log_loss(labels, np.asarray(jax.nn.softmax(logits.astype(np.float64))), labels=range(c)),
    rel=1e-5,
  )
  assert res["num_examples"] == n
  for avg in ("precision", "recall", "f1"):
    fn = getattr(skm, f"{avg}_score")
    assert res[f"{avg}_macro"] == pytest.approx(
      fn(labels, preds, average="macro", zero_division=0), abs=1e-12
    )
    per_class = fn(labels, preds, average=None, labels=range(c), zero_division=0)
    for i, name in enumerate(names):
      assert res[f"{avg}/{name}"] == pytest.approx(per_class[i], abs=1e-12)


def test_zero_division_and_absent_classes_like_sklearn():
  # Class 2 is never predicted (precision 0/0 -> 0); class 3 never occurs at all.
  labels = np.array([0, 0, 1, 2, 2])
  preds = np.array([0, 1, 1, 0, 1])
  logits = np.eye(4, dtype=np.float32)[preds]
  acc = _accumulate(logits, labels, [3, 2], 4, 4, (2,))
  res = acc.result()
  assert res["precision/2"] == 0.0 and res["f1/2"] == 0.0 and res["recall/2"] == 0.0
  assert res["precision/3"] == 0.0 and res["recall/3"] == 0.0
  # Hand computed over the classes present: P = (1/2, 1/3, 0), R = (1/2, 1, 0).
  assert res["precision_macro"] == pytest.approx((1 / 2 + 1 / 3 + 0) / 3)
  assert res["recall_macro"] == pytest.approx((1 / 2 + 1 + 0) / 3)
  for avg in ("precision", "recall", "f1"):
    fn = getattr(skm, f"{avg}_score")
    assert res[f"{avg}_macro"] == pytest.approx(
      fn(labels, preds, average="macro", zero_division=0), abs=1e-12
    )
  assert res["accuracy"] == pytest.approx(2 / 5)


def test_accumulator_rejects_out_of_range_labels_and_empty():
  acc = cls.ClassificationAccumulator(3, topk=())
  with pytest.raises(ValueError, match="No"):
    acc.result()
  bad = _counts(
    np.zeros((2, 3), np.float32), np.array([0, 3]), np.array([True, True]), num_classes=3, topk=()
  )
  with pytest.raises(ValueError, match="outside"):
    acc.update(bad)


def test_topk_not_reported_when_k_at_least_num_classes():
  acc = _accumulate(*_random_split(np.random.default_rng(1), 10, 5), [10], 10, 5, (1, 5))
  res = acc.result()
  assert "top5" not in res and res["top1"] == res["accuracy"]
