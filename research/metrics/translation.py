"""Corpus BLEU and chrF with sacreBLEU (Post 2018), on detokenised text.

sacreBLEU applies its own standard tokenisation ('13a' by default) to raw
hypotheses and references, so scores are comparable across papers; the
signature it returns records every setting and goes into the report.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from research.core import lazy

with lazy.imports():
  import sacrebleu


def reference_streams(references: Sequence[Sequence[str]]) -> list[list[str | None]]:
  """Per-example reference lists -> sacreBLEU's reference streams.

  references[i] holds example i's references (any number >= 1); stream j holds
  every example's j-th reference, None where an example has fewer (sacreBLEU
  skips those).
  """
  if any(len(r) == 0 for r in references):
    raise ValueError("every example needs at least one reference.")
  width = max((len(r) for r in references), default=1)
  return [[r[j] if j < len(r) else None for r in references] for j in range(width)]


@dataclasses.dataclass(frozen=True)
class CorpusScores:
  """Corpus BLEU and chrF (0..100), BLEU's brevity penalty and lengths, and the
  sacreBLEU signatures that say how they were computed."""

  bleu: float
  chrf: float
  bp: float
  sys_len: int
  ref_len: int
  bleu_signature: str
  chrf_signature: str


def corpus_scores(
  hypotheses: Sequence[str], references: Sequence[Sequence[str]], *, tokenize: str = "13a"
) -> CorpusScores:
  """sacreBLEU's corpus BLEU and chrF of `hypotheses` against `references`.

  Args:
    hypotheses: detokenised system outputs, one per example.
    references: per example, its raw reference(s).
    tokenize: sacreBLEU's tokeniser for BLEU ('13a' is its default and WMT's).
  """
  if len(hypotheses) != len(references):
    raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} reference lists.")
  streams = reference_streams(references)
  bleu = sacrebleu.metrics.BLEU(tokenize=tokenize)
  chrf = sacrebleu.metrics.CHRF()
  # sacreBLEU takes None for an example's missing reference (its signature then
  # says nrefs:var); its annotation only names str.
  b = bleu.corpus_score(list(hypotheses), streams)  # type: ignore[arg-type]
  c = chrf.corpus_score(list(hypotheses), streams)  # type: ignore[arg-type]
  return CorpusScores(
    bleu=float(b.score),
    chrf=float(c.score),
    bp=float(b.bp),
    sys_len=int(b.sys_len),
    ref_len=int(b.ref_len),
    bleu_signature=str(bleu.get_signature()),
    chrf_signature=str(chrf.get_signature()),
  )
