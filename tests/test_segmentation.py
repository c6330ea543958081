"""Segmentation: metrics against hand-computed values, task loss, U-Net, evaluator, baseline."""

import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from research.baselines import BASELINES, BaselineContext
from research.core import tasks
from research.data.core import ArraySource
from research.metrics import segmentation
from research.metrics.evaluators import EVALUATORS
from research.models.registry import build_model

# 2 x 3 pixels, K = 4 labels; label 3 occurs nowhere. By hand (rows true, cols predicted):
# true 0 -> pred 0, 1; true 1 -> 1, 1; true 2 -> 2, 0.
LABELS = np.array([[0, 0, 1], [1, 2, 2]])
PRED = np.array([[0, 1, 1], [1, 2, 0]])
CONFUSION = np.array([[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])
# IoU: 1/(1+1+1), 2/(2+1+0), 1/(1+0+1); label 3 has an empty union and is left out.
EXPECTED = {
  "pixel_accuracy": 4 / 6,
  "miou": (1 / 3 + 2 / 3 + 1 / 2) / 3,
  "mean_accuracy": (1 / 2 + 2 / 2 + 1 / 2) / 3,
  "fg_miou": (2 / 3 + 1 / 2) / 2,
}


def _one_hot_logits(pred, k):
  return np.eye(k, dtype=np.float32)[pred] * 5.0


def test_confusion_and_scores_by_hand():
  np.testing.assert_array_equal(segmentation.confusion_matrix(PRED, LABELS, 4), CONFUSION)
  # Ignored target pixels (-1, 255) count nowhere, whatever was predicted there.
  labels = np.concatenate([LABELS, [[-1, 255, 255]]])
  pred = np.concatenate([PRED, [[0, 1, 3]]])
  np.testing.assert_array_equal(segmentation.confusion_matrix(pred, labels, 4), CONFUSION)
  names = ["background", "a", "b", "c"]
  result = segmentation.scores(CONFUSION, names)
  for key, value in EXPECTED.items():
    assert result[key] == pytest.approx(value)
  assert result["iou/a"] == pytest.approx(2 / 3) and "iou/c" not in result
  # A label only predicted (never true) is present: its IoU 0 counts in the mean.
  pred_c = PRED.copy()
  pred_c[0, 0] = 3
  assert segmentation.scores(segmentation.confusion_matrix(pred_c, LABELS, 4))[
    "miou"
  ] == pytest.approx((0 + 2 / 3 + 1 / 2 + 0) / 4)
  with pytest.raises(ValueError, match="at least one"):
    segmentation.scores(np.zeros((3, 3)))


def test_batch_counts_match_host_confusion_and_skip_padding():
  logits = _one_hot_logits(np.stack([PRED, 3 - PRED]), 4)
  labels = np.stack([LABELS, LABELS])
  out = segmentation.batch_counts(
    jnp.asarray(logits), jnp.asarray(labels), jnp.array([True, False]), num_labels=4
  )
  np.testing.assert_array_equal(out["confusion"], CONFUSION)
  assert int(out["count"]) == 6
  ce = optax.softmax_cross_entropy_with_integer_labels(logits[0], LABELS).sum()
  assert float(out["loss_sum"]) == pytest.approx(float(ce), rel=1e-5)


def test_segmentation_task_loss_ignores_void_pixels():
  task = tasks.build_task(dict(name="segmentation", num_classes=3))
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(1, 2, 3, 4)).astype(np.float32)
  labels = np.array([[[0, 3, 1], [-1, 2, 255]]])
  loss, metrics = task.loss(jnp.asarray(logits), {"segmentation_mask": jnp.asarray(labels)})
  keep = (labels >= 0) & (labels < 4)
  logp = jax.nn.log_softmax(logits[keep], -1)
  expected = -np.mean(np.take_along_axis(np.asarray(logp), labels[keep][:, None], -1))
  assert float(loss) == pytest.approx(expected, rel=1e-5)
  correct = (logits.argmax(-1) == labels)[keep].mean()
  assert float(metrics["pixel_accuracy"]) == pytest.approx(correct)
  with pytest.raises(ValueError, match="model.num_classes=4"):
    task.loss(jnp.zeros((1, 2, 3, 3)), {"segmentation_mask": jnp.asarray(labels)})


def test_unet_shapes_skips_and_bad_sizes():
  model = build_model("unet", num_classes=5, features=(4, 8, 16))
  x = jnp.ones((2, 16, 12, 1))
  variables = model.init(jax.random.key(0), x, train=False)
  assert model.apply(variables, x, train=False).shape == (2, 16, 12, 5)
  params = variables["params"]
  # Two transposed convolutions (one per level below the top) and blocks that see
  # the concatenated skip: the first decoder conv takes 2 x 8 channels.
  assert sum(k.startswith("ConvTranspose") for k in params) == 2
  kernels = [v["kernel"].shape for k, v in params.items() if k.startswith("Conv_")]
  assert (3, 3, 16, 8) in kernels and (3, 3, 8, 4) in kernels and kernels[-1] == (1, 1, 4, 5)
  with pytest.raises(ValueError, match="divisible by 4"):
    model.init(jax.random.key(0), jnp.ones((1, 10, 12, 1)), train=False)


@pytest.mark.slow
def test_unet_learns_a_fixed_scene():
  """A few Adam steps on two masks beat predicting all background (real learning)."""
  rng = np.random.default_rng(0)
  labels = np.zeros((2, 16, 16), np.int32)
  labels[0, 2:9, 3:10] = 1
  labels[1, 6:14, 1:6] = 2
  images = (labels[..., None] > 0) * rng.uniform(0.5, 1.0, (2, 16, 16, 1))
  images += (labels[..., None] == 2) * 0.5 * (np.arange(16)[None, None, :, None] % 2)
  model = build_model("unet", num_classes=3, features=(8, 16))
  task = tasks.SegmentationTask(num_classes=2)
  params = model.init(jax.random.key(0), images, train=False)["params"]
  tx = optax.adam(1e-2)
  opt = tx.init(params)

  @jax.jit
  def step(params, opt):
    def loss_fn(p):
      return task.loss(
        model.apply({"params": p}, images, train=True), {"segmentation_mask": labels}
      )[0]

    grads = jax.grad(loss_fn)(params)
    updates, opt = tx.update(grads, opt)
    return optax.apply_updates(params, updates), opt

  for _ in range(60):
    params, opt = step(params, opt)
  pred = np.asarray(model.apply({"params": params}, images, train=False).argmax(-1))
  trained = segmentation.scores(segmentation.confusion_matrix(pred, labels, 3))
  background = segmentation.scores(segmentation.confusion_matrix(0 * labels, labels, 3))
  assert trained["miou"] > 0.6 > 2 * background["miou"]


def test_evaluator_is_exact_over_padded_batches():
  rng = np.random.default_rng(1)
  labels = rng.integers(0, 4, (5, 6, 6))
  labels[0, 0, :] = -1
  pred = np.where(rng.random((5, 6, 6)) < 0.7, labels.clip(0), rng.integers(0, 4, (5, 6, 6)))

  def batches():
    for start in (0, 3):  # 5 examples in batches of 3: the last has a padding row
      idx = np.arange(start, start + 3)
      real = idx < 5
      idx = np.where(real, idx, 0)
      yield {"segmentation_mask": labels[idx], "pred": pred[idx], "mask": real}

  def predict_fn(batch):
    return dict(batch, logits=jnp.asarray(_one_hot_logits(batch["pred"], 4)))

  evaluator = EVALUATORS["segmentation"](
    "test", batches, num_classes=3, class_names=["x", "y", "z"], topk=(5,)
  )
  scalars, artifacts = evaluator.run(predict_fn)
  expected = segmentation.scores(segmentation.confusion_matrix(pred, labels, 4))
  assert scalars["test/miou"] == pytest.approx(expected["miou"])
  assert scalars["test/pixel_accuracy"] == pytest.approx(expected["pixel_accuracy"])
  assert "test/iou/background" in scalars and "test/iou/z" in scalars
  np.testing.assert_array_equal(
    artifacts["test/confusion_matrix"], segmentation.confusion_matrix(pred, labels, 4)
  )
  assert evaluator.class_names == ["background", "x", "y", "z"]


def test_all_background_baseline_by_hand():
  # 3 of 6 pixels background; labels 1 and 2 present.
  masks = np.array([[[0, 0, 1], [0, 2, 2]]], np.int32)
  data = types.SimpleNamespace(raw=lambda split: ArraySource({"segmentation_mask": masks}))
  config = types.SimpleNamespace(
    task=types.SimpleNamespace(num_classes=3, label_key="segmentation_mask")
  )
  ctx = BaselineContext(config=config, data=data, split="test", output_dir="/nonexistent")
  result = BASELINES["all_background"](ctx)
  assert result["pixel_accuracy"] == pytest.approx(3 / 6)
  # Background IoU 3/6; labels 1 and 2 IoU 0; label 3 absent.
  assert result["miou"] == pytest.approx((3 / 6) / 3)
  assert result["mean_accuracy"] == pytest.approx(1 / 3)
