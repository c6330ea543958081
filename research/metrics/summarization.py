"""ROUGE-1/2/L F1 (Lin 2004) with Google's `rouge-score` package.

Scores are corpus means of per-example F1, in percent. With several references
per example, an example's score is its best over them (`score_multi`, the
max-over-references convention); `mean_over_references` gives the other
convention (each reference scored, then averaged) for comparison with papers
that average.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from research.core import lazy

with lazy.imports():
  from rouge_score import rouge_scorer

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def rouge(
  predictions: Sequence[str],
  references: Sequence[Sequence[str]],
  *,
  use_stemmer: bool = True,
  mean_over_references: bool = False,
) -> dict[str, float]:
  """{'rouge1', 'rouge2', 'rougeL'}: mean F1 x 100 over examples.

  Args:
    predictions: one generated text per example.
    references: per example, one or more reference texts.
    use_stemmer: Porter stemming, as the original ROUGE-1.5.5 `-m` and most papers.
    mean_over_references: average an example's F1 over its references instead
      of taking the best one.
  """
  if len(predictions) != len(references):
    raise ValueError(f"{len(predictions)} predictions for {len(references)} reference lists.")
  scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=use_stemmer)
  totals: dict[str, list[float]] = {k: [] for k in ROUGE_TYPES}
  for pred, refs in zip(predictions, references):
    if not refs:
      raise ValueError("every example needs at least one reference.")
    if mean_over_references:
      per_ref = [scorer.score(r, pred) for r in refs]
      for k in ROUGE_TYPES:
        totals[k].append(float(np.mean([s[k].fmeasure for s in per_ref])))
    else:
      best = scorer.score_multi(list(refs), pred)
      for k in ROUGE_TYPES:
        totals[k].append(best[k].fmeasure)
  return {k: 100.0 * float(np.mean(v)) if v else 0.0 for k, v in totals.items()}


def rouge_report(
  predictions: Sequence[str],
  targets: Sequence[str],
  references: Sequence[Sequence[str]],
) -> dict[str, float]:
  """ROUGE under every convention a summarization paper may use, in one dict.

  'rouge1', 'rouge2', 'rougeL': against the single `targets` (TFDS's
  convention, and so PEGASUS's); where `references` hold more than the target
  (AESLC's three human annotations on dev/test) also '<type>_multi' (mean over
  an example's references) and '<type>_multimax' (best reference).
  """
  out = rouge(predictions, [[t] for t in targets])
  if any(list(r) != [t] for r, t in zip(references, targets)):
    mean = rouge(predictions, references, mean_over_references=True)
    best = rouge(predictions, references)
    out.update({f"{k}_multi": v for k, v in mean.items()})
    out.update({f"{k}_multimax": v for k, v in best.items()})
  return out
