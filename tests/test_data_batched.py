"""Batch-level preprocessing and reading: `ops.apply_batch`, batched ops, `get_batch`.

Deterministic batched ops must equal the per-example op exactly; random ones
must draw from the same distribution (uniform crop offsets, flip rate p) and
be reproducible from the seed. Sources' `get_batch` must equal stacking
`source[i]`.
"""

import numpy as np
import pytest

from research.data import ops, pipeline
from research.data.core import ArraySource, ConcatSource, IndexedSource
from research.data.text.windows import LMWindows


def _images(b=8, h=6, w=5, c=2, dtype=np.uint8):
  return (np.arange(b * h * w * c) % 251).astype(dtype).reshape(b, h, w, c)


def _batch(b=8, **kwargs):
  return {"image": _images(b, **kwargs), "label": np.arange(b, dtype=np.int32)}


def _per_example(ops_list, batch, rng=None):
  """The reference: `ops.apply` on each example, then stacked."""
  b = len(next(iter(batch.values())))
  return ops.stack(
    [ops.apply(ops_list, {k: v[i] for k, v in batch.items()}, rng) for i in range(b)]
  )


def _assert_batches_equal(a, b):
  assert a.keys() == b.keys()
  for k in a:
    assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
    np.testing.assert_array_equal(a[k], b[k])


class _Plain:
  """A source without `get_batch`: the pipeline must read it example by example."""

  def __init__(self, source):
    self._source, self.features = source, source.features

  def __len__(self):
    return len(self._source)

  def __getitem__(self, i):
    return self._source[i]


# --- which ops are batched -----------------------------------------------------


def test_batched_ops_are_the_vectorisable_ones():
  specs = {
    "keep": "keep('a')",
    "rename": "rename(a='b')",
    "cast": "cast('a', 'int8')",
    "value_range": "value_range(0, 1)",
    "standardize": "standardize(0, 1)",
    "random_crop": "random_crop(2)",
    "center_crop": "center_crop(2)",
    "flip_lr": "flip_lr",
    "random_rotate_scale": "random_rotate_scale()",
    "color_jitter": "color_jitter(0.1)",
    "random_erasing": "random_erasing",
    "mixup": "mixup",
    "cutmix": "cutmix",
    "truncate_pad": "truncate_pad(4)",
    "drop": "drop('a')",
  }
  # tokenize/mlm_mask/shift_right need a tokenizer, the negative samplers a run's interactions.
  assert set(specs) == set(ops.OPS) - {
    "tokenize",
    "mlm_mask",
    "shift_right",
    "sample_negatives",
    "sequence_negatives",
  }
  batched = {name for name, spec in specs.items() if ops.parse(spec)[0].batched}
  assert batched == {
    "keep",
    "rename",
    "cast",
    "value_range",
    "standardize",
    "random_crop",
    "center_crop",
    "flip_lr",
    "color_jitter",
    "random_erasing",
    "mixup",
    "cutmix",
    "drop",
  }


# --- deterministic ops: identical to per-example ---------------------------------


@pytest.mark.parametrize(
  "spec",
  [
    "value_range(0, 1)",
    "value_range(-1, 1, in_max=200)|standardize(0.2860, 0.3530)",
    "standardize((1, 2), (2, 4))",
    "center_crop(4)|value_range(0, 1)",
    "center_crop((3, 2))",
    "cast('label', 'float32')|rename(y='label')|keep('image', 'y')",
    "drop('label')",
  ],
)
def test_deterministic_batched_equals_per_example(spec):
  parsed = ops.parse(spec)
  batch = _batch()
  _assert_batches_equal(ops.apply_batch(parsed, batch, None), _per_example(parsed, batch))


def test_batched_ops_do_not_mutate_and_check_shapes():
  batch = _batch()
  before = {k: v.copy() for k, v in batch.items()}
  ops.apply_batch(
    ops.parse(
      "random_crop(4, pad=1)|flip_lr(1.0)|value_range(0, 1)|"
      "center_crop(2)|standardize(0.5, 0.2)|cast('label', 'int64')"
    ),
    batch,
    np.random.default_rng(0),
  )
  _assert_batches_equal(batch, before)
  with pytest.raises(ValueError, match="per-channel"):
    ops.apply_batch(ops.parse("standardize((1, 2, 3), 1)"), batch, None)
  with pytest.raises(ValueError, match="larger than padded image"):
    ops.apply_batch(ops.parse("random_crop(8)"), batch, np.random.default_rng(0))
  with pytest.raises(ValueError, match=r"batch of images \[b, H, W, C\]"):
    ops.apply_batch(ops.parse("center_crop(2)"), {"image": _images()[0]}, None)
  with pytest.raises(ValueError, match="needs a np.random.Generator"):
    ops.parse("flip_lr")[0].apply_batch(batch, None)


# --- random ops: same distribution, reproducible ---------------------------------


def test_random_crop_is_a_window_with_uniform_offsets():
  b, pad, (h, w) = 6000, 2, (4, 3)
  images = _images(b, h=6, w=5)
  out = ops.apply_batch(
    ops.parse(f"random_crop({(h, w)}, pad={pad})"), {"image": images}, np.random.default_rng(3)
  )["image"]
  assert out.shape == (b, h, w, 2) and out.dtype == np.uint8
  # Recover each example's offsets by matching against every window of its padded image.
  padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  windows = np.lib.stride_tricks.sliding_window_view(padded, (h, w), axis=(1, 2))
  windows = np.moveaxis(windows, -3, -1)  # [b, tops, lefts, h, w, C]
  match = (windows == out[:, None, None]).all(axis=(3, 4, 5))  # [b, tops, lefts]
  assert match.any(axis=(1, 2)).all()  # every output is a window of its own image
  first = match.reshape(b, -1).argmax(1)
  tops, lefts = np.unravel_index(first, match.shape[1:])
  # Uniform over the 7 x 6 offsets: each count within 5 sigma of b / n.
  for values, n in ((tops, 6 + 2 * pad - h + 1), (lefts, 5 + 2 * pad - w + 1)):
    counts = np.bincount(values, minlength=n)
    assert len(counts) == n
    sigma = np.sqrt(b * (1 / n) * (1 - 1 / n))
    assert np.all(np.abs(counts - b / n) < 5 * sigma), counts


@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_flip_lr_flips_each_example_with_probability_p(p):
  b = 4000
  images = _images(b, h=3, w=4, c=1)
  out = ops.apply_batch(ops.parse(f"flip_lr(p={p})"), {"image": images}, np.random.default_rng(1))[
    "image"
  ]
  same = (out == images).all(axis=(1, 2, 3))
  flipped = (out == images[:, :, ::-1]).all(axis=(1, 2, 3))
  assert (same | flipped).all()
  rate = flipped.mean()
  assert abs(rate - p) <= 5 * np.sqrt(p * (1 - p) / b) + 1e-12, rate


@pytest.mark.parametrize(
  "spec", ["random_crop(4, pad=2)", "flip_lr", "value_range(0, 1)|random_rotate_scale(20)|flip_lr"]
)
def test_random_batches_reproducible_from_the_seed(spec):
  parsed = ops.parse(spec)
  batch = _batch(16, h=8, w=8)
  run = lambda seed: ops.apply_batch(parsed, batch, np.random.default_rng(seed))
  _assert_batches_equal(run(7), run(7))
  assert not np.array_equal(run(7)["image"], run(8)["image"])
  # Examples in one batch get different draws (not one draw broadcast to all).
  same_image = {"image": np.repeat(_images(1, h=8, w=8), 16, axis=0)}
  out = ops.apply_batch(parsed, same_image, np.random.default_rng(0))["image"]
  assert len({x.tobytes() for x in out}) > 1


# --- fallback to per-example ops ------------------------------------------------


def test_unbatched_ops_run_per_example_inside_the_batch():
  seen = []

  def plain(example, rng):  # a plain callable: gets an rng, as it always did
    seen.append(rng)
    return dict(example, extra=np.float32(rng.random()))

  parsed = (
    ops.parse("value_range(0, 1)|random_rotate_scale(30)")
    + [plain]
    + ops.parse("flip_lr|standardize(0.5, 0.25)")
  )
  out = ops.apply_batch(parsed, _batch(5, h=7, w=7), np.random.default_rng(0))
  assert out["image"].shape == (5, 7, 7, 2) and out["image"].dtype == np.float32
  assert out["extra"].shape == (5,) and len(set(out["extra"].tolist())) == 5
  assert len(seen) == 5 and all(isinstance(r, np.random.Generator) for r in seen)
  again = ops.apply_batch(parsed, _batch(5, h=7, w=7), np.random.default_rng(0))
  _assert_batches_equal(out, again)


def test_ragged_examples_are_stacked_only_when_an_op_needs_arrays():
  # Raw ragged values (like text before tokenize) stay per example until dropped.
  examples = [
    {"text": np.str_("a" * (i + 1)), "n": np.int32(i), "tokens": np.arange(i + 1, dtype=np.int32)}
    for i in range(4)
  ]
  pad = lambda ex, rng: dict(ex, tokens=np.pad(ex["tokens"], (0, 6 - len(ex["tokens"]))))
  out = ops.apply_batch([pad] + ops.parse("drop('text')|cast('n', 'int64')"), examples, None)
  assert set(out) == {"n", "tokens"} and out["tokens"].shape == (4, 6)
  assert out["n"].dtype == np.int64
  with pytest.raises(ValueError, match="Cannot batch key 'tokens'.*different shapes"):
    ops.apply_batch(ops.parse("drop('text')"), examples, None)


def test_example_rng_makes_random_ops_per_example():
  parsed = ops.parse("value_range(0, 1)|random_crop(4, pad=1)|flip_lr")
  batch = _batch(6)
  rng_of = lambda i: np.random.default_rng([9, i])
  got = ops.apply_batch(parsed, batch, None, example_rng=rng_of)
  want = ops.stack(
    [ops.apply(parsed, {k: v[i] for k, v in batch.items()}, rng_of(i)) for i in range(6)]
  )
  _assert_batches_equal(got, want)


# --- sources' get_batch ---------------------------------------------------------


def _stacked(source, indices):
  return ops.stack([source[int(i)] for i in indices])


def test_array_indexed_and_concat_get_batch_equal_stacking():
  a = ArraySource({"x": _images(7), "y": np.arange(7, dtype=np.int32)}, name="a")
  b = ArraySource({"x": _images(5) + 1, "y": np.arange(5, dtype=np.int32) + 100}, name="b")
  idx = np.array([3, 0, 6, 6, -1])
  _assert_batches_equal(a.get_batch(idx), _stacked(a, idx))
  concat = ConcatSource([a, b])
  idx = np.array([11, 0, 7, 6, 8, 2])
  _assert_batches_equal(concat.get_batch(idx), _stacked(concat, idx))
  sub = IndexedSource(concat, [10, 1, 7])
  _assert_batches_equal(sub.get_batch(np.array([2, 0, 0])), _stacked(sub, [2, 0, 0]))
  with pytest.raises(IndexError, match="out of range"):
    a.get_batch(np.array([0, 7]))
  with pytest.raises(IndexError, match="out of range"):
    concat.get_batch(np.array([12]))
  # Wrapping a source without get_batch: none either, so readers fall back.
  assert not hasattr(ConcatSource([a, _Plain(b)]), "get_batch")
  assert not hasattr(IndexedSource(_Plain(a), [0]), "get_batch")


@pytest.mark.parametrize(
  "mode, n", [("random", 40), ("contiguous", 40), ("contiguous", 41), ("contiguous", 33)]
)
def test_lm_windows_get_batch_equals_stacking(mode, n):
  windows = LMWindows(np.arange(n) * 3 + 1, block_size=8, mode=mode, pad_id=5)
  idx = np.arange(len(windows))[::-1]
  idx = np.concatenate([idx, [0, -1]])
  _assert_batches_equal(windows.get_batch(idx), _stacked(windows, idx))
  with pytest.raises(IndexError, match="out of range"):
    windows.get_batch(np.array([len(windows)]))


# --- the pipeline reads batches ------------------------------------------------


def _source(n=20):
  return ArraySource({"id": np.arange(n, dtype=np.int32), "image": _images(n, h=6, w=6, c=1)})


def test_train_batches_do_not_depend_on_how_the_source_is_read():
  augment = ops.parse("random_crop(4, pad=1)|flip_lr|value_range(0, 1)")
  make = lambda src: pipeline.train_iterator(
    src, global_batch_size=4, ops=augment, seed=2, shard=(0, 1), num_threads=0
  )
  fast, slow = make(_source()), make(_Plain(_source()))
  for _ in range(7):
    _assert_batches_equal(next(fast), next(slow))


def test_eval_batched_ops_and_seeded_random_ops_match_per_example():
  src = _source(10)
  deterministic = ops.parse("center_crop(4)|value_range(0, 1)|standardize(0.5, 0.2)")
  for b in pipeline.eval_iterator(src, global_batch_size=4, ops=deterministic, shard=(0, 1)):
    want = _per_example(deterministic, src.get_batch(b["id"]))
    _assert_batches_equal({k: v for k, v in b.items() if k != "mask"}, want)
  # A seeded eval draws from (seed, example index), whatever the batching/sharding.
  random_ops = ops.parse("random_crop(4, pad=1)|flip_lr")
  for gbs, count in ((4, 1), (6, 2)):
    for index in range(count):
      for b in pipeline.eval_iterator(
        src, global_batch_size=gbs, ops=random_ops, seed=11, shard=(index, count)
      ):
        for t, i in enumerate(b["id"]):
          want = ops.apply(random_ops, src[int(i)], np.random.default_rng([11, int(i)]))
          np.testing.assert_array_equal(b["image"][t], want["image"])


def test_train_epochs_are_shard_permutations_and_resume_exactly():
  n, gbs = 21, 4
  for index in range(2):
    it = pipeline.train_iterator(
      _source(n), global_batch_size=gbs, seed=0, shard=(index, 2), num_epochs=3
    )
    ids = [b["id"].tolist() for b in it]
    assert len(ids) == 3 * 5  # 10 examples per shard, 5 batches of 2 per epoch
    for e in range(3):
      epoch = [i for batch in ids[5 * e : 5 * e + 5] for i in batch]
      assert sorted(epoch) == list(range(index, 20, 2))
  # Resuming in the middle of an epoch, with prefetch threads, is exact.
  augment = ops.parse("random_crop(4, pad=2)|flip_lr")
  make = lambda: pipeline.train_iterator(
    _source(n), global_batch_size=gbs, ops=augment, seed=4, shard=(0, 1), num_threads=2, prefetch=4
  )
  it = make()
  for _ in range(7):
    next(it)
  state = it.get_state()
  want = [next(it) for _ in range(4)]
  resumed = make()
  resumed.set_state(state)
  for w in want:
    _assert_batches_equal(w, next(resumed))
