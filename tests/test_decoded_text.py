"""The decoded_text evaluator and the shift_right op, with real tokenizers."""

import numpy as np
import pytest

from research.data import ops
from research.data.text import pairs
from research.data.text import tokenizers as tok_lib
from research.metrics.evaluators import EVALUATORS, decoded_text
from research.models import beam_search

SENTENCES = [
  "a dog runs in the green park today",
  "two men are talking near the old house",
  "a girl in a red dress plays with a ball",
  "people walk along the beach at sunset now",
  "a cat sleeps on the warm window sill again",
]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
  texts = SENTENCES * 20
  return tok_lib.get_or_train_tokenizer(
    {"type": "sentencepiece", "vocab_size": 80, "model_type": "bpe"},
    lambda: iter(texts),
    str(tmp_path_factory.mktemp("tok")),
  )


class _Predictor:
  """What the evaluator uses of a Predictor: the model and its variables."""

  model = None

  def variables(self):
    return {"params": {}}


def _batches(tokenizer, order, batch=2, length=24):
  """Eval batches in `order` (a permutation of example indices), padded and masked."""
  out = []
  for start in range(0, len(order), batch):
    idx = list(order[start : start + batch])
    inputs = np.zeros((batch, length), np.int32)
    for row, i in enumerate(idx):
      ids = [*tokenizer.encode(SENTENCES[i]), tokenizer.eos_id]
      inputs[row, : len(ids)] = ids
    mask = np.array([True] * len(idx) + [False] * (batch - len(idx)))
    index = np.array(idx + [0] * (batch - len(idx)), np.int32)
    out.append({"inputs": inputs, "index": index, "mask": mask})
  return out


def test_outputs_are_scored_against_their_own_references_whatever_the_batch_order(
  tokenizer, monkeypatch
):
  # A "model" that copies its source: with references = sources, BLEU is 100
  # only if every output is paired with its own example's references.
  def copy_decode(model, variables, inputs, **kw):
    assert kw["method"] == "beam" and kw["eos_id"] == tokenizer.eos_id
    return np.asarray(inputs)[:, : kw["max_len"]]

  monkeypatch.setattr(beam_search, "decode", copy_decode)
  order = [3, 0, 4, 1, 2]
  ev = EVALUATORS.get("decoded_text")(
    "val",
    lambda: _batches(tokenizer, order),
    tokenizer=tokenizer,
    references=[[s] for s in SENTENCES],
    sources=SENTENCES,
    max_decode_len=24,
  )
  scalars, artifacts = ev.run(_Predictor())
  assert scalars["val/bleu"] == pytest.approx(100.0)
  assert scalars["val/chrf"] == pytest.approx(100.0)
  assert scalars["val/num_examples"] == 5
  decoded = artifacts["val/decoded"]
  assert list(decoded["output"]) == SENTENCES and list(decoded["index"]) == [0, 1, 2, 3, 4]
  # Misaligned references score far lower: the pairing is what is measured.
  shifted = EVALUATORS.get("decoded_text")(
    "val",
    lambda: _batches(tokenizer, order),
    tokenizer=tokenizer,
    references=[[SENTENCES[(i + 1) % 5]] for i in range(5)],
    max_decode_len=24,
  )
  assert shifted.run(_Predictor())[0]["val/bleu"] < 20


def test_rouge_scores_and_missing_examples_are_an_error(tokenizer, monkeypatch):
  monkeypatch.setattr(
    beam_search, "decode", lambda model, variables, inputs, **kw: np.asarray(inputs)
  )
  ev = decoded_text.DecodedTextEvaluator(
    "test",
    lambda: _batches(tokenizer, [0, 1]),
    tokenizer=tokenizer,
    references=[[SENTENCES[0], "other"], [SENTENCES[1]]],
    scores="rouge",
    method="greedy",
  )
  scalars, _ = ev.run(_Predictor())
  assert scalars["test/rouge1"] == pytest.approx(100.0)
  ev3 = decoded_text.DecodedTextEvaluator(
    "test", lambda: _batches(tokenizer, [0, 1]), tokenizer=tokenizer, references=[["a"]] * 3
  )
  with pytest.raises(ValueError, match="decoded 2 of 3"):
    ev3.run(_Predictor())
  with pytest.raises(ValueError, match="scores must be one of"):
    decoded_text.DecodedTextEvaluator(
      "t", list, tokenizer=tokenizer, references=[["a"]], scores="meteor"
    )
  with pytest.raises(ValueError, match="paired-text data set"):
    decoded_text.DecodedTextEvaluator("t", list)


def test_shift_right_and_the_translation_pipeline(tokenizer):
  spec = (
    "tokenize(key='source', out='inputs', add_eos=True)|truncate_pad(12, key='inputs')"
    "|tokenize(key='target', out='targets', add_eos=True)|truncate_pad(12, key='targets')"
    "|shift_right(key='targets', out='decoder_inputs')"
    "|keep('inputs', 'decoder_inputs', 'targets', 'targets_mask', 'index')"
  )
  source = pairs.PairSource(SENTENCES[:2], SENTENCES[2:4], name="t")
  ex = ops.apply(ops.parse(spec, context={"tokenizer": tokenizer}), source[1], None)
  assert sorted(ex) == ["decoder_inputs", "index", "inputs", "targets", "targets_mask"]
  target_ids = [*tokenizer.encode(SENTENCES[3]), tokenizer.eos_id][:12]
  np.testing.assert_array_equal(ex["targets"][: len(target_ids)], target_ids)
  assert ex["decoder_inputs"][0] == tokenizer.bos_id
  np.testing.assert_array_equal(ex["decoder_inputs"][1:], ex["targets"][:-1])
  assert int(ex["index"]) == 1
  with pytest.raises(ValueError, match="no bos_id"):
    ops.parse("shift_right()", context={"tokenizer": tok_lib.CharTokenizer(list("ab"))})
