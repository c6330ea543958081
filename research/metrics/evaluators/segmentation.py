"""The 'segmentation' evaluator: exact confusion-matrix mIoU and pixel accuracy over a split."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence

import jax
import numpy as np

from research.metrics import segmentation
from research.metrics.evaluators.base import HostBatch, PredictFn, require_outputs, to_host


@functools.cache
def _jitted_counts(num_labels: int) -> Callable[..., dict]:
  """One jitted `batch_counts` per K, shared by every evaluator (no recompiles per round)."""
  return jax.jit(functools.partial(segmentation.batch_counts, num_labels=num_labels))


class SegmentationEvaluator:
  """Per-pixel labels: mIoU, pixel accuracy, mean class accuracy, loss, per-class IoU.

  Args:
    name: split name used as the key prefix, e.g. 'test'.
    batches_fn: () -> fresh iterable of host batches covering the split once,
      with a bool 'mask' [b] (False = padding example).
    num_classes: object classes; the model predicts K = num_classes + 1 labels
      per pixel, 0 = background (`research.metrics.segmentation`).
    every_steps: evaluate every this many train steps; 0 = only at the end.
    class_names: the object classes' names (num_classes) or all K names.
    label_key: key of the int [b, H, W] target labels in predict_fn's output.
    topk: accepted for the shared eval config, unused.
  """

  def __init__(
    self,
    name: str,
    batches_fn: Callable[[], Iterable[HostBatch]],
    *,
    num_classes: int,
    every_steps: int = 0,
    class_names: Sequence[str] | None = None,
    label_key: str = "segmentation_mask",
    topk: Sequence[int] = (),
  ):
    del topk
    if every_steps < 0:
      raise ValueError(f"every_steps must be >= 0, got {every_steps}.")
    self.name = name
    self.every_steps = int(every_steps)
    self.batches_fn = batches_fn
    self.num_labels = int(num_classes) + 1
    self.class_names = segmentation.label_names(class_names, int(num_classes))
    self.label_key = label_key
    self._counts_fn = _jitted_counts(self.num_labels)

  def run(self, predict_fn: PredictFn) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Returns ({'<name>/miou', '<name>/pixel_accuracy', '<name>/mean_accuracy',
    '<name>/fg_miou', '<name>/loss', '<name>/iou/<label>'...},
    {'<name>/confusion_matrix': int64 [K, K]})."""
    confusion = np.zeros((self.num_labels, self.num_labels), np.int64)
    loss_sum, count = 0.0, 0
    for batch in self.batches_fn():
      out = predict_fn(batch)
      require_outputs(out, ("logits", self.label_key, "mask"), self.name)
      counts = jax.tree.map(
        to_host, self._counts_fn(out["logits"], out[self.label_key], out["mask"])
      )
      confusion += counts["confusion"].astype(np.int64)
      loss_sum += float(counts["loss_sum"])
      count += int(counts["count"])
    if count == 0:
      raise ValueError(f"Evaluator {self.name!r}: batches_fn yielded no counted pixels.")
    result = segmentation.scores(confusion, self.class_names)
    result["loss"] = loss_sum / count
    scalars = {f"{self.name}/{k}": v for k, v in result.items()}
    return scalars, {f"{self.name}/confusion_matrix": confusion}
