"""Semantic segmentation metrics from one confusion matrix over every pixel of a split.

Convention (every segmentation piece of this codebase): `num_classes` object
classes plus background, so K = num_classes + 1 labels per pixel, 0 =
background, k + 1 = object class k. Target pixels outside [0, K) (e.g. -1, or
VOC's 255 'void' border) are ignored: they count nowhere.

* `batch_counts` (pure jnp, jit-able) reduces one batch to a K x K confusion
  matrix (rows = true label, columns = predicted), the summed per-pixel
  cross-entropy and the pixel count; padding examples contribute nothing.
* `scores(confusion)` derives, exactly over the split (host, int64 sums):
  - 'pixel_accuracy': correct pixels / pixels;
  - 'miou': mean over the labels PRESENT (in the target or the prediction,
    i.e. with a non-empty union) of IoU_c = TP_c / (TP_c + FP_c + FN_c);
    a label that occurs in neither has IoU 0/0 and is left out, as in VOC's
    and mmsegmentation's nan-mean;
  - 'mean_accuracy': mean over the labels present in the target of
    TP_c / (TP_c + FN_c) (per-class pixel recall);
  - 'fg_miou': 'miou' over the object labels only (background left out).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def batch_counts(
  logits: jax.Array, labels: jax.Array, mask: jax.Array, *, num_labels: int
) -> dict[str, jax.Array]:
  """Sufficient statistics of one batch.

  Args:
    logits: float [b, H, W, K] per-pixel scores (K = `num_labels`).
    labels: int [b, H, W] true labels in [0, K); others are ignored.
    mask: bool [b]; False marks padding examples.
    num_labels: K (static).

  Returns:
    {'confusion': int32 [K, K], 'loss_sum': float32 [] (cross-entropy summed
     over counted pixels), 'count': int32 [] (counted pixels)}.
  """
  if logits.ndim != 4 or logits.shape[-1] != num_labels:
    raise ValueError(f"logits must be [b, H, W, {num_labels}], got {logits.shape}.")
  if labels.shape != logits.shape[:3]:
    raise ValueError(f"labels must be {logits.shape[:3]}, got {labels.shape}.")
  labels = labels.astype(jnp.int32)
  valid = (labels >= 0) & (labels < num_labels) & mask.astype(bool)[:, None, None]
  safe = jnp.where(valid, labels, 0)
  pred = jnp.argmax(logits, -1).astype(jnp.int32)
  # Ignored pixels go to index K * K, which length=K*K drops.
  flat = jnp.where(valid, safe * num_labels + pred, num_labels * num_labels)
  confusion = jnp.bincount(flat.ravel(), length=num_labels * num_labels + 1)[:-1]
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), -1)
  ce = -jnp.take_along_axis(logp, safe[..., None], -1)[..., 0]
  return {
    "confusion": confusion.reshape(num_labels, num_labels).astype(jnp.int32),
    "loss_sum": jnp.where(valid, ce, 0.0).sum(),
    "count": valid.sum().astype(jnp.int32),
  }


def confusion_matrix(pred: np.ndarray, labels: np.ndarray, num_labels: int) -> np.ndarray:
  """int64 [K, K] (rows true, columns predicted) of int `pred` and `labels` of one shape;
  label pixels outside [0, K) are ignored (host numpy; for baselines and tests)."""
  pred, labels = np.asarray(pred).ravel(), np.asarray(labels).ravel()
  valid = (labels >= 0) & (labels < num_labels)
  index = labels[valid].astype(np.int64) * num_labels + pred[valid].astype(np.int64)
  return np.bincount(index, minlength=num_labels * num_labels).reshape(num_labels, num_labels)


def per_class_iou(confusion: np.ndarray) -> np.ndarray:
  """float64 [K]: IoU of each label, NaN where its union is empty."""
  confusion = np.asarray(confusion, np.int64)
  tp = np.diag(confusion).astype(np.float64)
  union = confusion.sum(0) + confusion.sum(1) - tp
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(union > 0, tp / union, np.nan)


def scores(confusion: np.ndarray, class_names: Sequence[str] | None = None) -> dict[str, float]:
  """The module docstring's metrics from int [K, K] `confusion` (label 0 = background).

  With `class_names` (K names), also 'iou/<name>' for each label present.
  """
  confusion = np.asarray(confusion, np.int64)
  total = confusion.sum()
  if total == 0:
    raise ValueError("Segmentation scores need at least one counted pixel.")
  tp = np.diag(confusion).astype(np.float64)
  iou = per_class_iou(confusion)
  in_target = confusion.sum(1)
  out = {
    "pixel_accuracy": float(tp.sum() / total),
    "miou": float(np.nanmean(iou)),
    "mean_accuracy": float(np.mean(tp[in_target > 0] / in_target[in_target > 0])),
  }
  if np.any(~np.isnan(iou[1:])):
    out["fg_miou"] = float(np.nanmean(iou[1:]))
  if class_names is not None:
    for name, value in zip(class_names, iou, strict=True):
      if not np.isnan(value):
        out[f"iou/{name}"] = float(value)
  return out


def label_names(class_names: Sequence[str] | None, num_classes: int) -> list[str]:
  """K = num_classes + 1 names: 'background' then the object classes' names
  (`class_names` may already include the background name, K long)."""
  if class_names is None:
    return ["background"] + [str(i) for i in range(num_classes)]
  names = [str(n) for n in class_names]
  if len(names) == num_classes:
    return ["background"] + names
  if len(names) == num_classes + 1:
    return names
  raise ValueError(
    f"{len(names)} class names for {num_classes} object classes (+ background); "
    f"give {num_classes} or {num_classes + 1}."
  )
