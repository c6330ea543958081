"""Baselines for semantic segmentation experiments (labels: 0 = background, k + 1 = class k)."""

from __future__ import annotations

import numpy as np

from research.baselines.base import BaselineContext, register
from research.metrics import segmentation


def _split_confusion(source, key: str, num_labels: int, predict, chunk: int = 256) -> np.ndarray:
  """int64 [K, K] of `predict(labels [b, H, W]) -> int [b, H, W]` against every target of
  `source` (batched reads where offered)."""
  confusion = np.zeros((num_labels, num_labels), np.int64)
  n = len(source)
  get_batch = getattr(source, "get_batch", None)
  for start in range(0, n, chunk):
    indices = np.arange(start, min(start + chunk, n))
    if get_batch is not None:
      labels = np.asarray(get_batch(indices)[key])
    else:
      labels = np.stack([np.asarray(source[int(i)][key]) for i in indices])
    confusion += segmentation.confusion_matrix(predict(labels), labels, num_labels)
  return confusion


@register("all_background")
def all_background(ctx: BaselineContext) -> dict[str, float]:
  """Predicts background for every pixel: the pixel accuracy (the background share)
  and mIoU (background IoU over 1 + the object classes present) a model must beat."""
  task = ctx.config.task
  num_labels = int(task.num_classes) + 1
  confusion = _split_confusion(ctx.data.raw(ctx.split), task.label_key, num_labels, np.zeros_like)
  result = segmentation.scores(confusion)
  result.pop("fg_miou", None)  # 0 by construction where present; not informative
  return result
