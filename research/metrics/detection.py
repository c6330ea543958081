"""Object detection: box IoU, class-wise NMS, and COCO-protocol mAP with pycocotools.

mAP is the COCO evaluation (Lin et al. 2014; pycocotools' `COCOeval`, the
reference implementation): per class and IoU threshold, average precision
over 101 recall points of the interpolated precision-recall curve, then the
mean over classes that have ground truth; 'mAP' averages the ten IoU thresholds
0.50:0.05:0.95, 'mAP50' is the one at 0.5 (PASCAL VOC's threshold, with COCO's
interpolation), at most 100 detections per image. Boxes arrive as the data
layer writes them, (ymin, xmin, ymax, xmax) normalised to [0, 1] (TFDS bbox),
and become COCO's [x, y, width, height] in pixels of the image here.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np

from research.core import lazy

with lazy.imports():
  from pycocotools import coco, cocoeval

# COCOeval.stats positions (its summarize() order).
_STATS = {"mAP": 0, "mAP50": 1, "mAP75": 2, "AR1": 6, "AR10": 7, "AR100": 8}
METRICS = tuple(_STATS)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """IoU of boxes a [n, 4] and b [m, 4] ((ymin, xmin, ymax, xmax), any units) -> [n, m]."""
  a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
  top = np.maximum(a[:, None, 0], b[None, :, 0])
  left = np.maximum(a[:, None, 1], b[None, :, 1])
  bottom = np.minimum(a[:, None, 2], b[None, :, 2])
  right = np.minimum(a[:, None, 3], b[None, :, 3])
  inter = np.clip(bottom - top, 0, None) * np.clip(right - left, 0, None)
  area = lambda x: np.clip(x[:, 2] - x[:, 0], 0, None) * np.clip(x[:, 3] - x[:, 1], 0, None)
  union = area(a)[:, None] + area(b)[None, :] - inter
  return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.5) -> np.ndarray:
  """Greedy non-maximum suppression: indices (int64, by descending score) of the
  boxes [n, 4] kept, dropping each box whose IoU with a kept, higher-scoring box
  exceeds `iou_threshold`. Ties in score keep the lower index first."""
  order = np.argsort(-np.asarray(scores), kind="stable")
  boxes = np.asarray(boxes)[order]
  iou = box_iou(boxes, boxes)
  keep: list[int] = []
  suppressed = np.zeros(len(order), bool)
  for i in range(len(order)):
    if suppressed[i]:
      continue
    keep.append(i)
    suppressed |= iou[i] > iou_threshold
  return order[np.asarray(keep, np.int64)]


def batched_nms(
  boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_threshold: float = 0.5
) -> np.ndarray:
  """`nms` within each class (boxes of different classes never suppress each
  other): the kept indices, by descending score."""
  classes = np.asarray(classes)
  kept = [
    np.flatnonzero(classes == c)[nms(boxes[classes == c], scores[classes == c], iou_threshold)]
    for c in np.unique(classes)
  ]
  if not kept:
    return np.zeros((0,), np.int64)
  keep = np.concatenate(kept)
  return keep[np.argsort(-np.asarray(scores)[keep], kind="stable")]


def _xywh(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
  """(ymin, xmin, ymax, xmax) in [0, 1] [n, 4] -> COCO [x, y, w, h] in pixels [n, 4]."""
  b = np.asarray(boxes, np.float64).reshape(-1, 4)
  return np.stack(
    [b[:, 1] * width, b[:, 0] * height, (b[:, 3] - b[:, 1]) * width, (b[:, 2] - b[:, 0]) * height],
    axis=1,
  )


def coco_map(
  ground_truth: Sequence[tuple[np.ndarray, np.ndarray]],
  detections: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
  image_size: tuple[int, int],
  num_classes: int,
) -> dict[str, float]:
  """COCO bbox evaluation of a set of images.

  Args:
    ground_truth: per image (boxes [n_i, 4] normalised (ymin, xmin, ymax, xmax),
      classes int [n_i]); padding rows must already be removed.
    detections: per image, same order (boxes [k_i, 4] as above, scores [k_i],
      classes int [k_i]); k_i may be 0.
    image_size: (height, width) in pixels, to express boxes as COCO does.
    num_classes: C; classes are 0..C-1.

  Returns:
    {'mAP' (IoU 0.50:0.95), 'mAP50', 'mAP75', 'AR1', 'AR10', 'AR100'} in [0, 1];
    0.0 for all when there are no detections at all.

  Raises:
    ValueError: the lists differ in length or there is no ground-truth box.
  """
  if len(ground_truth) != len(detections):
    raise ValueError(f"{len(ground_truth)} ground-truth images but {len(detections)} detected.")
  height, width = image_size
  images: list[dict] = []
  annotations: list[dict] = []
  results: list[dict] = []
  for i, (boxes, classes) in enumerate(ground_truth):
    images.append({"id": i + 1, "height": height, "width": width})
    for box, cls in zip(_xywh(boxes, height, width), np.asarray(classes).reshape(-1)):
      annotations.append(
        {
          "id": len(annotations) + 1,
          "image_id": i + 1,
          "category_id": int(cls) + 1,
          "bbox": [float(v) for v in box],
          "area": float(box[2] * box[3]),
          "iscrowd": 0,
        }
      )
  if not annotations:
    raise ValueError("coco_map: no ground-truth boxes; mAP is undefined.")
  for i, (boxes, scores, classes) in enumerate(detections):
    for box, score, cls in zip(
      _xywh(boxes, height, width), np.asarray(scores).reshape(-1), np.asarray(classes).reshape(-1)
    ):
      results.append(
        {
          "image_id": i + 1,
          "category_id": int(cls) + 1,
          "bbox": [float(v) for v in box],
          "score": float(score),
        }
      )
  if not results:  # COCO.loadRes cannot take an empty list; nothing detected = nothing found
    return dict.fromkeys(METRICS, 0.0)
  gt = coco.COCO()
  gt.dataset = {
    "images": images,
    "annotations": annotations,
    "categories": [{"id": k + 1, "name": str(k)} for k in range(num_classes)],
  }
  # pycocotools prints progress and its summary table; the numbers come back as values.
  with contextlib.redirect_stdout(io.StringIO()):
    gt.createIndex()
    dt = gt.loadRes(results)
    ev = cocoeval.COCOeval(gt, dt, "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
  # -1 is COCOeval's "no ground truth in this area range"; it cannot occur for 'all'.
  return {k: max(float(ev.stats[i]), 0.0) for k, i in _STATS.items()}
