"""Baselines for any classification experiment."""

from __future__ import annotations

import numpy as np

from research.baselines.base import BaselineContext, register


def labels_of(source, key: str, chunk: int = 65536) -> np.ndarray:
  """All values of `key` in a source, int [len(source)] (batched reads where offered)."""
  n = len(source)
  get_batch = getattr(source, "get_batch", None)
  if get_batch is None:
    return np.asarray([source[i][key] for i in range(n)])
  return np.concatenate(
    [np.asarray(get_batch(np.arange(s, min(s + chunk, n)))[key]) for s in range(0, n, chunk)]
    or [np.zeros((0,), np.int64)]
  )


@register("majority_class")
def majority_class(ctx: BaselineContext) -> dict[str, float]:
  """Predicts the training split's most frequent label for every example: the
  accuracy any model must beat before its number means anything."""
  key = ctx.config.task.label_key
  train = labels_of(ctx.data.train_source(), key)
  values, counts = np.unique(train, return_counts=True)
  majority = values[np.argmax(counts)]
  labels = labels_of(ctx.data.raw(ctx.split), key)
  return {"accuracy": float(np.mean(labels == majority))}
