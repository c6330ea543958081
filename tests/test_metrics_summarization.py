"""ROUGE wrapper: equals rouge-score per example, max or mean over references."""

import pytest
from rouge_score import rouge_scorer

from research.metrics import summarization


def test_single_reference_equals_rouge_score_mean():
  preds = ["meeting moved to three", "budget file"]
  refs = [["meeting moved"], ["the budget"]]
  scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
  want = {
    k: 100 * sum(scorer.score(r[0], p)[k].fmeasure for p, r in zip(preds, refs)) / 2
    for k in ("rouge1", "rouge2", "rougeL")
  }
  assert summarization.rouge(preds, refs) == pytest.approx(want)


def test_several_references_best_or_mean():
  preds = ["new meeting time"]
  refs = [["new meeting time", "something else entirely"]]
  assert summarization.rouge(preds, refs)["rouge1"] == pytest.approx(100.0)
  mean = summarization.rouge(preds, refs, mean_over_references=True)["rouge1"]
  assert mean == pytest.approx(50.0)
  with pytest.raises(ValueError, match="at least one reference"):
    summarization.rouge(["x"], [[]])
