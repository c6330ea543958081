"""Real detection / segmentation sources (coco, voc, oxford_iiit_pet) in the scene schema.

voc and oxford_iiit_pet go through TFDS under `tfds.testing.mock_data` (random
examples in the real feature layout); TFDS's coco builder imports TensorFlow,
which is not installed here, so coco's mapping is tested on examples in its
TFDS layout.
"""

import json

import numpy as np
import pytest
import tensorflow_datasets as tfds

from research.core import config as config_lib
from research.data import pipeline, registry
from research.data.vision import detection_sources as ds


@pytest.fixture
def isolated(tmp_path, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  monkeypatch.delenv("RESEARCH_DATA_DIR", raising=False)
  return tmp_path


def _check_schema(ex, canvas, max_objects, num_classes):
  assert ex["image"].shape == (canvas, canvas, 3) and ex["image"].dtype == np.uint8
  assert ex["boxes"].shape == (max_objects, 4) and ex["boxes"].dtype == np.float32
  assert ex["classes"].shape == (max_objects,) and ex["classes"].dtype == np.int32
  n = int(ex["num_objects"])
  assert 0 <= n <= max_objects and ex["num_objects"].dtype == np.int32
  assert ((ex["classes"][:n] >= 0) & (ex["classes"][:n] < num_classes)).all()
  assert (ex["classes"][n:] == -1).all() and (ex["boxes"][n:] == 0).all()
  assert ((ex["boxes"] >= 0) & (ex["boxes"] <= 1)).all()


def test_letterbox_moves_boxes_with_the_image():
  image = np.zeros((20, 40, 3), np.uint8)
  image[10:, 20:] = 255  # bottom-right quarter: box (0.5, 0.5, 1, 1)
  out, factors = ds.letterbox(image, 32)
  assert out.shape == (32, 32, 3) and factors == (16 / 32, 1.0)
  placed = ds.place_boxes(np.array([[0.5, 0.5, 1.0, 1.0]]), np.array([3]), factors, 2)
  np.testing.assert_allclose(placed["boxes"][0], [0.25, 0.5, 0.5, 1.0])
  y0, x0, y1, x1 = (placed["boxes"][0] * 32).astype(int)
  # The white region lands inside the moved box, and nowhere else; padding rows stay 0.
  assert (out[y0 + 1 : y1 - 1, x0 + 1 : x1 - 1] == 255).all()
  # (one pixel of bilinear blur at the edges)
  assert out[: y0 - 1].max() == 0 and out[:, : x0 - 1].max() == 0 and out[16:].max() == 0
  assert placed["num_objects"] == 1 and list(placed["classes"]) == [3, -1]


def test_coco_layout_drops_crowds_and_truncates():
  examples = [
    {
      "image": np.full((30, 60, 3), 7, np.uint8),
      "image/id": 1,
      "objects": {
        "bbox": np.array([[0.0, 0.0, 0.5, 0.5], [0.1, 0.1, 0.2, 0.2], [0.5, 0.5, 1.0, 1.2]]),
        "label": np.array([5, 6, 7]),
        "is_crowd": np.array([False, True, False]),
        "area": np.array([1, 2, 3]),
      },
    }
  ]
  source = ds.RealSource("coco", examples, canvas=40, max_objects=4, split="validation")
  ex = source[0]
  _check_schema(ex, 40, 4, 80)
  assert ex["num_objects"] == 2 and list(ex["classes"][:2]) == [5, 7]  # the crowd is dropped
  np.testing.assert_allclose(ex["boxes"][:2], [[0, 0, 0.25, 0.5], [0.25, 0.5, 0.5, 1.0]])
  truncated = ds.RealSource("coco", examples, canvas=40, max_objects=1)[0]
  assert truncated["num_objects"] == 1 and truncated["classes"][0] == 5
  assert source.class_names == [str(i) for i in range(80)]


def test_pet_trimap_mapping():
  trimap = np.array([[2, 2, 3, 1], [2, 3, 1, 1], [2, 2, 3, 4]], np.uint8)[..., None]
  np.testing.assert_array_equal(
    ds._pet_mask(trimap, 0), [[0, 0, -1, 1], [0, -1, 1, 1], [0, 0, -1, -1]]
  )
  example = {"image": np.zeros((3, 4, 3), np.uint8), "segmentation_mask": trimap}
  example.update(label=12, species=1)
  source = ds.RealSource("oxford_iiit_pet", [example], canvas=8, max_objects=1, labels="species")
  ex = source[0]
  _check_schema(ex, 8, 1, 2)
  mask = ex["segmentation_mask"]
  assert mask.shape == (8, 8) and mask.dtype == np.int32
  assert (mask[6:] == -1).all()  # letterbox padding rows: not image, ignored
  assert set(np.unique(mask[:6])) == {-1, 0, 2}  # dog = species 1 -> label 2
  assert ex["classes"][0] == 1 and ex["num_objects"] == 1
  # Box tight around pet + border: columns 1..3 of 4 (x 0.25..1), rows 0..2 of 3.
  np.testing.assert_allclose(ex["boxes"][0], [0.0, 0.25, 6 / 8, 1.0])
  assert source.class_names == ["cat", "dog"]


def test_voc_and_pet_from_tfds_mock(isolated):
  with tfds.testing.mock_data(num_examples=10, policy=tfds.testing.MockPolicy.USE_CODE):
    voc = registry.get_source("voc", "train", canvas=48, max_objects=5, download=False)
    assert len(voc) == 10 and voc.class_names[0] == "aeroplane"
    for i in range(3):
      _check_schema(voc[i], 48, 5, 20)
    # Fixed shapes: the grain eval pipeline batches them.
    batch = next(pipeline.eval_iterator(voc, global_batch_size=4))
    assert batch["boxes"].shape == (4, 5, 4) and batch["image"].shape == (4, 48, 48, 3)
    train = registry.get_source("oxford_iiit_pet", "train", canvas=32, download=False)
    val = registry.get_source("oxford_iiit_pet", "validation", canvas=32, download=False)
    test = registry.get_source("oxford_iiit_pet", "test", canvas=32, download=False)
    assert (len(train), len(val), len(test)) == (9, 1, 10)
    assert set(train._indices) | set(val._indices) == set(range(10))
    for i in range(3):
      ex = train[i]
      _check_schema(ex, 32, 1, 1)
      assert set(np.unique(ex["segmentation_mask"])) <= {-1, 0, 1}
  with pytest.raises(ValueError, match="labels='breeds'"):
    registry.get_source("oxford_iiit_pet", "train", labels="breeds")
  with pytest.raises(registry.DataNotFoundError, match="oxford_iiit_pet.*tfds build"):
    registry.get_source("oxford_iiit_pet", "test", download=False)


@pytest.mark.slow
def test_segmentation_experiment_on_pet_mock(isolated):
  """The U-Net experiment's tiny mode on oxford_iiit_pet (mocked): same code path."""
  from research.train import loop

  config = config_lib.load("vision/scenes_segmentation:unet,data=oxford_iiit_pet,smoke=True")
  workdir = isolated / "run"
  with tfds.testing.mock_data(num_examples=40, policy=tfds.testing.MockPolicy.USE_CODE):
    summary = loop.run(config, str(workdir))
  assert summary["step"] == 2 and np.isfinite(summary["test/miou"])
  baselines = json.loads((workdir / "baselines.json").read_text())
  assert 0 <= baselines["all_background"]["test/pixel_accuracy"] <= 1
