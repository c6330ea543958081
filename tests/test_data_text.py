"""Tests for research.data.text: tokenizers, LM windows, document packing, length bucketing."""

import os
import pickle
import random

import numpy as np
import pytest

from research.data.text import bucketing, tokenizers, windows

# Exactly the 65 characters of tiny shakespeare.
SHAKESPEARE_CHARS = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
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
  "harbour",
  "captain",
  "sailor",
  "journey",
  "travel",
  "wonder",
  "gentle",
  "hungry",
  "quietly",
  "loudly",
  "slowly",
  "bright",
  "darkly",
  "follow",
  "borrow",
  "swallow",
  "remember",
  "forget",
  "beautiful",
  "terrible",
  "curious",
  "careful",
  "hopeful",
  "playful",
  "zebra",
  "oxygen",
  "jazz",
  "vixen",
]


def _corpus(n_lines=400, seed=0):
  rng = random.Random(seed)
  return [
    " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))) + "." for _ in range(n_lines)
  ]


@pytest.fixture(scope="module")
def spm_tok():
  return tokenizers.SentencePieceTokenizer.train(_corpus(), vocab_size=100)


# --- char tokenizer ------------------------------------------------------------


def test_char_tokenizer_65_chars_sorted_round_trip():
  text = "First Citizen:\nBefore we proceed any further, hear me speak.\n" + SHAKESPEARE_CHARS[::-1]
  tok = tokenizers.CharTokenizer.train([text])
  assert tok.vocab_size == 65 and tok.chars == sorted(SHAKESPEARE_CHARS)
  assert tok.encode("\n") == [0] and tok.encode(" ") == [1] and tok.encode("a") == [39]
  assert tok.decode(tok.encode(text)) == text
  assert tok.pad_id is None and tok.mask_id is None and tok.special_ids == frozenset()
  with pytest.raises(ValueError, match=r"'é' \(U\+00E9\) at position 2 .*65-character"):
    tok.encode("ab\u00e9")
  with pytest.raises(ValueError, match="outside the vocabulary"):
    tok.decode([65])


def test_char_tokenizer_save_load(tmp_path):
  tok = tokenizers.CharTokenizer.train(["hello world"])
  tok.save(str(tmp_path / "t"))
  back = tokenizers.load_tokenizer(str(tmp_path / "t"))
  assert isinstance(back, tokenizers.CharTokenizer) and back.chars == tok.chars
  with pytest.raises(ValueError, match="already holds a tokenizer"):
    tok.save(str(tmp_path / "t"))


# --- sentencepiece -------------------------------------------------------------


def test_sentencepiece_special_ids_round_trip(spm_tok):
  tok = spm_tok
  assert tok.vocab_size == 100
  assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id, tok.mask_id) == (0, 1, 2, 3, 4)
  assert tok.cls_id == 2 and tok.sep_id == 3 and tok.special_ids == frozenset(range(5))
  assert [tok.id_to_piece(i) for i in range(5)] == ["<pad>", "<unk>", "<s>", "</s>", "<mask>"]
  text = "the quick brown fox sat on a mat."
  ids = tok.encode(text)
  assert ids and min(ids) >= 5 and tok.decode(ids) == text
  # Control symbols are produced only by id, never from text, and decode to nothing.
  assert 4 not in tok.encode("<mask>")
  assert tok.decode([2] + ids + [3, 0, 0]) == text
  assert tok.encode("§§").count(1) >= 1  # "§" never seen: unk
  back = pickle.loads(pickle.dumps(tok))
  assert back.encode(text) == ids


def test_sentencepiece_save_load_and_options(tmp_path, spm_tok):
  spm_tok.save(str(tmp_path / "spm"))
  assert sorted(os.listdir(tmp_path / "spm")) == ["sentencepiece.model", "tokenizer.json"]
  back = tokenizers.load_tokenizer(str(tmp_path / "spm"))
  assert isinstance(back, tokenizers.SentencePieceTokenizer)
  assert back.spec == spm_tok.spec and back.spec["vocab_size"] == 100
  text = "small green trees and lazy dogs."
  assert back.encode(text) == spm_tok.encode(text)


def test_sentencepiece_max_sentences_sample_is_seeded():
  lines = [f"line {i}" for i in range(100)]
  a = tokenizers._sample_lines(["\n".join(lines)], 10, seed=0)
  assert a == tokenizers._sample_lines(["\n".join(lines)], 10, seed=0)
  assert len(a) == 10 and a != tokenizers._sample_lines(["\n".join(lines)], 10, seed=1)
  assert a == sorted(a, key=lines.index)  # corpus order kept
  assert tokenizers._sample_lines(["a\n\n b \n", "c"], 10, seed=0) == ["a", "b", "c"]


def test_sentencepiece_errors():
  with pytest.raises(ValueError, match="vocab_size=5000 is too large.*Lower vocab_size"):
    tokenizers.SentencePieceTokenizer.train(_corpus(50), vocab_size=5000)
  with pytest.raises(ValueError, match="no non-empty lines"):
    tokenizers.SentencePieceTokenizer.train(["", "\n"], vocab_size=50)


@pytest.mark.parametrize(
  "spec, words",
  [
    ({"type": "word"}, ["'word'", "valid types", "char", "sentencepiece"]),
    ({"vocab_size": 10}, ["'type'"]),
    ({"type": "char", "vocab_size": 10}, ["'char'", "vocab_size"]),
    ({"type": "sentencepiece", "vocab": 10}, ["['vocab']", "vocab_size"]),
    ({"type": "sentencepiece", "vocab_size": 3}, ["vocab_size", ">= 8"]),
    ({"type": "sentencepiece", "model_type": "word"}, ["model_type", "'unigram' or 'bpe'"]),
    ({"type": "sentencepiece", "byte_fallback": True, "vocab_size": 100}, ["> 261"]),
  ],
)
def test_check_tokenizer_spec_errors(spec, words):
  with pytest.raises(ValueError) as e:
    tokenizers.check_tokenizer_spec(spec)
  for word in words:
    assert word in str(e.value)


def test_check_tokenizer_spec_fills_defaults():
  assert tokenizers.check_tokenizer_spec({"type": "char"}) == {"type": "char"}
  spec = tokenizers.check_tokenizer_spec({"type": "sentencepiece", "vocab_size": 500})
  assert spec["vocab_size"] == 500 and spec["model_type"] == "unigram"
  assert set(tokenizers.TOKENIZERS) == {"char", "sentencepiece"}


# --- get_or_train --------------------------------------------------------------


@pytest.mark.parametrize("spec", [{"type": "char"}, {"type": "sentencepiece", "vocab_size": 80}])
def test_get_or_train_trains_once_then_loads(tmp_path, spec):
  calls = []

  def texts():
    calls.append(1)
    return iter(_corpus(200))

  directory = str(tmp_path / "run" / "tokenizer")
  first = tokenizers.get_or_train_tokenizer(spec, texts, directory)
  second = tokenizers.get_or_train_tokenizer(spec, texts, directory)
  assert len(calls) == 1  # the second call loaded, it did not train
  assert type(first) is type(second) and first.spec == second.spec
  text = "the lazy dogs."
  assert first.encode(text) == second.encode(text)
  # No temporary directory is left behind.
  assert os.listdir(tmp_path / "run") == ["tokenizer"]


def test_get_or_train_refuses_different_spec_and_foreign_dir(tmp_path):
  directory = str(tmp_path / "tok")
  tokenizers.get_or_train_tokenizer(
    {"type": "sentencepiece", "vocab_size": 60}, lambda: _corpus(200), directory
  )
  with pytest.raises(
    ValueError, match="built from spec.*'vocab_size': 60.*'vocab_size': 70.*delete the directory"
  ):
    tokenizers.get_or_train_tokenizer(
      {"type": "sentencepiece", "vocab_size": 70}, lambda: _corpus(200), directory
    )
  other = tmp_path / "other"
  other.mkdir()
  (other / "notes.txt").write_text("x")
  with pytest.raises(ValueError, match="holds files but no tokenizer.json"):
    tokenizers.get_or_train_tokenizer({"type": "char"}, lambda: ["ab"], str(other))
  empty = tmp_path / "empty"
  empty.mkdir()  # an empty placeholder directory is fine
  assert (
    tokenizers.get_or_train_tokenizer({"type": "char"}, lambda: ["ab"], str(empty)).vocab_size == 2
  )


def test_load_tokenizer_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="No tokenizer in .*tokenizer.json is missing"):
    tokenizers.load_tokenizer(str(tmp_path))
  (tmp_path / "tokenizer.json").write_text("{not json")
  with pytest.raises(ValueError, match="tokenizer.json: not valid JSON"):
    tokenizers.load_tokenizer(str(tmp_path))


# --- LM windows ----------------------------------------------------------------


def test_lm_windows_random_matches_nanogpt_windows():
  tokens = np.arange(100, 120, dtype=np.int64)
  src = windows.LMWindows(tokens, block_size=8, mode="random")
  assert len(src) == 12  # nanoGPT: torch.randint(len(data) - block_size)
  for i in (0, 5, 11):
    ex = src[i]
    np.testing.assert_array_equal(ex["inputs"], tokens[i : i + 8])
    np.testing.assert_array_equal(ex["targets"], tokens[i + 1 : i + 9])
    assert ex["inputs"].dtype == np.int32 and set(ex) == {"inputs", "targets"}
  assert src.features["inputs"].shape == (8,)
  with pytest.raises(IndexError):
    src[12]
  with pytest.raises(ValueError, match="too few for block_size 20"):
    windows.LMWindows(tokens, 20, "random")


@pytest.mark.parametrize("n, t", [(21, 5), (20, 5), (2, 5), (11, 10)])
def test_lm_windows_contiguous_predicts_every_token_once(n, t):
  tokens = np.arange(1000, 1000 + n)
  src = windows.LMWindows(tokens, block_size=t, mode="contiguous", pad_id=7)
  assert len(src) == -(-(n - 1) // t) and src.num_targets == n - 1
  predicted, contexts = [], []
  for i in range(len(src)):
    ex = src[i]
    assert ex["inputs"].shape == ex["targets"].shape == ex["weights"].shape == (t,)
    assert ex["weights"].dtype == np.float32
    real = ex["weights"] > 0
    predicted.extend(ex["targets"][real].tolist())
    contexts.extend(ex["inputs"][real].tolist())
    assert np.all(ex["targets"][~real] == 7) and np.all(ex["inputs"][~real] == 7)
    # targets are the inputs shifted by one, inside the window
    np.testing.assert_array_equal(ex["targets"][real][:-1], ex["inputs"][real][1:])
  assert predicted == tokens[1:].tolist()  # every token after the first, exactly once
  assert contexts == tokens[:-1].tolist()


def test_lm_windows_errors_and_from_text():
  with pytest.raises(ValueError, match="mode must be one of"):
    windows.LMWindows(np.arange(10), 4, "sliding")
  with pytest.raises(ValueError, match="1-D"):
    windows.LMWindows(np.zeros((2, 5), np.int32), 2)
  with pytest.raises(ValueError, match="block_size must be a positive int"):
    windows.LMWindows(np.arange(10), 0)
  tok = tokenizers.CharTokenizer.train(["abc"])
  stream = windows.LMWindows.tokens_from_text("abcab", tok)
  assert stream.dtype == np.int32 and stream.tolist() == [0, 1, 2, 0, 1]


def test_pack_documents():
  docs = [[10, 11, 12], [20], [30, 31, 32, 33]]
  eos = 1
  stream = windows.stream_documents(docs, eos)
  assert stream.tolist() == [10, 11, 12, 1, 20, 1, 30, 31, 32, 33, 1]
  packed = windows.pack_documents(docs, block_size=4, eos_id=eos)
  assert len(packed) == 3  # 10 (input, target) pairs in rows of 4
  rows = [packed[i] for i in range(len(packed))]
  inputs = np.concatenate([r["inputs"] for r in rows])
  targets = np.concatenate([r["targets"] for r in rows])
  weights = np.concatenate([r["weights"] for r in rows])
  seg = np.concatenate([r["segment_ids"] for r in rows])
  assert inputs[:10].tolist() == stream[:-1].tolist()
  assert targets[:10].tolist() == stream[1:].tolist()
  assert weights.tolist() == [1.0] * 10 + [0.0] * 2
  assert seg.tolist() == [1, 1, 1, 1, 2, 2, 3, 3, 3, 3, 0, 0]


# --- bucketing -----------------------------------------------------------------


def test_bucket_of_and_length():
  assert bucketing.bucket_of([1, 64, 65, 128, 129, 1000], (64, 128, 256)).tolist() == [
    0,
    0,
    1,
    1,
    2,
    2,
  ]
  assert bucketing.bucket_length(65, (64, 128, 256)) == 128
  with pytest.raises(ValueError, match="strictly increasing"):
    bucketing.bucket_of([1], (64, 32))


def test_bucket_batches_group_similar_lengths():
  rng = np.random.default_rng(0)
  lengths = rng.integers(1, 300, 1000)
  boundaries = (64, 128, 256)
  batches = bucketing.bucket_batches(lengths, 16, boundaries, seed=3)
  buckets = bucketing.bucket_of(lengths, boundaries)
  seen = np.concatenate(batches)
  assert len(seen) == len(set(seen.tolist()))  # no example twice
  for b in batches:
    assert len(b) == 16 and len(set(buckets[b].tolist())) == 1
  # Only each bucket's remainder (< 16 examples) is dropped.
  counts = np.bincount(buckets, minlength=3)
  assert len(seen) == sum((c // 16) * 16 for c in counts)
  again = bucketing.bucket_batches(lengths, 16, boundaries, seed=3)
  assert all(np.array_equal(a, b) for a, b in zip(batches, again))
  other = bucketing.bucket_batches(lengths, 16, boundaries, seed=4)
  assert not all(np.array_equal(a, b) for a, b in zip(batches, other))
  kept = bucketing.bucket_batches(lengths, 16, boundaries, seed=3, drop_remainder=False)
  assert sorted(np.concatenate(kept).tolist()) == list(range(1000))


def test_bucketed_grain_pipeline_as_documented(spm_tok):
  """The usage in bucketing's docstring: batches padded to their bucket's length."""
  import grain

  from research.data import ops
  from research.data.core import ArraySource

  texts = np.array(_corpus(64, seed=1), dtype=object)
  source = ArraySource({"text": texts})
  boundaries = (8, 16, 32)
  lengths = np.array([len(spm_tok.encode(source[i]["text"])) + 1 for i in range(len(source))])
  batches = bucketing.bucket_batches(lengths, 4, boundaries, seed=0)
  tokenize = ops.parse("tokenize(add_cls=True)", context={"tokenizer": spm_tok})
  pads = {b: ops.parse(f"truncate_pad({b})") for b in boundaries}

  def load_batch(b):
    idx = batches[b]
    length = bucketing.bucket_length(lengths[idx].max(), boundaries)
    examples = [ops.apply(tokenize + pads[length], source[i], None) for i in idx]
    return {k: np.stack([e[k] for e in examples]) for k in examples[0] if k != "text"}

  ds = grain.MapDataset.range(len(batches)).map(load_batch)
  for b, batch in enumerate(ds):
    length = batch["tokens"].shape[1]
    assert length in boundaries and batch["tokens"].shape == (4, length)
    real = batch["tokens_mask"].sum(1)
    np.testing.assert_array_equal(real, np.minimum(lengths[batches[b]], length))


def test_lm_windows_in_the_grain_pipeline():
  """Shuffled 'random' windows train; 'contiguous' windows evaluate every target once."""
  from research.data import pipeline

  tokens = np.arange(3, 203) % 50
  train = windows.LMWindows(tokens, 16, "random")
  it = pipeline.train_iterator(train, global_batch_size=8, seed=0, shard=(0, 1))
  batch = next(it)
  assert batch["inputs"].shape == batch["targets"].shape == (8, 16)
  np.testing.assert_array_equal(batch["targets"][:, :-1], batch["inputs"][:, 1:])
  val = windows.LMWindows(tokens, 16, "contiguous")
  total = 0.0
  for b in pipeline.eval_iterator(val, global_batch_size=4, shard=(0, 1)):
    total += float((b["weights"] * b["mask"][:, None]).sum())
  assert total == len(tokens) - 1
