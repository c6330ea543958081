"""The 'decoded_text' evaluator: decode a split with an encoder-decoder and score the text.

Translation and summarization are scored on detokenised output against the
split's raw references (never against tokenised or truncated targets):
  scores='sacrebleu': corpus BLEU and chrF (sacreBLEU, with its signatures);
  scores='rouge': ROUGE-1/2/L F1 (rouge-score) against the target, and where
    the split has several references per example (AESLC's annotations) also
    their mean ('_multi') and best ('_multimax'): `summarization.rouge_report`.

Decoding is greedy or beam search with a length penalty
(`research.models.beam_search.decode`), compiled once per shape. Each
example's 'index' (added by the paired-text sources) says which raw
references it is scored against, so batching, padding and processes cannot
misalign outputs and references.

Artifacts: '<name>/decoded', the source, output and first reference of every
example (saved as arrays, rendered as a sample table in the report).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils

from research.metrics import summarization, translation
from research.metrics.evaluators.base import to_host
from research.models import beam_search

SCORES = ("sacrebleu", "rouge")


class DecodedTextEvaluator:
  """Decodes every example of a split and scores the detokenised text.

  Args:
    name: the eval's name ('val', 'test'); metric keys are '<name>/<metric>'.
    batches_fn: () -> iterable of host batches with 'inputs' int [b, S] (source
      tokens), 'index' int [b] and the pipeline's 'mask' bool [b].
    every_steps: 0 = only at the end of training.
    tokenizer: the run's tokenizer (decodes ids to text; its bos/eos ids start
      and stop decoding).
    references: per example of the split, its raw reference texts.
    sources: per example, the raw source text (for the samples artifact).
    targets: per example, the target text (ROUGE's single-reference score;
      default: each example's first reference).
    scores: 'sacrebleu' or 'rouge'.
    method: 'beam' or 'greedy'.
    beam_size, alpha: beam width and GNMT length-penalty exponent.
    max_decode_len: tokens decoded per example (EOS included).
  """

  data_attributes = ("tokenizer",)
  source_attributes = ("references", "sources", "targets")

  def __init__(
    self,
    name: str,
    batches_fn: Callable[[], Iterable[Mapping[str, np.ndarray]]],
    *,
    every_steps: int = 0,
    tokenizer: Any = None,
    references: Sequence[Sequence[str]] | None = None,
    sources: Sequence[str] | None = None,
    targets: Sequence[str] | None = None,
    scores: str = "sacrebleu",
    method: str = "beam",
    beam_size: int = 4,
    alpha: float = 0.6,
    max_decode_len: int = 64,
    **unused: Any,
  ):
    if scores not in SCORES:
      raise ValueError(f"eval {name!r}: scores must be one of {SCORES}, got {scores!r}.")
    if method not in beam_search.DECODING_METHODS:
      raise ValueError(
        f"eval {name!r}: method must be one of {beam_search.DECODING_METHODS}, got {method!r}."
      )
    if tokenizer is None or references is None:
      raise ValueError(
        f"eval {name!r}: the decoded_text evaluator needs a text run (config.data.tokenizer) "
        "on a paired-text data set (its examples carry 'references' and 'index')."
      )
    self.name, self.every_steps, self.batches_fn = name, int(every_steps), batches_fn
    self.tokenizer, self.references = tokenizer, [list(r) for r in references]
    self.sources = list(sources) if sources is not None else None
    self.targets = list(targets) if targets is not None else [r[0] for r in self.references]
    self.scores, self.method = scores, method
    self.beam_size, self.alpha, self.max_decode_len = (
      int(beam_size),
      float(alpha),
      int(max_decode_len),
    )
    self.class_names = None

  def decode_all(self, predictor: Any) -> dict[int, str]:
    """{example index: detokenised output} for every real example of the split."""
    # Whole on one device, put there once per evaluation rather than with every
    # batch (the decoder runs outside the run's mesh; leaves may be sharded).
    variables = jax.device_put(jax.tree.map(to_host, predictor.variables()))
    special = self.tokenizer.special_ids - {self.tokenizer.unk_id}
    ids, indices = [], []
    for batch in self.batches_fn():
      tokens = beam_search.decode(
        predictor.model,
        variables,
        np.asarray(batch["inputs"]),
        method=self.method,
        beam_size=self.beam_size,
        alpha=self.alpha,
        max_len=self.max_decode_len,
        bos_id=self.tokenizer.bos_id,
        eos_id=self.tokenizer.eos_id,
      )
      real = np.asarray(batch["mask"], bool)
      ids.append(np.asarray(tokens)[real])
      indices.append(np.asarray(batch["index"])[real])
    all_ids = np.concatenate(ids) if ids else np.zeros((0, self.max_decode_len), np.int32)
    all_idx = np.concatenate(indices) if indices else np.zeros((0,), np.int32)
    if jax.process_count() > 1:  # every process decoded its own share of the split
      all_ids = _gather_rows(all_ids)
      all_idx = _gather_rows(all_idx)
    return {
      int(i): self.tokenizer.decode(beam_search.strip_special(row, self.tokenizer.eos_id, special))
      for i, row in zip(all_idx, all_ids)
    }

  def run(self, predictor: Any) -> tuple[dict[str, float], dict[str, Any]]:
    decoded = self.decode_all(predictor)
    missing = len(self.references) - len(decoded)
    if missing:
      raise ValueError(
        f"eval {self.name!r}: decoded {len(decoded)} of {len(self.references)} examples."
      )
    order = sorted(decoded)
    hyps = [decoded[i] for i in order]
    refs = [self.references[i] for i in order]
    p = self.name
    if self.scores == "sacrebleu":
      s = translation.corpus_scores(hyps, refs)
      scalars = {f"{p}/bleu": s.bleu, f"{p}/chrf": s.chrf, f"{p}/bleu_bp": s.bp}
      signature = {"bleu": s.bleu_signature, "chrf": s.chrf_signature}
    else:
      r = summarization.rouge_report(hyps, [self.targets[i] for i in order], refs)
      scalars = {f"{p}/{k}": v for k, v in r.items()}
      signature = {
        "rouge": "rouge-score F1 x100, Porter stemmer; _multi: mean, _multimax: best "
        "over the references"
      }
    scalars[f"{p}/num_examples"] = float(len(hyps))
    scalars[f"{p}/mean_output_words"] = float(np.mean([len(h.split()) for h in hyps] or [0]))
    artifact = {
      "index": np.asarray(order, np.int32),
      "output": np.asarray(hyps, dtype=np.str_),
      "reference": np.asarray([self.targets[i] for i in order], dtype=np.str_),
      "source": np.asarray([self.sources[i] if self.sources else "" for i in order], dtype=np.str_),
      "decoding": np.asarray(
        f"{self.method}"
        + (f", beam {self.beam_size}, alpha {self.alpha}" if self.method == "beam" else "")
        + f", max {self.max_decode_len} tokens"
      ),
      "signature": np.asarray(str(signature)),
    }
    return scalars, {f"{p}/decoded": artifact}


def _gather_rows(x: np.ndarray) -> np.ndarray:
  """Concatenates every process's rows (they may differ in number)."""
  n = np.asarray([len(x)])
  counts = np.asarray(multihost_utils.process_allgather(n)).reshape(-1)
  width = int(counts.max())
  padded = np.zeros((width, *x.shape[1:]), x.dtype)
  padded[: len(x)] = x
  gathered = np.asarray(multihost_utils.process_allgather(padded))
  return np.concatenate([g[:c] for g, c in zip(gathered, counts)])
