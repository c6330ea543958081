"""Tests for research.data.ops: parsing, each op's behaviour, determinism, no mutation."""

import numpy as np
import pytest

from research.data import ops


def _example(h=6, w=5, c=2, dtype=np.uint8):
  image = (np.arange(h * w * c) % 251).astype(dtype).reshape(h, w, c)
  return {"image": image, "label": np.int32(3)}


def _rng(seed=0):
  return np.random.default_rng(seed)


# --- parsing -----------------------------------------------------------------


def test_parse_empty_and_none():
  assert ops.parse("") == [] and ops.parse(None) == [] and ops.parse("   ") == []


def test_parse_pipeline_string():
  parsed = ops.parse("value_range(0, 1)|random_crop(4, pad=1)|flip_lr")
  assert [op.spec.split("(")[0] for op in parsed] == ["value_range", "random_crop", "flip_lr"]
  out = ops.apply(parsed, _example(), _rng())
  assert out["image"].shape == (4, 4, 2) and out["image"].dtype == np.float32


def test_parse_string_argument_may_contain_bar():
  (op,) = ops.parse("rename(new='a|b')")
  assert set(op({"a|b": np.int32(1)}, None)) == {"new"}


@pytest.mark.parametrize(
  "spec, words",
  [
    ("nope", ["'nope'", "valid ops", "flip_lr"]),
    ("flip_lr|bogus(1)", ["'bogus'", "valid ops"]),
    ("random_crop()", ["random_crop", "size"]),
    ("value_range(0, 1, wrong=2)", ["value_range", "wrong"]),
    ("flip_lr(1.5)", ["flip_lr", "probability"]),
    ("standardize(0, -1)", ["standardize", "positive"]),
    ("cast('image', 'notadtype')", ["cast", "dtype"]),
    ("flip_lr(__import__('os'))", ["not a python literal"]),
    ("random_crop(4", ["not valid syntax"]),
    ("a.b(1)", ["expected `name` or `name(args)`"]),
    ("keep()", ["keep"]),
  ],
)
def test_check_errors_name_the_problem(spec, words):
  with pytest.raises(ValueError) as e:
    ops.check(spec)
  for word in words:
    assert word in str(e.value)


def test_ops_table_is_explicit_and_complete():
  assert set(ops.OPS) == {
    "keep",
    "rename",
    "cast",
    "value_range",
    "standardize",
    "random_crop",
    "center_crop",
    "flip_lr",
    "random_rotate_scale",
    "color_jitter",
    "random_erasing",
    "mixup",
    "cutmix",
    "tokenize",
    "truncate_pad",
    "mlm_mask",
    "drop",
    "shift_right",
    "sample_negatives",
    "sequence_negatives",
  }


# --- generic ops -------------------------------------------------------------


def test_keep_rename_cast():
  ex = {"a": np.ones(2), "b": np.zeros(3), "c": np.int64(4)}
  assert set(ops.parse("keep('a', 'c')")[0](ex, None)) == {"a", "c"}
  renamed = ops.parse("rename(x='a', d='c')")[0](ex, None)
  assert set(renamed) == {"x", "b", "d"} and renamed["d"] == 4
  swapped = ops.parse("rename(a='b', b='a')")[0](ex, None)
  assert swapped["a"].shape == (3,) and swapped["b"].shape == (2,)
  assert ops.parse("cast('c', 'float32')")[0](ex, None)["c"].dtype == np.float32
  with pytest.raises(KeyError, match="no key 'zz'"):
    ops.parse("keep('zz')")[0](ex, None)
  with pytest.raises(ValueError, match="already exists"):
    ops.parse("rename(b='a')")[0](ex, None)


# --- image ops ---------------------------------------------------------------


def test_value_range():
  ex = {"image": np.array([0, 51, 255], np.uint8).reshape(1, 3, 1)}
  out = ops.parse("value_range(-1, 1)")[0](ex, None)["image"]
  assert out.dtype == np.float32
  np.testing.assert_allclose(out.ravel(), [-1, -0.6, 1], atol=1e-6)
  out = ops.parse("value_range(0, 1, in_max=51, key='image')")[0](ex, None)["image"]
  np.testing.assert_allclose(out.ravel(), [0, 1, 5], atol=1e-6)


def test_standardize_per_channel_and_scalar():
  ex = _example(c=2)
  x = ex["image"].astype(np.float32)
  out = ops.parse("standardize((1, 2), (2, 4))")[0](ex, None)["image"]
  np.testing.assert_allclose(out, (x - [1, 2]) / [2, 4], rtol=1e-6)
  assert out.dtype == np.float32
  np.testing.assert_allclose(ops.parse("standardize(3, 0.5)")[0](ex, None)["image"], (x - 3) / 0.5)
  with pytest.raises(ValueError, match="per-channel"):
    ops.parse("standardize((1, 2, 3), 1)")[0](ex, None)


def test_random_crop_shapes_and_content():
  ex = _example(h=6, w=5, c=2)
  for seed in range(5):
    out = ops.parse("random_crop((4, 3), pad=2)")[0](ex, _rng(seed))["image"]
    assert out.shape == (4, 3, 2) and out.dtype == np.uint8
    # The crop is a window of the zero-padded image.
    padded = np.pad(ex["image"], ((2, 2), (2, 2), (0, 0)))
    assert any(
      np.array_equal(out, padded[i : i + 4, j : j + 3])
      for i in range(padded.shape[0] - 3)
      for j in range(padded.shape[1] - 2)
    )
  # Without padding a full-size crop is the image itself.
  same = ops.parse("random_crop((6, 5))")[0](ex, _rng())["image"]
  np.testing.assert_array_equal(same, ex["image"])
  with pytest.raises(ValueError, match="larger than padded image"):
    ops.parse("random_crop(8)")[0](ex, _rng())


def test_center_crop():
  ex = _example(h=6, w=5)
  out = ops.parse("center_crop(2)")[0](ex, None)["image"]
  np.testing.assert_array_equal(out, ex["image"][2:4, 1:3])


def test_flip_lr_is_a_flip():
  ex = _example()
  flipped = ops.parse("flip_lr(p=1.0)")[0](ex, _rng())["image"]
  np.testing.assert_array_equal(flipped, ex["image"][:, ::-1, :])
  kept = ops.parse("flip_lr(p=0)")[0](ex, _rng())["image"]
  np.testing.assert_array_equal(kept, ex["image"])
  # p=0.5 flips some and not others across seeds.
  outs = [ops.parse("flip_lr")[0](ex, _rng(s))["image"][0, 0, 0] for s in range(20)]
  assert len(set(outs)) == 2


def test_rotate_identity_and_quarter_turn():
  ex = _example(h=7, w=7, c=3)
  same = ops.parse("random_rotate_scale(0, (1, 1))")[0](ex, _rng())["image"]
  assert same.dtype == np.uint8
  np.testing.assert_array_equal(same, ex["image"])
  # max_degrees=90 samples an angle; a rotation of the centre pixel keeps it.
  out = ops.parse("random_rotate_scale(90, (1, 1))")[0](ex, _rng(1))["image"]
  assert out.shape == (7, 7, 3)
  np.testing.assert_array_equal(out[3, 3], ex["image"][3, 3])


def test_rotate_scale_shrinks_towards_centre():
  image = np.zeros((9, 9, 1), np.float32)
  image[0, :] = 1.0  # top row lit
  out = ops.parse("random_rotate_scale(0, (0.5, 0.5))")[0]({"image": image}, _rng())["image"]
  assert out.dtype == np.float32
  # Scaled by 0.5 about the centre (4, 4): row 0 lands on row 2.
  assert out[2, 4, 0] == pytest.approx(1.0) and out[0].sum() == 0


@pytest.mark.parametrize("spec", ["random_crop(4, pad=2)", "flip_lr", "random_rotate_scale(20)"])
def test_random_ops_same_seed_same_output_and_need_rng(spec):
  (op,) = ops.parse(spec)
  ex = _example(h=8, w=8)
  a, b = op(ex, _rng(7))["image"], op(ex, _rng(7))["image"]
  np.testing.assert_array_equal(a, b)
  outs = {op(ex, _rng(s))["image"].tobytes() for s in range(10)}
  assert len(outs) > 1
  assert ops.is_random(op)
  with pytest.raises(ValueError, match="needs a np.random.Generator"):
    op(ex, None)


def test_ops_never_mutate_input():
  ex = _example(h=8, w=8)
  before = {k: np.array(v, copy=True) for k, v in ex.items()}
  all_ops = ops.parse(
    "random_rotate_scale(30)|random_crop(6, pad=1)|flip_lr(1.0)|"
    "center_crop(4)|value_range(0, 1)|standardize(0.5, 0.2)|"
    "cast('label', 'int64')|rename(y='label')|keep('image', 'y')"
  )
  out = ops.apply(all_ops, ex, _rng())
  assert set(out) == {"image", "y"} and set(ex) == {"image", "label"}
  for k in ex:
    np.testing.assert_array_equal(ex[k], before[k])
