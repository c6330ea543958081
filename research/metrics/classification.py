"""Exact classification metrics over a whole split.

Two halves, so that the device does the per-example work and the host does
the bookkeeping in int64:

* `batch_counts` (pure jnp, jit-able) reduces one batch to sufficient
  statistics: a confusion matrix, top-k hit counts, the example count and the
  summed cross-entropy. Padding (`mask == False`) contributes nothing.
* `ClassificationAccumulator` sums those counts on the host and derives every
  metric from the sums at the end, so the result is exact over the split (no
  averaging of per-batch means, which would overweight a short last batch).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np


def _valid_topk(topk: Sequence[int], num_classes: int) -> tuple[int, ...]:
  """The k of `topk` that carry information (top-k with k >= C is always 1)."""
  return tuple(int(k) for k in topk if 0 < int(k) < num_classes)


def batch_counts(
  logits: jax.Array,
  labels: jax.Array,
  mask: jax.Array,
  *,
  num_classes: int,
  topk: Sequence[int] = (5,),
) -> dict[str, jax.Array]:
  """Sufficient statistics of one batch.

  Args:
    logits: float [b, C] unnormalised class scores.
    labels: int [b] true class ids in [0, C).
    mask: bool [b]; False marks padding, which contributes nothing.
    num_classes: C (static).
    topk: the k for which `top{k}_correct` is returned; k >= C is skipped
      because it is trivially every example.

  Returns:
    {'confusion': int32 [C, C] (rows = true class, cols = predicted class),
     'top{k}_correct': int32 [] for each kept k,
     'count': int32 [] number of unmasked examples,
     'loss_sum': float32 [] softmax cross-entropy summed over unmasked examples}.
    Unmasked labels outside [0, C) are counted in `count` but land nowhere in
    `confusion`; the accumulator detects that mismatch and raises.
  """
  if logits.ndim != 2 or logits.shape[-1] != num_classes:
    raise ValueError(f"logits must be [b, {num_classes}], got {logits.shape}.")
  logits = logits.astype(jnp.float32)
  labels = labels.astype(jnp.int32)
  mask = mask.astype(bool)
  in_range = (labels >= 0) & (labels < num_classes)
  # Out-of-range rows get index C so `mode='drop'` discards them; negative ids
  # would otherwise wrap around like numpy indexing.
  safe_labels = jnp.where(in_range, labels, num_classes)
  preds = jnp.argmax(logits, axis=-1).astype(jnp.int32)
  confusion = (
    jnp.zeros((num_classes, num_classes), jnp.int32)
    .at[safe_labels, preds]
    .add(mask.astype(jnp.int32), mode="drop")
  )

  # `where` rather than multiplying by the mask: padded rows may hold inf/NaN
  # logits and NaN * 0 is still NaN.
  log_probs = jax.nn.log_softmax(logits, axis=-1)
  label_log_prob = jnp.take_along_axis(
    log_probs, jnp.clip(labels, 0, num_classes - 1)[:, None], axis=-1
  )[:, 0]
  loss_sum = jnp.sum(jnp.where(mask, -label_log_prob, 0.0)).astype(jnp.float32)

  out = {
    "confusion": confusion,
    "count": jnp.sum(mask, dtype=jnp.int32),
    "loss_sum": loss_sum,
  }
  for k in _valid_topk(topk, num_classes):
    # lax.top_k breaks ties towards the lower index, like argmax, so top-1
    # would equal accuracy exactly.
    _, top_idx = jax.lax.top_k(logits, k)
    hit = jnp.any(top_idx == labels[:, None], axis=-1)
    out[f"top{k}_correct"] = jnp.sum(hit & mask, dtype=jnp.int32)
  return out


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
  """num / den elementwise, 0 where den == 0 (sklearn's zero_division=0)."""
  num = np.asarray(num, np.float64)
  den = np.asarray(den, np.float64)
  return np.divide(num, den, out=np.zeros_like(num), where=den != 0)


class ClassificationAccumulator:
  """Sums `batch_counts` over a split and turns the sums into metrics.

  Args:
    num_classes: C.
    topk: as in `batch_counts`; only k < C are reported.
    class_names: C names used in the per-class keys; defaults to '0'..'C-1'.
  """

  def __init__(
    self, num_classes: int, topk: Sequence[int] = (5,), class_names: Sequence[str] | None = None
  ):
    if class_names is None:
      class_names = [str(i) for i in range(num_classes)]
    if len(class_names) != num_classes:
      raise ValueError(f"Got {len(class_names)} class_names for {num_classes} classes.")
    self.num_classes = num_classes
    self.topk = _valid_topk(topk, num_classes)
    self.class_names = [str(n) for n in class_names]
    self._confusion = np.zeros((num_classes, num_classes), np.int64)
    self._topk_correct = dict.fromkeys(self.topk, 0)
    self._count = 0
    self._loss_sum = 0.0

  def update(self, counts: Mapping[str, np.ndarray]) -> None:
    """Adds one batch's counts (host arrays; jax arrays are pulled with np.asarray)."""
    confusion = np.asarray(counts["confusion"], np.int64)
    if confusion.shape != self._confusion.shape:
      raise ValueError(f"confusion must be {self._confusion.shape}, got {confusion.shape}.")
    count = int(np.asarray(counts["count"]))
    if int(confusion.sum()) != count:
      raise ValueError(
        f"Batch has {count} unmasked examples but only {int(confusion.sum())} land in the "
        f"confusion matrix: some unmasked labels are outside [0, {self.num_classes})."
      )
    self._confusion += confusion
    self._count += count
    # float64 on host: the float32 per-batch sums are small, the split total is not.
    self._loss_sum += float(np.asarray(counts["loss_sum"], np.float64))
    for k in self.topk:
      self._topk_correct[k] += int(np.asarray(counts[f"top{k}_correct"]))

  def confusion_matrix(self) -> np.ndarray:
    """int64 [C, C], rows = true class, cols = predicted class."""
    return self._confusion.copy()

  @property
  def count(self) -> int:
    return self._count

  def result(self) -> dict[str, float]:
    """All metrics over the examples accumulated so far.

    Keys: 'accuracy', 'top{k}', 'loss' (mean cross-entropy), 'num_examples',
    'precision_macro', 'recall_macro', 'f1_macro' and per class
    'precision/<name>', 'recall/<name>', 'f1/<name>'.

    Per-class values are 0 where undefined (zero_division=0). The macro
    averages run over the classes that occur in the labels or the predictions,
    which is what sklearn's `average='macro'` does without `labels=`; a class
    absent from both would otherwise drag the average down with a made-up 0.
    """
    if self._count == 0:
      raise ValueError("No (unmasked) examples were accumulated.")
    cm = self._confusion
    tp = np.diag(cm)
    true_total = cm.sum(axis=1)
    pred_total = cm.sum(axis=0)
    precision = _safe_div(tp, pred_total)
    recall = _safe_div(tp, true_total)
    # 2tp / (2tp + fp + fn) equals the harmonic mean of P and R where both are
    # defined and is 0 (not NaN) where tp == 0, as sklearn computes it.
    f1 = _safe_div(2 * tp, true_total + pred_total)
    present = (true_total + pred_total) > 0

    res = {
      "accuracy": float(tp.sum() / self._count),
      "loss": self._loss_sum / self._count,
      "num_examples": float(self._count),
      "precision_macro": float(precision[present].mean()),
      "recall_macro": float(recall[present].mean()),
      "f1_macro": float(f1[present].mean()),
    }
    for k in self.topk:
      res[f"top{k}"] = self._topk_correct[k] / self._count
    for i, name in enumerate(self.class_names):
      res[f"precision/{name}"] = float(precision[i])
      res[f"recall/{name}"] = float(recall[i])
      res[f"f1/{name}"] = float(f1[i])
    return res
