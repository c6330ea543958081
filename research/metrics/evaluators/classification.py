"""The 'classification' evaluator: exact accuracy, top-k, loss, per-class P/R/F1, confusion."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence

import jax
import numpy as np

from research.core import lazy
from research.metrics import classification
from research.metrics.evaluators.base import HostBatch, PredictFn, to_host

with lazy.imports():
  from sklearn import metrics


@functools.cache
def jitted_batch_counts(num_classes: int, topk: tuple[int, ...]) -> Callable[..., dict]:
  """One jitted `batch_counts` per (C, topk), shared by every evaluator.

  Caching the jitted callable (not just relying on jit's own cache keyed by
  function identity) means a new evaluator per eval round does not recompile.
  """
  return jax.jit(functools.partial(classification.batch_counts, num_classes=num_classes, topk=topk))


class ClassificationEvaluator:
  """Exact accuracy / top-k / loss / per-class P, R, F1 and confusion matrix.

  Args:
    name: split name used as the key prefix, e.g. 'test'.
    batches_fn: () -> fresh iterable of host batches (dicts with a bool 'mask'
      [b]) covering the split exactly once; padding rows have mask False.
    num_classes: C.
    every_steps: evaluate every this many train steps; 0 = only at the end.
    topk: top-k accuracies to report (k < C only).
    class_names: C names for per-class keys; default '0'..'C-1'.
    label_key: key of the int [b] labels in predict_fn's output.
  """

  def __init__(
    self,
    name: str,
    batches_fn: Callable[[], Iterable[HostBatch]],
    *,
    num_classes: int,
    every_steps: int = 0,
    topk: Sequence[int] = (5,),
    class_names: Sequence[str] | None = None,
    label_key: str = "label",
  ):
    if every_steps < 0:
      raise ValueError(f"every_steps must be >= 0, got {every_steps}.")
    self.name = name
    self.every_steps = int(every_steps)
    self.batches_fn = batches_fn
    self.num_classes = int(num_classes)
    self.topk = tuple(int(k) for k in topk)
    # Resolved here so callers (plots, reports) always get C names.
    self.class_names = (
      [str(i) for i in range(self.num_classes)]
      if class_names is None
      else [str(n) for n in class_names]
    )
    if len(self.class_names) != self.num_classes:
      raise ValueError(
        f"Evaluator {name!r}: {len(self.class_names)} class_names for {self.num_classes} classes."
      )
    self.label_key = label_key
    self._counts_fn = jitted_batch_counts(self.num_classes, self.topk)

  def _counts(self, out: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    missing = [k for k in ("logits", self.label_key, "mask") if k not in out]
    if missing:
      raise KeyError(
        f"Evaluator {self.name!r}: predict_fn output lacks {missing}; it has {sorted(out)}."
      )
    return self._counts_fn(out["logits"], out[self.label_key], out["mask"])

  def _positive_scores(self, out, batch_scores: list, batch_labels: list) -> None:
    """Binary tasks: keep p(class 1) of the real (unmasked) rows for ROC AUC,
    which needs every score, not counts."""
    mask = to_host(out["mask"]).astype(bool)
    logits = to_host(out["logits"]).astype(np.float64)[mask]
    # p(1) = sigmoid(l1 - l0): the two-class softmax without overflow.
    batch_scores.append(1.0 / (1.0 + np.exp(logits[:, 0] - logits[:, 1])))
    batch_labels.append(to_host(out[self.label_key])[mask])

  def run(self, predict_fn: PredictFn) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Scores predict_fn on the split.

    Returns:
      ({'<name>/accuracy': ..., '<name>/top5': ..., '<name>/loss': ...,
        '<name>/precision/<class>': ..., ...},
       {'<name>/confusion_matrix': int64 [C, C]}).
    """
    acc = classification.ClassificationAccumulator(self.num_classes, self.topk, self.class_names)
    # One batch stays in flight: fetching batch i's counts after dispatching
    # batch i+1 lets the host prepare input while the device computes. Not on
    # several CPU devices (predict_fn.one_in_flight): queued work with
    # collectives can deadlock there (research.platforms.cpu.needs_step_sync).
    lookahead = not getattr(predict_fn, "one_in_flight", False)
    pending = None
    scores: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for batch in self.batches_fn():
      out = predict_fn(batch)
      counts = self._counts(out)
      if self.num_classes == 2:
        self._positive_scores(out, scores, labels)
      if pending is not None:
        acc.update(jax.tree.map(to_host, pending))
        pending = None
      if lookahead:
        pending = counts
      else:
        acc.update(jax.tree.map(to_host, counts))
    if pending is not None:
      acc.update(jax.tree.map(to_host, pending))
    if acc.count == 0:
      raise ValueError(f"Evaluator {self.name!r}: batches_fn yielded no unmasked examples.")
    scalars = {f"{self.name}/{k}": v for k, v in acc.result().items()}
    if self.num_classes == 2:
      y, p = np.concatenate(labels), np.concatenate(scores)
      if len(np.unique(y)) == 2:  # AUC is undefined with one class present
        scalars[f"{self.name}/roc_auc"] = float(metrics.roc_auc_score(y, p))
    artifacts = {f"{self.name}/confusion_matrix": acc.confusion_matrix()}
    return scalars, artifacts
