"""The 'detection' evaluator: CenterNet decoding, class-wise NMS, COCO mAP.

Per batch the model's maps are decoded on the device (3x3 peak extraction and
top-K, `research.models.detector.decode`, jitted once per setting); the host
drops detections below `score_threshold`, runs class-wise NMS on the rest, and
after the whole split scores every image with pycocotools
(`research.metrics.detection.coco_map`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

import jax
import numpy as np

from research.metrics import detection
from research.metrics.evaluators.base import HostBatch, PredictFn, require_outputs, to_host
from research.models import detector


@functools.cache
def jitted_decode(num_classes: int, max_detections: int) -> Callable:
  """One jitted `detector.decode` per (C, K), shared by every evaluator round."""
  return jax.jit(
    functools.partial(detector.decode, num_classes=num_classes, max_detections=max_detections)
  )


def postprocess(
  boxes: np.ndarray,
  scores: np.ndarray,
  classes: np.ndarray,
  *,
  score_threshold: float,
  nms_iou: float | None,
):
  """One image's decoded detections (boxes [K, 4], scores [K], classes [K]) ->
  those scoring >= `score_threshold` that survive class-wise NMS at IoU
  `nms_iou` (None: no NMS), by descending score."""
  keep = np.flatnonzero(scores >= score_threshold)
  boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
  if nms_iou is not None:
    keep = detection.batched_nms(boxes, scores, classes, nms_iou)
    boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
  return boxes, scores, classes


def ground_truth(boxes: np.ndarray, classes: np.ndarray):
  """One image's (boxes [n, 4], classes [n]) without padding rows (class -1)."""
  real = classes >= 0
  return boxes[real], classes[real]


class DetectionEvaluator:
  """COCO mAP@[.5:.95], mAP@0.5, mAP@0.75 and AR@{1,10,100} of a CenterNet model.

  Args:
    name: split name used as the key prefix, e.g. 'test'.
    batches_fn: () -> fresh iterable of host batches (with 'image' [b, H, W, c],
      `boxes_key` [b, M, 4] normalised (ymin, xmin, ymax, xmax), `classes_key`
      [b, M] (-1 padding) and a bool 'mask' [b]) covering the split once.
    num_classes: C.
    every_steps: evaluate every this many train steps; 0 = only at the end.
    max_detections: K peaks decoded per image (COCO counts at most 100).
    score_threshold: detections scoring below it are dropped before NMS.
    nms_iou: class-wise NMS IoU threshold; None = peaks only (CenterNet's own).
  """

  def __init__(
    self,
    name: str,
    batches_fn: Callable[[], Iterable[HostBatch]],
    *,
    num_classes: int,
    every_steps: int = 0,
    max_detections: int = 100,
    score_threshold: float = 0.01,
    nms_iou: float | None = 0.5,
    boxes_key: str = "boxes",
    classes_key: str = "classes",
    **unused,
  ):
    del unused  # e.g. topk from eval_config's defaults
    if every_steps < 0:
      raise ValueError(f"every_steps must be >= 0, got {every_steps}.")
    self.name, self.batches_fn, self.every_steps = name, batches_fn, int(every_steps)
    self.num_classes = int(num_classes)
    self.max_detections = int(max_detections)
    self.score_threshold = float(score_threshold)
    self.nms_iou = None if nms_iou is None else float(nms_iou)
    self.boxes_key, self.classes_key = boxes_key, classes_key

  def run(self, predict_fn: PredictFn) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Returns ({'<name>/mAP', '<name>/mAP50', '<name>/mAP75', '<name>/AR1', ...}, {})."""
    decode = jitted_decode(self.num_classes, self.max_detections)
    truth, found = [], []
    image_size: tuple[int, int] | None = None
    for batch in self.batches_fn():
      out = predict_fn(batch)
      require_outputs(out, ("logits", "image", "mask", self.boxes_key, self.classes_key), self.name)
      boxes, scores, classes = (to_host(x) for x in decode(out["logits"]))
      gt_boxes, gt_classes = to_host(out[self.boxes_key]), to_host(out[self.classes_key])
      mask = to_host(out["mask"]).astype(bool)
      height, width = np.shape(out["image"])[-3:-1]
      image_size = (int(height), int(width))
      for i in np.flatnonzero(mask):
        truth.append(ground_truth(gt_boxes[i], gt_classes[i]))
        found.append(
          postprocess(
            boxes[i],
            scores[i],
            classes[i],
            score_threshold=self.score_threshold,
            nms_iou=self.nms_iou,
          )
        )
    if image_size is None or not truth:
      raise ValueError(f"Evaluator {self.name!r}: batches_fn yielded no unmasked examples.")
    scores_ = detection.coco_map(truth, found, image_size, self.num_classes)
    return {f"{self.name}/{k}": v for k, v in scores_.items()}, {}
