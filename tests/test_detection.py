"""Detection: CenterNet targets and loss, decoding, NMS, COCO mAP, the evaluator and
the connected-components baseline, on hand-built arrays in the scenes' schema."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from research.baselines import detection as cc
from research.core import tasks
from research.metrics import detection
from research.metrics.evaluators import EVALUATORS
from research.metrics.evaluators.detection import DetectionEvaluator
from research.models import build_model, detector

C, M, GRID = 10, 6, 16  # classes, box rows, output grid of a 64x64 image


def _scene_boxes():
  """Two images: one object of class 3; two objects of class 1 and a padding row."""
  boxes = np.zeros((2, M, 4), np.float32)
  classes = np.full((2, M), -1, np.int32)
  boxes[0, 0], classes[0, 0] = [0.1, 0.2, 0.5, 0.6], 3
  boxes[1, 0], classes[1, 0] = [0.0, 0.0, 0.25, 0.25], 1
  boxes[1, 1], classes[1, 1] = [0.5, 0.5, 1.0, 1.0], 1
  return boxes, classes


def _perfect_outputs(boxes, classes):
  """CenterNet outputs [b, GRID, GRID, C + 4] that encode exactly these boxes."""
  t = tasks.centernet_targets(jnp.asarray(boxes), jnp.asarray(classes), (GRID, GRID), C)
  out = np.zeros((len(boxes), GRID, GRID, C + 4), np.float32)
  out[..., :C] = np.where(np.asarray(t["heatmap"]) == 1.0, 12.0, -12.0)
  for b in range(len(boxes)):
    for i in np.flatnonzero(classes[b] >= 0):
      y, x = divmod(int(t["index"][b, i]), GRID)
      out[b, y, x, C:] = np.concatenate([t["size"][b, i], t["offset"][b, i]])
  return out


def _centernet_gaussian_radius(det_size, min_overlap=0.7):
  """CenterNet's src/lib/utils/image.py gaussian_radius, as published (its roots
  are not the exact IoU solutions of CornerNet's derivation, a known quirk both
  papers' code keeps; the targets follow the code)."""
  height, width = det_size
  a1, b1 = 1, height + width
  c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
  r1 = (b1 + np.sqrt(b1**2 - 4 * a1 * c1)) / 2
  a2, b2 = 4, 2 * (height + width)
  c2 = (1 - min_overlap) * width * height
  r2 = (b2 + np.sqrt(b2**2 - 4 * a2 * c2)) / 2
  a3, b3 = 4 * min_overlap, -2 * min_overlap * (height + width)
  c3 = (min_overlap - 1) * width * height
  r3 = (b3 + np.sqrt(b3**2 - 4 * a3 * c3)) / 2
  return min(r1, r2, r3)


def test_gaussian_radius_is_centernets():
  np.testing.assert_allclose(float(tasks.gaussian_radius(6.4, 6.4)), 1.7492485, rtol=1e-6)
  sizes = [(4.0, 4.0), (10.0, 3.0), (2.5, 9.0), (0.5, 0.5), (16.0, 16.0)]
  got = tasks.gaussian_radius(
    jnp.asarray([h for h, _ in sizes]), jnp.asarray([w for _, w in sizes])
  )
  want = [_centernet_gaussian_radius(s) for s in sizes]
  np.testing.assert_allclose(got, want, rtol=1e-5)
  assert np.all(np.diff(want[-2:]) > 0)  # larger boxes, wider Gaussians


def test_centernet_targets_place_gaussian_peaks_and_regression_targets():
  boxes, classes = _scene_boxes()
  t = jax.jit(tasks.centernet_targets, static_argnums=(2, 3))(
    jnp.asarray(boxes), jnp.asarray(classes), (GRID, GRID), C
  )
  heat = np.asarray(t["heatmap"])
  assert heat.shape == (2, GRID, GRID, C)
  # Image 0: box rows 1.6..8, cols 3.2..9.6 -> centre (4.8, 6.4), cell (4, 6).
  assert heat[0, 4, 6, 3] == 1.0 and (heat[0] == 1.0).sum() == 1
  assert np.all(heat[0, ..., [c for c in range(C) if c != 3]] == 0)
  r = int(np.floor(tasks.gaussian_radius(6.4, 6.4)))  # 1
  sigma = (2 * r + 1) / 6
  np.testing.assert_allclose(heat[0, 5, 7, 3], np.exp(-2 / (2 * sigma**2)), rtol=1e-5)
  assert heat[0, 4, 6 + r + 1, 3] == 0  # cut at the radius
  assert int(t["index"][0, 0]) == 4 * GRID + 6
  np.testing.assert_allclose(t["size"][0, 0], [6.4, 6.4], rtol=1e-6)
  np.testing.assert_allclose(t["offset"][0, 0], [0.8, 0.4], atol=1e-5)
  np.testing.assert_array_equal(t["valid"][1], [1, 1, 0, 0, 0, 0])
  # Image 1: two class-1 peaks, one per object; the padding rows draw nothing.
  assert (heat[1, ..., 1] == 1.0).sum() == 2 and heat[1, ..., [0, 2]].max() == 0
  assert heat[1, 2, 2, 1] == 1.0 and heat[1, 12, 12, 1] == 1.0


def test_focal_loss_hand_computed_and_near_zero_when_perfect():
  target = jnp.asarray([1.0, 0.5, 0.0])
  loss = tasks.centernet_focal_loss(jnp.zeros(3), target)
  # Peak at p = 0.5: -log(0.5) * 0.5^2; neighbour with target 0.5: -log(0.5) * 0.5^2 * 0.5^4;
  # background: -log(0.5) * 0.5^2; one peak.
  expected = np.log(2) * 0.25 * (1 + 0.5**4 + 1)
  np.testing.assert_allclose(float(loss), expected, rtol=1e-6)
  perfect = tasks.centernet_focal_loss(jnp.asarray([20.0, -20.0, -20.0]), target)
  assert 0 <= float(perfect) < 1e-6


def test_task_loss_small_for_the_encoded_boxes_and_larger_otherwise():
  boxes, classes = _scene_boxes()
  task = tasks.build_task(dict(name="centernet", num_classes=C))
  batch = {"image": np.zeros((2, 64, 64, 1), np.float32), "boxes": boxes, "classes": classes}
  perfect = _perfect_outputs(boxes, classes)
  shifted = perfect.copy()
  shifted[..., C : C + 2] += 1.0  # every size one cell too large

  @jax.jit  # one compilation for all three (op by op, each op would compile on its own)
  def losses(perfect, shifted):
    grads = jax.grad(lambda o: task.loss(o, batch)[0])(jnp.zeros_like(perfect))
    return task.loss(perfect, batch), task.loss(shifted, batch)[1], grads

  (loss, metrics), worse, grads = losses(jnp.asarray(perfect), jnp.asarray(shifted))
  assert float(metrics["size"]) < 1e-5 and float(metrics["offset"]) < 1e-5
  assert float(loss) < 0.05
  np.testing.assert_allclose(float(worse["size"]), 1.0, rtol=1e-5)
  assert np.all(np.isfinite(np.asarray(grads)))


def test_model_shapes_and_heatmap_prior():
  model = build_model("centernet", num_classes=C, features=(4, 8, 8), head_features=8)
  x = jnp.zeros((2, 64, 64, 1))
  variables = jax.jit(model.init)(jax.random.PRNGKey(0), x)
  out = jax.jit(model.apply)(variables, x)
  assert out.shape == (2, GRID, GRID, C + 4) and out.dtype == jnp.float32
  # A blank image: the heatmap is its bias, sigmoid(-2.19) = 0.1 (CenterNet's prior).
  np.testing.assert_allclose(jax.nn.sigmoid(out[..., :C]), 0.1, atol=2e-3)
  with pytest.raises(ValueError, match="3 widths"):
    bad = build_model("centernet", num_classes=C, features=(4, 8))
    jax.eval_shape(lambda: bad.init(jax.random.PRNGKey(0), x))


def test_decode_recovers_the_encoded_boxes():
  boxes, classes = _scene_boxes()
  out = jnp.asarray(_perfect_outputs(boxes, classes))
  found, scores, labels = jax.jit(detector.decode, static_argnums=(1, 2))(out, C, 5)
  assert found.shape == (2, 5, 4) and scores.shape == labels.shape == (2, 5)
  assert np.all(np.diff(np.asarray(scores), axis=1) <= 0)
  np.testing.assert_allclose(found[0, 0], boxes[0, 0], atol=1e-5)
  assert int(labels[0, 0]) == 3 and float(scores[0, 0]) > 0.99 and float(scores[0, 1]) < 1e-4
  got = sorted(map(tuple, np.round(np.asarray(found[1, :2]), 5)))
  np.testing.assert_allclose(got, sorted(map(tuple, boxes[1, :2])), atol=1e-5)
  np.testing.assert_array_equal(labels[1, :2], [1, 1])


def test_decode_keeps_only_3x3_peaks():
  heat = np.full((1, 4, 4, 1), -10.0, np.float32)
  heat[0, 1, 1, 0], heat[0, 1, 2, 0] = 3.0, 2.0  # neighbours: only the larger is a peak
  heat[0, 3, 3, 0] = 1.0  # a separate peak
  out = np.concatenate([heat, np.ones((1, 4, 4, 4), np.float32)], -1)
  _, scores, _ = detector.decode(jnp.asarray(out), 1, 3)
  np.testing.assert_allclose(scores[0, :2], jax.nn.sigmoid(jnp.asarray([3.0, 1.0])), rtol=1e-6)
  assert float(scores[0, 2]) < 1e-4  # the suppressed neighbour scores 0


def test_box_iou_and_nms_on_hand_built_boxes():
  a = np.array([[0, 0, 10, 10]], np.float32)
  b = np.array([[0, 0, 10, 10], [0, 0, 10, 5], [20, 20, 30, 30], [5, 5, 15, 15]], np.float32)
  np.testing.assert_allclose(detection.box_iou(a, b), [[1.0, 0.5, 0.0, 25 / 175]])
  boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 9], [20, 20, 30, 30], [0, 0, 10, 4]], np.float32)
  scores = np.array([0.8, 0.9, 0.7, 0.95])
  # Box 1 (0.9) suppresses box 0 (IoU 0.9); box 3 overlaps box 1 at 4/9 < 0.5: kept.
  np.testing.assert_array_equal(detection.nms(boxes, scores, 0.5), [3, 1, 2])
  np.testing.assert_array_equal(detection.nms(boxes, scores, 0.3), [3, 2])  # 4/9 > 0.3
  # Class-wise: box 0 in another class than box 1 survives.
  keep = detection.batched_nms(boxes, scores, np.array([1, 0, 0, 0]), 0.5)
  np.testing.assert_array_equal(keep, [3, 1, 0, 2])
  assert detection.batched_nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int)).size == 0


def test_coco_map_perfect_hand_computed_and_empty():
  gt = [(np.array([[0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1]]), np.array([0, 0]))]
  perfect = [(gt[0][0], np.array([0.9, 0.8]), gt[0][1])]
  scores = detection.coco_map(gt, perfect, (20, 20), 3)
  assert scores["mAP"] == scores["mAP50"] == scores["AR100"] == 1.0
  # One hit (0.9) then a false positive (0.8); the second object is missed: the
  # precision envelope is 1 up to recall 0.5 and 0 after, i.e. 51 of COCO's 101
  # recall points, at every IoU threshold.
  half = [(np.array([[0, 0, 0.5, 0.5], [0.1, 0.6, 0.2, 0.7]]), np.array([0.9, 0.8]), gt[0][1])]
  scores = detection.coco_map(gt, half, (20, 20), 3)
  np.testing.assert_allclose([scores["mAP50"], scores["mAP"]], [51 / 101] * 2)
  # IoU 0.72: a hit at thresholds 0.50..0.70 (5 of 10), a miss above.
  one = [(np.array([[0, 0, 0.5, 0.5]]), np.array([2]))]
  loose = [(np.array([[0, 0, 0.36, 0.5]]), np.array([0.9]), np.array([2]))]
  scores = detection.coco_map(one, loose, (20, 20), 3)
  np.testing.assert_allclose([scores["mAP50"], scores["mAP75"], scores["mAP"]], [1, 0, 0.5])
  # The right box with the wrong class finds nothing.
  wrong = [(np.array([[0, 0, 0.5, 0.5]]), np.array([0.9]), np.array([1]))]
  assert detection.coco_map(one, wrong, (20, 20), 3)["mAP50"] == 0.0
  empty = [(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int))]
  assert set(detection.coco_map(one, empty, (20, 20), 3).values()) == {0.0}
  with pytest.raises(ValueError, match="no ground-truth"):
    detection.coco_map([(np.zeros((0, 4)), np.zeros(0, int))], empty, (20, 20), 3)


def test_evaluator_scores_perfect_outputs_one_and_skips_padding_rows():
  boxes, classes = _scene_boxes()
  outputs = _perfect_outputs(boxes, classes)
  # A third, padding row (mask False) whose objects the model does not find.
  batch = {
    "image": np.zeros((3, 64, 64, 1), np.float32),
    "boxes": np.concatenate([boxes, boxes[:1]]),
    "classes": np.concatenate([classes, classes[:1]]),
    "mask": np.array([True, True, False]),
  }
  logits = np.concatenate([outputs, np.full_like(outputs[:1], -12.0)])

  def predict_fn(b):
    return dict(b, logits=jnp.asarray(logits))

  assert EVALUATORS["detection"] is DetectionEvaluator
  ev = DetectionEvaluator("val", lambda: [batch], num_classes=C, topk=(5,))
  scalars, artifacts = ev.run(predict_fn)
  assert scalars["val/mAP50"] == scalars["val/mAP"] == 1.0 and artifacts == {}
  batch["mask"] = np.array([True, True, True])  # now the missed scene counts
  assert ev.run(predict_fn)[0]["val/mAP50"] < 1.0


def test_connected_components_boxes_and_areas():
  image = np.zeros((8, 10, 1), np.uint8)
  image[1:3, 1:4] = 200  # 6 pixels
  image[5, 6] = image[6, 7] = 40  # diagonal neighbours: one 8-connected component
  image[7, 0] = 10  # below the threshold
  boxes, areas = cc.components(image, 16)
  np.testing.assert_allclose(
    boxes, [[1 / 8, 1 / 10, 3 / 8, 4 / 10], [5 / 8, 6 / 10, 7 / 8, 8 / 10]]
  )
  np.testing.assert_array_equal(areas, [6, 2])
  boxes, _ = cc.components(image, 16, min_area=3)
  assert len(boxes) == 1


def test_connected_components_classifiers():
  # Class 0 objects are horizontal bars, class 1 vertical ones; class 1 is commoner.
  def scene(kind):
    image = np.zeros((16, 16, 1), np.uint8)
    if kind == 0:
      image[6:8, 2:14] = 255
      box = [6 / 16, 2 / 16, 8 / 16, 14 / 16]
    else:
      image[2:14, 6:8] = 255
      box = [2 / 16, 6 / 16, 14 / 16, 8 / 16]
    return {"image": image, "boxes": np.array([box], np.float32), "classes": np.array([kind])}

  train = [scene(0), scene(1), scene(1)]
  majority = cc.fit_classifier(train, 2, "majority", 10)
  nearest = cc.fit_classifier(train, 2, "nearest_mean", 10)
  bar = scene(0)
  x = cc.crop(bar["image"], bar["boxes"][0])
  assert majority(x) == 1 and nearest(x) == 0
  with pytest.raises(ValueError, match="classifier must be one of"):
    cc.fit_classifier(train, 2, "knn", 10)
