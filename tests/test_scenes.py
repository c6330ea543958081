"""fashion_mnist_scenes: schema, determinism, mask / box consistency, split hygiene."""

import hashlib
import os

import numpy as np
import pytest

from research.data import holdout, registry
from research.data.vision import scenes

FASHION_DIR = "/usr/share/datasets/fashion-mnist"
SMALL = dict(objects="digits", canvas=48, min_size=12, max_size=24, max_objects=4)


def _source(split, **options):
  return registry.get_source("fashion_mnist_scenes", split, **{**SMALL, **options})


def test_schema_and_fixed_shapes():
  source = _source("train", train_scenes=50)
  assert len(source) == 50
  for i in range(20):
    ex = source[i]
    assert ex["image"].shape == (48, 48, 1) and ex["image"].dtype == np.uint8
    assert ex["segmentation_mask"].shape == (48, 48) and ex["segmentation_mask"].dtype == np.int32
    assert ex["boxes"].shape == (4, 4) and ex["boxes"].dtype == np.float32
    assert ex["classes"].shape == (4,) and ex["classes"].dtype == np.int32
    assert ex["num_objects"].shape == () and ex["num_objects"].dtype == np.int32
    n = int(ex["num_objects"])
    assert 1 <= n <= 4
    assert (ex["classes"][:n] >= 0).all() and (ex["classes"][n:] == -1).all()
    assert (ex["boxes"][n:] == 0).all()
    assert ((ex["boxes"] >= 0) & (ex["boxes"] <= 1)).all()
    assert (ex["boxes"][:n, 2] > ex["boxes"][:n, 0]).all()
    assert (ex["boxes"][:n, 3] > ex["boxes"][:n, 1]).all()
  assert source.features["segmentation_mask"].num_classes == 11
  assert source.features["image"].shape == (48, 48, 1)
  batch = source.get_batch(np.array([3, 1]))
  np.testing.assert_array_equal(batch["segmentation_mask"][1], source[1]["segmentation_mask"])
  assert batch["boxes"].shape == (2, 4, 4)


def test_mask_matches_image_and_boxes_are_tight():
  source = _source("test", test_scenes=30)
  for i in range(30):
    ex = source[i]
    image, mask = ex["image"][..., 0], ex["segmentation_mask"]
    # Object pixels are exactly the non-background ones of the mask.
    np.testing.assert_array_equal(mask > 0, image >= scenes.MASK_THRESHOLD)
    np.testing.assert_array_equal(image[mask == 0], 0)
    n = int(ex["num_objects"])
    covered = np.zeros_like(mask, bool)
    for box, cls in zip(ex["boxes"][:n], ex["classes"][:n], strict=True):
      y0, x0, y1, x1 = np.rint(box * 48).astype(int)
      inside = mask[y0:y1, x0:x1] == cls + 1
      # Tight: each edge row / column of the box holds a pixel of the class.
      assert inside[0].any() and inside[-1].any()
      assert inside[:, 0].any() and inside[:, -1].any()
      covered[y0:y1, x0:x1] |= mask[y0:y1, x0:x1] == cls + 1
    # Every object pixel lies in a box of its class.
    np.testing.assert_array_equal(covered, mask > 0)


def test_occluded_objects_keep_half_their_pixels():
  rng = np.random.default_rng(1)
  # Solid 8x8 squares (area 64), each its own label, so the mask tells objects apart.
  images = np.full((1000, 8, 8, 1), 200, np.uint8)
  checked = 0
  for _ in range(30):
    ex = scenes.compose(
      rng,
      images,
      np.arange(1000),
      canvas=20,
      min_objects=6,
      max_objects=6,
      min_size=8,
      max_size=8,
    )
    n = int(ex["num_objects"])
    classes = ex["classes"][:n]
    assert 1 <= n <= 6
    if len(set(classes.tolist())) < n:
      continue  # two objects drew the same image
    checked += 1
    visible = [(ex["segmentation_mask"] == c + 1).sum() for c in classes]
    assert min(visible) >= scenes.MIN_VISIBLE * 64, visible
  assert checked >= 20


def test_deterministic_per_index_and_split():
  a = _source("test", test_scenes=10)
  scenes._object_pool.cache_clear()
  b = _source("test", test_scenes=10)
  for i in (0, 7, 3):  # random access, any order
    for key in scenes.features(48, 4):
      np.testing.assert_array_equal(a[i][key], b[i][key])
  # A different seed or split gives different scenes.
  other = _source("test", test_scenes=10, seed=1)
  assert not np.array_equal(a[0]["image"], other[0]["image"])
  val = _source("validation", validation_scenes=10)
  assert not np.array_equal(a[0]["image"], val[0]["image"])


def test_split_object_pools_are_disjoint():
  train = _source("train")
  val = _source("validation")
  test = _source("test")
  digits_train = registry.get_source("digits", "train")
  tr, va = holdout.carve_indices(
    np.asarray(digits_train.column("label")), len(digits_train), 0.1, 0
  )
  assert len(train.images) == len(tr) and len(val.images) == len(va)
  np.testing.assert_array_equal(val.images, digits_train.column("image")[va])
  np.testing.assert_array_equal(test.images, registry.get_source("digits", "test").column("image"))


def test_bad_options_name_the_option():
  with pytest.raises(ValueError, match="min_objects <= max_objects"):
    _source("train", min_objects=5, max_objects=2)
  with pytest.raises(ValueError, match="max_size <= canvas"):
    _source("train", max_size=80)
  with pytest.raises(ValueError, match="objects='cifar10'"):
    _source("train", objects="cifar10")
  with pytest.raises(ValueError, match="no option"):
    registry.get_source("fashion_mnist_scenes", "train", colour=True)


@pytest.mark.skipif(not os.path.isdir(FASHION_DIR), reason=f"{FASHION_DIR} absent")
def test_fashion_mnist_test_scenes_are_fixed():
  source = registry.get_source("fashion_mnist_scenes", "test")
  assert source.features["image"].shape == (64, 64, 1) and len(source) == 1000
  assert len(source.images) == 10000  # the Fashion-MNIST test split only
  assert source.class_names[0] == "T-shirt/top"
  digest = hashlib.sha256()
  for i in range(5):
    for key in ("image", "segmentation_mask", "boxes", "classes"):
      digest.update(np.ascontiguousarray(source[i][key]).tobytes())
  # Pinned: the fixed test scenes must not change between runs, machines or versions.
  assert digest.hexdigest()[:16] == "2eee6c377fe3bb82"
