"""Tests for research.data.pipeline: shuffling, sharding, resume, eval padding."""

import json

import numpy as np
import pytest

from research.data import ops, pipeline
from research.data.core import ArraySource


def _source(n):
  """`n` examples whose 'id' says which one it is, plus a small image."""
  ids = np.arange(n, dtype=np.int32)
  images = (np.arange(n * 6 * 6) % 256).astype(np.uint8).reshape(n, 6, 6, 1)
  return ArraySource({"id": ids, "image": images}, name=f"ids{n}")


def _ids(batches):
  return [b["id"].tolist() for b in batches]


def _take(it, k):
  return [next(it) for _ in range(k)]


def test_batches_shape_and_dtype():
  it = pipeline.train_iterator(_source(16), global_batch_size=4, seed=0, shard=(0, 1))
  b = next(it)
  assert set(b) == {"id", "image"}
  assert b["image"].shape == (4, 6, 6, 1) and b["image"].dtype == np.uint8
  assert b["id"].shape == (4,) and b["id"].dtype == np.int32


def test_shuffle_is_seeded_and_differs_per_epoch():
  n, bs = 12, 4
  run = lambda seed: _ids(
    _take(pipeline.train_iterator(_source(n), global_batch_size=bs, seed=seed, shard=(0, 1)), 9)
  )
  a, b, c = run(0), run(0), run(1)
  assert a == b and a != c
  epochs = [[x for batch in a[i : i + 3] for x in batch] for i in (0, 3, 6)]
  for epoch in epochs:  # each epoch is a permutation of all examples
    assert sorted(epoch) == list(range(n))
  assert epochs[0] != epochs[1] and epochs[1] != epochs[2] and epochs[0] != list(range(n))


def test_epochs_are_whole_batches_and_finite_num_epochs_stops():
  # 23 examples, 2 processes, global batch 4: 11 per shard, 5 steps per epoch.
  n, gbs = 23, 4
  assert pipeline.steps_per_epoch(n, gbs) == 5
  for index in range(2):
    batches = list(
      pipeline.train_iterator(
        _source(n), global_batch_size=gbs, seed=3, num_epochs=2, shard=(index, 2)
      )
    )
    assert len(batches) == 2 * pipeline.steps_per_epoch(n, gbs)
    ids = _ids(batches)
    first = [i for batch in ids[:5] for i in batch]
    second = [i for batch in ids[5:] for i in batch]
    assert len(set(first)) == 10 and len(set(second)) == 10  # no repeats within an epoch


def test_sharding_disjoint_and_covering():
  n, gbs = 16, 4
  seen = []
  for index in range(2):
    it = pipeline.train_iterator(
      _source(n), global_batch_size=gbs, seed=0, num_epochs=1, shard=(index, 2)
    )
    batches = list(it)
    assert all(b["id"].shape == (2,) for b in batches)
    seen.append({i for batch in _ids(batches) for i in batch})
  assert not seen[0] & seen[1]
  assert seen[0] | seen[1] == set(range(n))


def test_resume_is_exact_with_augmentation():
  augment = ops.parse("random_crop(4, pad=1)|flip_lr|random_rotate_scale(15)|value_range(0, 1)")
  make = lambda: pipeline.train_iterator(
    _source(10), global_batch_size=4, ops=augment, seed=5, shard=(0, 1), num_threads=2, prefetch=3
  )
  it = make()
  _take(it, 5)  # crosses an epoch boundary (2 batches per epoch)
  state = json.loads(json.dumps(it.get_state()))  # must survive JSON
  expected = _take(it, 3)
  resumed = make()
  resumed.set_state(state)
  for want, got in zip(expected, _take(resumed, 3)):
    assert want.keys() == got.keys()
    for key in want:
      np.testing.assert_array_equal(want[key], got[key])
  assert expected[0]["image"].shape == (4, 4, 4, 1) and expected[0]["image"].dtype == np.float32


def test_augmentation_reproducible_across_iterators_and_new_each_epoch():
  augment = ops.parse("random_crop(6, pad=2)")
  make = lambda: pipeline.train_iterator(
    _source(4), global_batch_size=4, ops=augment, seed=1, shard=(0, 1)
  )
  a, b = _take(make(), 3), _take(make(), 3)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x["image"], y["image"])
  # Same example in different epochs gets a different crop (very likely, 25 offsets).
  by_id = [dict(zip(batch["id"], batch["image"])) for batch in a]
  assert any(not np.array_equal(by_id[0][i], by_id[1][i]) for i in range(4))


def test_train_validation_errors():
  with pytest.raises(ValueError, match="not divisible by the process count 2"):
    pipeline.train_iterator(_source(10), global_batch_size=3, seed=0, shard=(0, 2))
  with pytest.raises(ValueError, match="larger than this process's shard of 5"):
    pipeline.train_iterator(_source(10), global_batch_size=12, seed=0, shard=(1, 2))
  with pytest.raises(ValueError, match="shard must be"):
    pipeline.train_iterator(_source(10), global_batch_size=2, seed=0, shard=(2, 2))
  with pytest.raises(ValueError, match="global_batch_size must be a positive int"):
    pipeline.train_iterator(_source(10), global_batch_size=0, seed=0, shard=(0, 1))


def test_default_shard_is_this_jax_process():
  it = pipeline.train_iterator(_source(8), global_batch_size=4, seed=0)
  assert next(it)["id"].shape == (4,)  # one CPU process: the whole batch


@pytest.mark.parametrize(
  "n, gbs, count", [(23, 4, 1), (23, 4, 2), (7, 6, 2), (5, 8, 2), (12, 4, 2)]
)
def test_eval_counts_each_example_once(n, gbs, count):
  counts = np.zeros(n, int)
  num_batches = []
  for index in range(count):
    batches = list(pipeline.eval_iterator(_source(n), global_batch_size=gbs, shard=(index, count)))
    num_batches.append(len(batches))
    for b in batches:
      assert b["mask"].dtype == np.bool_ and b["mask"].shape == (gbs // count,)
      assert b["id"].shape == (gbs // count,)
      np.add.at(counts, b["id"][b["mask"]], 1)
  assert num_batches == [pipeline.num_eval_batches(n, gbs)] * count
  assert counts.tolist() == [1] * n


def test_eval_padding_is_masked_copies_and_ops_apply():
  batches = list(
    pipeline.eval_iterator(
      _source(5),
      global_batch_size=4,
      ops=ops.parse("center_crop(4)|value_range(0, 1)"),
      shard=(0, 1),
    )
  )
  assert len(batches) == 2
  last = batches[1]
  assert last["mask"].tolist() == [True, False, False, False]
  assert last["image"].shape == (4, 4, 4, 1) and last["image"].dtype == np.float32
  assert last["id"][0] == 4 and set(last["id"][1:].tolist()) <= set(range(5))


def test_eval_rejects_random_ops():
  with pytest.raises(ValueError, match="deterministic.*flip_lr"):
    pipeline.eval_iterator(_source(5), global_batch_size=4, ops=ops.parse("flip_lr"), shard=(0, 1))


def test_batch_counts():
  assert pipeline.num_eval_batches(10, 4) == 3 and pipeline.num_eval_batches(8, 4) == 2
  assert pipeline.steps_per_epoch(10, 4) == 2
