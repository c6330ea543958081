"""Baselines for text generation (summarization, translation), scored like the model.

'lead': the source's first sentence, cut to `max_words` words, the classic
extractive summarization baseline (LEAD-1); scored with ROUGE against the same
raw targets and references the 'decoded_text' evaluator uses.
'copy_source': the whole source as the output (scored with sacreBLEU), the
floor a translation model must clear.
"""

from __future__ import annotations

import re

from research.baselines.base import BaselineContext, register
from research.metrics import summarization, translation

# A sentence ends at . ! or ? followed by whitespace, or at a line break (email
# bodies put greetings and sign-offs on lines of their own).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def first_sentence(text: str, max_words: int | None = None) -> str:
  """The first non-empty sentence of `text`, cut to `max_words` words (None: whole)."""
  for sentence in _SENTENCE_END.split(text.strip()):
    words = sentence.split()
    if words:
      return " ".join(words[:max_words] if max_words else words)
  return ""


@register("lead")
def lead(ctx: BaselineContext, max_words: int | None = None) -> dict[str, float]:
  """ROUGE-1/2/L F1 of each source's first sentence (cut to `max_words`), under
  the same conventions as the 'decoded_text' evaluator (`rouge_report`)."""
  source = ctx.data.raw(ctx.split)
  outputs = [first_sentence(s, max_words) for s in source.sources]
  scores = summarization.rouge_report(outputs, source.targets, source.references)
  return dict(scores, mean_output_words=sum(len(o.split()) for o in outputs) / max(len(outputs), 1))


@register("copy_source")
def copy_source(ctx: BaselineContext) -> dict[str, float]:
  """sacreBLEU BLEU and chrF of the untranslated source against the references."""
  source = ctx.data.raw(ctx.split)
  s = translation.corpus_scores(list(source.sources), source.references)
  return {"bleu": s.bleu, "chrf": s.chrf}
