"""Augmentation ops (color_jitter, random_erasing, mixup, cutmix) and mixed-label loss.

Each op's formula is checked on small arrays by replaying its draws from the
same seed; the mixing ops' label weights must agree with the pixels; the
classification loss on a mixed batch must equal the weighted cross-entropies.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from research.core import tasks
from research.data import ops, pipeline
from research.data.core import ArraySource


def _unit_images(b=4, h=5, w=6, c=1, seed=0):
  """Float32 images in [0, 1], [b, h, w, c]."""
  return np.random.default_rng(seed).random((b, h, w, c)).astype(np.float32)


def _op(spec):
  (op,) = ops.parse(spec)
  return op


# --- colour jitter -----------------------------------------------------------------------------


def _factors(seed, b, ranges):
  """The op's draws: one factor per example for brightness, contrast, saturation, in order."""
  rng = np.random.default_rng(seed)
  return [rng.uniform(lo, hi, size=(b, 1, 1, 1)).astype(np.float32) for lo, hi in ranges]


def test_color_jitter_brightness_and_contrast_formulas():
  x = _unit_images()
  fb, _, _ = _factors(3, 4, [(0.7, 1.3), (1, 1), (1, 1)])
  out = _op("color_jitter(brightness=0.3)").apply_batch({"image": x}, np.random.default_rng(3))
  np.testing.assert_allclose(out["image"], np.clip(x * fb, 0, 1), rtol=1e-6)
  assert not np.allclose(out["image"], x) and out["image"].dtype == np.float32

  _, fc, _ = _factors(5, 4, [(1, 1), (0.5, 1.5), (1, 1)])
  out = _op("color_jitter(contrast=0.5)").apply_batch({"image": x}, np.random.default_rng(5))
  mean = x.mean(axis=(1, 2, 3), keepdims=True)  # one mean per image
  np.testing.assert_allclose(out["image"], np.clip(fc * x + (1 - fc) * mean, 0, 1), rtol=1e-5)
  # A strength above 1 cannot make a negative factor (torchvision's max(0, 1 - s)).
  out = _op("color_jitter(brightness=5)").apply_batch({"image": x}, np.random.default_rng(0))
  assert out["image"].min() >= 0 and out["image"].max() <= 1


def test_color_jitter_saturation_on_rgb_and_grey():
  rgb = _unit_images(c=3)
  _, _, fs = _factors(2, 4, [(1, 1), (1, 1), (0.2, 1.8)])
  out = _op("color_jitter(saturation=0.8)").apply_batch({"image": rgb}, np.random.default_rng(2))
  grey = (rgb * np.array([0.299, 0.587, 0.114], np.float32)).sum(-1, keepdims=True)
  np.testing.assert_allclose(out["image"], np.clip(fs * rgb + (1 - fs) * grey, 0, 1), atol=1e-6)
  # A grey image is its own luma: saturation leaves it exactly unchanged.
  x = _unit_images(c=1)
  out = _op("color_jitter(saturation=0.9)").apply_batch({"image": x}, np.random.default_rng(2))
  np.testing.assert_array_equal(out["image"], x)
  # ... and draws the same stream, so brightness is the same with or without saturation.
  a = _op("color_jitter(0.3, 0.3, 0.9)").apply_batch({"image": x}, np.random.default_rng(1))
  b = _op("color_jitter(0.3, 0.3, 0.0)").apply_batch({"image": x}, np.random.default_rng(1))
  np.testing.assert_array_equal(a["image"], b["image"])


def test_color_jitter_rejects_what_it_cannot_jitter():
  with pytest.raises(ValueError, match=r"value_range\(0, 1\)"):
    _op("color_jitter(0.2)").apply_batch({"image": np.zeros((2, 3, 3, 1), np.uint8)}, _rng())
  with pytest.raises(ValueError, match="before standardize"):
    _op("color_jitter(0.2)").apply_batch({"image": -_unit_images() - 0.5}, _rng())
  with pytest.raises(ValueError, match="2 channels"):
    _op("color_jitter(0.2)").apply_batch({"image": _unit_images(c=2)}, _rng())
  with pytest.raises(ValueError, match=">= 0"):
    ops.check("color_jitter(brightness=-0.1)")


def _rng(seed=0):
  return np.random.default_rng(seed)


# --- random erasing ----------------------------------------------------------------------------


def test_random_erasing_erases_one_rectangle_of_the_drawn_size():
  h, w = 20, 24
  x = np.ones((200, h, w, 1), np.float32)
  out = _op("random_erasing(p=1.0, value=0)").apply_batch({"image": x}, _rng(1))["image"]
  for img in out[..., 0]:
    rows, cols = np.nonzero(img == 0)
    assert len(rows), "p=1 erases every image"
    eh, ew = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    assert len(rows) == eh * ew  # a full rectangle, nothing outside it
    # Area S_e in [0.02, 0.4] of the image and aspect h / w in [0.3, 1 / 0.3], up to the
    # rounding of h = round(sqrt(S_e r)) and w = round(sqrt(S_e / r)) to whole pixels.
    slack = 0.5 * (eh + ew + 1) + 0.25
    assert 0.02 * h * w - slack <= eh * ew <= 0.4 * h * w + slack
    assert (eh - 0.5) / (ew + 0.5) <= 1 / 0.3 and (eh + 0.5) / (ew - 0.5) >= 0.3
  areas = [(img == 0).sum() / (h * w) for img in out[..., 0]]
  assert 0.15 < np.mean(areas) < 0.25  # E[S_e] = 0.21 (less a few big draws that do not fit)


def test_random_erasing_rate_value_and_determinism():
  x = np.ones((400, 8, 8, 3), np.float32)
  out = _op("random_erasing(p=0.25, value=-2.0)").apply_batch({"image": x}, _rng(4))["image"]
  erased = (out != 1).any(axis=(1, 2, 3))
  assert abs(erased.mean() - 0.25) < 5 * np.sqrt(0.25 * 0.75 / 400)
  assert set(np.unique(out)) == {-2.0, 1.0}
  assert ((out == -2.0).all(-1) | (out == 1.0).all(-1)).all()  # every channel alike
  assert out.shape == x.shape and out.dtype == x.dtype
  again = _op("random_erasing(p=0.25, value=-2.0)").apply_batch({"image": x}, _rng(4))["image"]
  np.testing.assert_array_equal(out, again)
  none = _op("random_erasing(p=0.0)").apply_batch({"image": x}, _rng(4))["image"]
  np.testing.assert_array_equal(none, x)
  # uint8 images keep their dtype.
  u8 = _op("random_erasing(p=1.0)").apply_batch(
    {"image": np.full((3, 6, 6, 1), 9, np.uint8)}, _rng()
  )
  assert u8["image"].dtype == np.uint8 and (u8["image"] == 0).any()


@pytest.mark.parametrize(
  "spec, words",
  [
    ("random_erasing(p=2)", ["probability"]),
    ("random_erasing(scale=(0.5, 0.1))", ["scale", "lo <= hi"]),
    ("random_erasing(scale=(0.1, 2.0))", ["fraction", "<= 1"]),
    ("random_erasing(ratio=(0, 1))", ["ratio"]),
    ("mixup(alpha=0)", ["alpha", "positive"]),
    ("cutmix(beta=-1)", ["beta", "positive"]),
    ("cutmix(p=1.5)", ["probability"]),
  ],
)
def test_bad_arguments_are_named(spec, words):
  with pytest.raises(ValueError) as e:
    ops.check(spec)
  for word in words:
    assert word in str(e.value)


@pytest.mark.parametrize(
  "spec", ["color_jitter(0.4, 0.4, 0.4)", "random_erasing(p=0.5)", "mixup(0.4)", "cutmix"]
)
def test_random_per_example_ops_same_rng_same_output_and_need_rng(spec):
  op = _op(spec)
  ex = {"image": _unit_images(1, c=3)[0], "label": np.int32(2)}
  a, b = op(ex, _rng(7)), op(ex, _rng(7))
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])
  assert ops.is_random(op)
  with pytest.raises(ValueError, match="needs a np.random.Generator"):
    op(ex, None)


# --- mixup and cutmix ----------------------------------------------------------------------------


def _labelled(b=8, h=6, w=7):
  """Images whose pixels are all i + 1 for example i, and labels i (so partners are readable)."""
  image = np.broadcast_to(np.arange(1, b + 1, dtype=np.float32)[:, None, None, None], (b, h, w, 1))
  return {"image": image.copy(), "label": np.arange(b, dtype=np.int32)}


def test_mixup_pixels_agree_with_label_mix_and_weight():
  batch = _labelled()
  for seed in range(10):
    out = _op("mixup(alpha=0.4)").apply_batch(batch, _rng(seed))
    w, partner = out["mix_weight"], out["label_mix"]
    assert out["mix_weight"].dtype == np.float32 and partner.dtype == np.int32
    assert np.unique(w).size == 1 and 0 <= w[0] <= 1  # one lam per batch
    assert sorted(partner) == list(range(8))  # a permutation of the batch
    want = (
      w[:, None, None, None] * (batch["label"] + 1.0)[:, None, None, None]
      + (1 - w)[:, None, None, None] * (partner + 1.0)[:, None, None, None]
    )
    np.testing.assert_allclose(out["image"], np.broadcast_to(want, out["image"].shape), rtol=1e-6)
    np.testing.assert_array_equal(out["label"], batch["label"])
  # The draws: one coin, a permutation, lam ~ Beta(alpha, alpha).
  rng = _rng(3)
  rng.random()
  perm = rng.permutation(8)
  lam = np.float32(rng.beta(0.4, 0.4))
  out = _op("mixup(alpha=0.4)").apply_batch(batch, _rng(3))
  np.testing.assert_array_equal(out["label_mix"], perm)
  np.testing.assert_array_equal(out["mix_weight"], np.full(8, lam))


def test_cutmix_weight_is_the_unpasted_area_fraction():
  batch = _labelled(b=6, h=10, w=12)
  weights = []
  for seed in range(40):
    out = _op("cutmix").apply_batch(batch, _rng(seed))
    for i in range(6):
      own = (out["image"][i] == i + 1).mean()
      partner = out["label_mix"][i]
      assert set(np.unique(out["image"][i])) <= {i + 1, partner + 1}  # own and partner pixels
      if partner != i:
        assert out["mix_weight"][i] == pytest.approx(own, abs=1e-6)
    weights.append(out["mix_weight"][0])
  # Beta(1, 1): lam uniform; the pasted box is smaller after clipping, so E[w] >= 0.5.
  assert 0.4 < np.mean(weights) < 0.85 and min(weights) < 0.5 < max(weights)


@pytest.mark.parametrize("spec", ["mixup(p=0.0)", "cutmix(p=0.0)"])
def test_mixing_with_p_zero_adds_unit_weights_and_leaves_pixels(spec):
  batch = _labelled()
  out = _op(spec).apply_batch(batch, _rng())
  np.testing.assert_array_equal(out["image"], batch["image"])
  np.testing.assert_array_equal(out["label_mix"], batch["label"])
  np.testing.assert_array_equal(out["mix_weight"], np.ones(8, np.float32))


def test_mixing_probability_is_per_batch():
  batch = _labelled()
  mixed = [
    not np.array_equal(_op("cutmix(p=0.5)").apply_batch(batch, _rng(s))["image"], batch["image"])
    for s in range(200)
  ]
  assert 0.35 < np.mean(mixed) < 0.6  # a few batches draw an empty box (lam near 1)


def test_two_mixing_ops_are_refused():
  with pytest.raises(ValueError, match="one mixing op"):
    ops.apply_batch(ops.parse("mixup|cutmix"), _labelled(), _rng())


def test_single_example_and_eval_never_mix():
  ex = {"image": np.full((4, 4, 1), 3, np.uint8), "label": np.int32(5)}
  out = _op("mixup(alpha=1.0)")(ex, _rng())
  assert out["label_mix"] == 5 and out["mix_weight"] == 1.0
  np.testing.assert_array_equal(out["image"], ex["image"].astype(np.float32))
  src = ArraySource(_labelled(b=10))
  pp = ops.parse("random_erasing(p=1.0)|cutmix")
  # An unseeded eval refuses random ops; a seeded one runs them per example: no mixing.
  with pytest.raises(ValueError, match="deterministic"):
    pipeline.eval_iterator(src, global_batch_size=4, ops=pp, shard=(0, 1))
  for b in pipeline.eval_iterator(
    src, global_batch_size=4, ops=ops.parse("cutmix"), seed=0, shard=(0, 1)
  ):
    np.testing.assert_array_equal(b["label_mix"], b["label"])
    np.testing.assert_array_equal(b["mix_weight"], np.ones(4, np.float32))
    np.testing.assert_array_equal(b["image"][:, 0, 0, 0], b["label"] + 1.0)


def test_train_pipeline_with_mixing_resumes_exactly():
  src = ArraySource({"image": _unit_images(32, h=8, w=8), "label": np.arange(32) % 10})
  pp = ops.parse("color_jitter(0.2, 0.2)|random_erasing|mixup(0.2)")
  make = lambda: pipeline.train_iterator(
    src, global_batch_size=8, ops=pp, seed=3, shard=(0, 1), num_threads=0
  )
  it = make()
  first = next(it)
  assert set(first) == {"image", "label", "label_mix", "mix_weight"}
  next(it)
  state = it.get_state()
  want = [next(it) for _ in range(3)]
  resumed = make()
  resumed.set_state(state)
  for w in want:
    got = next(resumed)
    for k in w:
      np.testing.assert_array_equal(w[k], got[k])


# --- the mixed loss --------------------------------------------------------------------------------


def _ce(logits, labels, smoothing=0.0):
  targets = optax.smooth_labels(jax.nn.one_hot(labels, 5), smoothing) if smoothing else None
  if targets is None:
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  return optax.softmax_cross_entropy(logits, targets)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_classification_loss_mixes_the_two_cross_entropies(smoothing):
  logits = jnp.asarray(np.random.default_rng(0).normal(size=(6, 5)), jnp.float32)
  label = jnp.array([0, 1, 2, 3, 4, 0])
  label_mix = jnp.array([1, 1, 4, 0, 2, 3])
  weight = jnp.array([0.3, 1.0, 0.0, 0.5, 0.9, 0.25], jnp.float32)
  task = tasks.ClassificationTask(num_classes=5, label_smoothing=smoothing)
  batch = {"label": label, "label_mix": label_mix, "mix_weight": weight}
  loss, metrics = task.loss(logits, batch)
  want = (
    weight * _ce(logits, label, smoothing) + (1 - weight) * _ce(logits, label_mix, smoothing)
  ).mean()
  np.testing.assert_allclose(loss, want, rtol=1e-6)
  # Accuracy is against 'label', not the partner.
  assert metrics["accuracy"] == pytest.approx(float((logits.argmax(-1) == label).mean()))
  # Weight 1 is plain cross-entropy.
  ones = dict(batch, mix_weight=jnp.ones(6, jnp.float32))
  np.testing.assert_allclose(task.loss(logits, ones)[0], task.loss(logits, {"label": label})[0])
  with pytest.raises(ValueError, match="mix_weight"):
    task.loss(logits, {"label": label, "label_mix": label_mix})


def test_augmentation_ops_never_mutate_their_input():
  batch = {"image": _unit_images(6, c=3), "label": np.arange(6, dtype=np.int32)}
  before = {k: v.copy() for k, v in batch.items()}
  for spec in ("color_jitter(0.5, 0.5, 0.5)|random_erasing(p=1.0)|mixup", "cutmix"):
    out = ops.apply_batch(ops.parse(spec), batch, _rng(2))
    assert not np.array_equal(out["image"], batch["image"])  # they did change something
  for k in batch:
    np.testing.assert_array_equal(batch[k], before[k])
