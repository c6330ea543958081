"""Tests for research.data.ops.text: tokenize, truncate_pad, mlm_mask, drop and the tokenizer context."""

import random

import numpy as np
import pytest

from research.data import ops, pipeline
from research.data.core import ArraySource
from research.data.text import tokenizers

WORDS = [
  "the",
  "cat",
  "sat",
  "on",
  "a",
  "mat",
  "while",
  "dogs",
  "ran",
  "past",
  "big",
  "red",
  "houses",
  "and",
  "small",
  "green",
  "trees",
  "quick",
  "brown",
  "foxes",
  "jump",
  "over",
  "lazy",
  "dogs",
  "every",
  "day",
  "whisper",
  "thunder",
  "market",
  "window",
  "garden",
  "yellow",
  "silver",
  "morning",
  "evening",
  "river",
  "mountain",
  "valley",
  "forest",
  "winter",
  "summer",
  "kitchen",
  "table",
  "chair",
  "pencil",
  "letter",
  "number",
  "question",
  "answer",
  "people",
  "children",
  "teacher",
  "student",
  "village",
]


@pytest.fixture(scope="module")
def spm():
  rng = random.Random(0)
  lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))) for _ in range(400)]
  return tokenizers.SentencePieceTokenizer.train(lines, vocab_size=80)


@pytest.fixture(scope="module")
def char():
  return tokenizers.CharTokenizer.train(["hello world"])


# --- context plumbing ------------------------------------------------------------


def test_text_ops_are_registered():
  assert {"tokenize", "truncate_pad", "mlm_mask", "drop"} <= set(ops.OPS)


def test_check_validates_without_tokenizer():
  ops.check("tokenize(add_cls=True, add_eos=True)|truncate_pad(128)|mlm_mask(0.15)|drop('text')")
  for spec, words in [
    ("mlm_mask(1.5)", ["mlm_mask", "(0, 1]"]),
    ("truncate_pad(0)", ["truncate_pad", "positive int"]),
    ("tokenize(add_cls=1)", ["tokenize", "True or False"]),
    (
      "tokenize(tokenizer='x')",
      ["unexpected keyword argument 'tokenizer'", "Signature: tokenize(*, key='text'"],
    ),
    ("drop()", ["drop", "key names"]),
    ("tokenise", ["Unknown op 'tokenise'", "tokenize"]),
  ]:
    with pytest.raises(ValueError) as e:
      ops.check(spec)
    for word in words:
      assert word in str(e.value)


@pytest.mark.parametrize("context", [None, {}, {"tokenizer": None}])
def test_parse_without_tokenizer_says_how_to_fix(context):
  with pytest.raises(
    ValueError,
    match=r"Op 'mlm_mask' in spec .* needs the run's tokenizer.*"
    r"context=\{'tokenizer': \.\.\.\}",
  ):
    ops.parse("truncate_pad(8)|mlm_mask", context=context)
  # Ops that need nothing parse as before, with or without a context.
  assert len(ops.parse("truncate_pad(8)|drop('x')", context=context)) == 2


def test_context_must_be_a_mapping(spm):
  with pytest.raises(ValueError, match="context must be a mapping"):
    ops.parse("tokenize", context=spm)


# --- tokenize / truncate_pad / drop ----------------------------------------------


def test_tokenize(spm, char):
  text = "the cat sat on a mat"
  (op,) = ops.parse("tokenize", context={"tokenizer": spm})
  out = op({"text": np.str_(text), "label": np.int32(1)}, None)
  assert out["tokens"].dtype == np.int32 and out["tokens"].tolist() == spm.encode(text)
  assert out["label"] == 1 and out["text"] == text
  (op,) = ops.parse(
    "tokenize(key='t', out='ids', add_cls=True, add_eos=True)", context={"tokenizer": spm}
  )
  ids = op({"t": text.encode()}, None)["ids"].tolist()  # TFDS-style bytes work too
  assert ids == [2] + spm.encode(text) + [3]
  (op,) = ops.parse("tokenize", context={"tokenizer": char})
  assert op({"text": np.str_("hello")}, None)["tokens"].tolist() == char.encode("hello")
  with pytest.raises(ValueError, match="'char' tokenizer has no cls_id"):
    ops.parse("tokenize(add_cls=True)", context={"tokenizer": char})
  with pytest.raises(ValueError, match="not in the 8-character vocabulary"):
    op({"text": np.str_("hellö")}, None)


def test_truncate_pad_and_mask():
  (op,) = ops.parse("truncate_pad(5, pad_id=9)")
  short = op({"tokens": np.array([1, 2, 3], np.int64)}, None)
  assert short["tokens"].tolist() == [1, 2, 3, 9, 9] and short["tokens"].dtype == np.int32
  assert short["tokens_mask"].tolist() == [True, True, True, False, False]
  assert short["tokens_mask"].dtype == np.bool_
  long = op({"tokens": np.arange(10)}, None)
  assert long["tokens"].tolist() == [0, 1, 2, 3, 4] and long["tokens_mask"].all()
  with pytest.raises(ValueError, match="1-D integer token ids"):
    op({"tokens": np.zeros((2, 2), np.int32)}, None)


def test_truncate_pad_keep_last_keeps_the_end_and_pads_at_the_end():
  (op,) = ops.parse("truncate_pad(4, keep='last')")
  assert op({"tokens": np.arange(10)}, None)["tokens"].tolist() == [6, 7, 8, 9]
  short = op({"tokens": np.array([5, 6])}, None)
  assert short["tokens"].tolist() == [5, 6, 0, 0]
  assert short["tokens_mask"].tolist() == [True, True, False, False]
  with pytest.raises(ValueError, match=r"keep must be 'first' or 'last'"):
    ops.parse("truncate_pad(4, keep='middle')")


def test_drop():
  (op,) = ops.parse("drop('text', 'stars')")
  assert set(op({"text": np.str_("x"), "stars": np.int32(3), "label": np.int32(1)}, None)) == {
    "label"
  }
  with pytest.raises(KeyError, match="no key 'stars'"):
    op({"text": np.str_("x")}, None)


# --- mlm_mask ----------------------------------------------------------------------


def test_mlm_mask_statistics(spm):
  """15% of maskable positions; 80% mask / 10% random / 10% unchanged; never pad or special."""
  pp = ops.parse("truncate_pad(128)|mlm_mask(0.15)", context={"tokenizer": spm})
  data_rng = np.random.default_rng(0)
  selected = maskable = as_mask = as_random = as_same = 0
  for i in range(1500):
    n = int(data_rng.integers(20, 160))  # some examples are cut, some padded
    tokens = data_rng.integers(5, spm.vocab_size, n)
    tokens[0], tokens[n // 2] = spm.cls_id, spm.unk_id  # specials inside the text
    tokens[-1] = spm.eos_id
    ex = ops.apply(pp, {"tokens": tokens}, np.random.default_rng(i))
    inputs, targets, weights = ex["inputs"], ex["targets"], ex["weights"]
    assert inputs.dtype == targets.dtype == np.int32 and weights.dtype == np.float32
    np.testing.assert_array_equal(targets, ex["tokens"])  # targets: the original ids
    special = np.isin(targets, list(spm.special_ids)) | ~ex["tokens_mask"]
    assert not weights[special].any()  # never a pad or special position
    np.testing.assert_array_equal(inputs[special], targets[special])
    np.testing.assert_array_equal(inputs[weights == 0], targets[weights == 0])
    sel = weights == 1
    n_cand = int((~special).sum())
    assert sel.sum() == max(1, round(0.15 * n_cand))
    selected += sel.sum()
    maskable += n_cand
    as_mask += (inputs[sel] == spm.mask_id).sum()
    changed = (inputs[sel] != targets[sel]) & (inputs[sel] != spm.mask_id)
    as_random += changed.sum()
    as_same += (inputs[sel] == targets[sel]).sum()
    # random replacements are never special ids
    assert not np.isin(inputs[sel][changed], list(spm.special_ids)).any()
  assert abs(selected / maskable - 0.15) < 0.002
  assert abs(as_mask / selected - 0.8) < 0.01
  # A random draw equals the original with probability 1/r (r non-special ids): that one
  # counts as unchanged.
  r = spm.vocab_size - len(spm.special_ids)
  assert abs(as_random / selected - 0.1 * (r - 1) / r) < 0.01
  assert abs(as_same / selected - (0.1 + 0.1 / r)) < 0.01


def test_mlm_mask_max_predictions_gathers_the_same_selection(spm):
  """max_predictions=P: the same draw as the dense form, its targets gathered into [P]."""
  dense = ops.parse("truncate_pad(64)|mlm_mask(0.15)", context={"tokenizer": spm})
  gathered = ops.parse(
    "truncate_pad(64)|mlm_mask(0.15, max_predictions=12)", context={"tokenizer": spm}
  )
  data_rng = np.random.default_rng(1)
  for i in range(50):
    tokens = data_rng.integers(5, spm.vocab_size, int(data_rng.integers(10, 90)))
    d = ops.apply(dense, {"tokens": tokens}, np.random.default_rng(i))
    g = ops.apply(gathered, {"tokens": tokens}, np.random.default_rng(i))
    assert g["positions"].shape == g["targets"].shape == g["weights"].shape == (12,)
    assert g["positions"].dtype == np.int32
    num = int(g["weights"].sum())
    real = g["positions"][:num]
    assert (np.diff(real) > 0).all() and not g["weights"][num:].any()
    np.testing.assert_array_equal(g["targets"][:num], d["tokens"][real])
    np.testing.assert_array_equal(g["targets"][num:], 0)
    if d["weights"].sum() <= 12:  # the cap did not bind: the identical selection and inputs
      np.testing.assert_array_equal(real, np.flatnonzero(d["weights"]))
      np.testing.assert_array_equal(g["inputs"], d["inputs"])
    else:
      assert num == 12
  with pytest.raises(ValueError, match="max_predictions must be a positive int"):
    ops.parse("mlm_mask(0.15, max_predictions=0)", context={"tokenizer": spm})


def test_mlm_mask_is_random_op_seeded_and_pure(spm):
  (op,) = ops.parse("mlm_mask(0.5)", context={"tokenizer": spm})
  assert ops.is_random(op)
  tokens = np.arange(5, 60)
  ex = {"tokens": tokens}
  a = op(ex, np.random.default_rng(1))
  b = op(ex, np.random.default_rng(1))
  c = op(ex, np.random.default_rng(2))
  assert all(np.array_equal(a[k], b[k]) for k in a)
  assert not np.array_equal(a["weights"], c["weights"])
  np.testing.assert_array_equal(ex["tokens"], np.arange(5, 60))  # input untouched
  with pytest.raises(ValueError, match="is random and needs a np.random.Generator"):
    op(ex, None)
  # All-special input: nothing to predict, no error.
  empty = op({"tokens": np.array([2, 0, 0, 3])}, np.random.default_rng(0))
  assert not empty["weights"].any()


def test_mlm_mask_needs_mask_id(char):
  with pytest.raises(ValueError, match="'char' tokenizer has no mask id"):
    ops.parse("mlm_mask", context={"tokenizer": char})


# --- in the grain pipeline -------------------------------------------------------


def test_text_ops_in_train_and_eval_pipeline(spm):
  texts = np.array([" ".join(WORDS[i : i + 3 + i % 9]) for i in range(24)], dtype=object)
  source = ArraySource({"text": texts, "label": np.arange(24, dtype=np.int32) % 2})
  context = {"tokenizer": spm}
  train_ops = ops.parse(
    "tokenize(add_cls=True, add_eos=True)|truncate_pad(16)|mlm_mask|drop('text', 'tokens')",
    context=context,
  )
  it = pipeline.train_iterator(source, global_batch_size=8, ops=train_ops, seed=0, shard=(0, 1))
  batch = next(it)
  assert set(batch) == {"label", "tokens_mask", "inputs", "targets", "weights"}
  assert batch["inputs"].shape == (8, 16) and batch["weights"].shape == (8, 16)
  assert (batch["weights"].sum(1) >= 1).all()
  eval_ops = ops.parse("tokenize(add_cls=True)|truncate_pad(16)|drop('text')", context=context)
  batches = list(pipeline.eval_iterator(source, global_batch_size=10, ops=eval_ops, shard=(0, 1)))
  assert len(batches) == 3 and batches[0]["tokens"].shape == (10, 16)
  with pytest.raises(ValueError, match="Eval ops must be deterministic"):
    pipeline.eval_iterator(source, global_batch_size=8, ops=train_ops, shard=(0, 1))
