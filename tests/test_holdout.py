"""The validation split carved from a training split: stratified, seeded, disjoint."""

import numpy as np
import pytest

from research.core import config as config_lib
from research.data import build, holdout
from research.data.core import ArraySource


def test_carve_is_stratified_disjoint_complete_and_seeded():
  labels = np.repeat(np.arange(4), [100, 50, 30, 20])
  train, val = holdout.carve_indices(labels, len(labels), 0.1, seed=3)
  assert len(val) == 20 and len(train) == 180
  assert not set(train) & set(val) and sorted(np.concatenate([train, val])) == list(range(200))
  # Each class keeps its share: 10 / 5 / 3 / 2 of the 20 held out.
  assert np.bincount(labels[val]).tolist() == [10, 5, 3, 2]
  again, _ = holdout.carve_indices(labels, len(labels), 0.1, seed=3)
  other, _ = holdout.carve_indices(labels, len(labels), 0.1, seed=4)
  assert np.array_equal(train, again) and not np.array_equal(train, other)


def test_too_few_examples_of_a_class_falls_back_to_a_plain_shuffle():
  labels = np.array([0] * 9 + [1])  # class 1 cannot be in both parts
  train, val = holdout.carve_indices(labels, 10, 0.2, seed=0)
  assert len(val) == 2 and len(train) == 8
  with pytest.raises(ValueError, match="both need at least one"):
    holdout.carve_indices(None, 1, 0.1, seed=0)  # nothing left to train on
  with pytest.raises(ValueError, match="validation_fraction"):
    holdout.carve_indices(None, 10, 1.0, seed=0)


def test_labels_are_read_without_the_inputs():
  source = ArraySource({"image": np.zeros((6, 2), np.uint8), "label": np.arange(6) % 2})
  assert holdout.labels_of(source).tolist() == [0, 1, 0, 1, 0, 1]
  assert holdout.labels_of(source, "missing") is None


def test_data_builder_trains_and_validates_on_the_two_parts_of_train():
  config = config_lib.load("vision/digits:cnn")  # validation_fraction 0.1
  data = build.DataBuilder(config)
  train, val, test = data.train_source(), data.raw("validation"), data.raw("test")
  assert (len(train), len(val), len(test)) == (1437 - 144, 144, 360)
  full = data._registry_source("train")
  images = lambda s: {s[i]["image"].tobytes() for i in range(len(s))}
  assert not set(data._carve().train_indices) & set(data._carve().val_indices)
  # Stratified: every digit is in the validation part, about 14 of each.
  counts = np.bincount([int(val[i]["label"]) for i in range(len(val))], minlength=10)
  assert counts.min() >= 13 and counts.max() <= 16
  assert val.class_names == full.class_names
  assert len(images(val) | images(train)) <= len(images(full))
  # Same split from a second builder (tools.evaluate, a resumed run).
  again = build.DataBuilder(config)
  assert np.array_equal(again._carve().val_indices, data._carve().val_indices)
