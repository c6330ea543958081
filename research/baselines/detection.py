"""A trivial detection baseline: every connected blob of bright pixels is one object.

On scenes of objects on a black canvas (`fashion_mnist_scenes`) thresholding
the image finds exactly the object pixels, so the only things a learned
detector can add are splitting touching or overlapping objects, joining an
object's disconnected parts, and naming the class. Scored with the same COCO
evaluation (`research.metrics.detection.coco_map`) on the same split as the
model.
"""

from __future__ import annotations

import numpy as np

from research.baselines.base import BaselineContext, register
from research.core import lazy
from research.metrics import detection

with lazy.imports():
  from scipy import ndimage

CLASSIFIERS = ("majority", "nearest_mean")
# Side of the square a crop is resampled to for the nearest-class-mean classifier.
_CROP = 16


def components(image: np.ndarray, threshold: float, min_area: int = 1):
  """Boxes of the 8-connected components of `image` [H, W] or [H, W, c] (max over
  channels) >= `threshold`.

  Returns:
    boxes float32 [n, 4] (ymin, xmin, ymax, xmax) normalised to [0, 1], pixel
    edges (rows r0..r1 -> r0 / H, (r1 + 1) / H); areas int64 [n] (pixels of
    each component); only components of at least `min_area` pixels.
  """
  image = np.asarray(image)
  if image.ndim == 3:
    image = image.max(axis=-1)
  height, width = image.shape
  labels, n = ndimage.label(image >= threshold, structure=np.ones((3, 3), bool))
  areas = np.bincount(labels.reshape(-1), minlength=n + 1)[1:]
  boxes = [
    (s[0].start / height, s[1].start / width, s[0].stop / height, s[1].stop / width)
    for s in ndimage.find_objects(labels)
  ]
  keep = areas >= min_area
  return np.asarray(boxes, np.float32).reshape(-1, 4)[keep], areas[keep]


def crop(image: np.ndarray, box: np.ndarray) -> np.ndarray:
  """The normalised `box` of `image` [H, W(, c)] resampled (nearest) to float
  [_CROP * _CROP], scaled to unit length (so brightness does not decide the class)."""
  image = np.asarray(image, np.float64)
  if image.ndim == 3:
    image = image.max(axis=-1)
  height, width = image.shape
  y0, x0 = int(box[0] * height), int(box[1] * width)
  y1 = max(int(np.rint(box[2] * height)), y0 + 1)
  x1 = max(int(np.rint(box[3] * width)), x0 + 1)
  rows = y0 + (np.arange(_CROP) * (y1 - y0)) // _CROP
  cols = x0 + (np.arange(_CROP) * (x1 - x0)) // _CROP
  patch = image[rows][:, cols].reshape(-1)
  return patch / max(float(np.linalg.norm(patch)), 1e-8)


def fit_classifier(source, num_classes: int, classifier: str, fit_scenes: int):
  """crop [_CROP**2] -> class, from the ground-truth objects of the first
  `fit_scenes` training scenes: the most frequent class ('majority'), or the
  class whose mean crop is nearest ('nearest_mean')."""
  if classifier not in CLASSIFIERS:
    raise ValueError(f"classifier must be one of {CLASSIFIERS}, got {classifier!r}.")
  sums = np.zeros((num_classes, _CROP * _CROP))
  counts = np.zeros(num_classes, np.int64)
  for i in range(min(int(fit_scenes), len(source))):
    ex = source[i]
    for box, cls in zip(ex["boxes"], ex["classes"]):
      if cls < 0:
        continue
      counts[cls] += 1
      if classifier == "nearest_mean":
        sums[cls] += crop(ex["image"], box)
  if counts.sum() == 0:
    raise ValueError("connected_components baseline: the training scenes hold no objects.")
  if classifier == "majority":
    majority = int(np.argmax(counts))
    return lambda _: majority
  seen = counts > 0
  means = sums[seen] / counts[seen, None]
  names = np.flatnonzero(seen)
  return lambda x: int(names[np.argmin(((means - x) ** 2).sum(-1))])


@register("connected_components")
def connected_components(
  ctx: BaselineContext,
  threshold: float = 16,
  min_area: int = 1,
  classifier: str = "majority",
  fit_scenes: int = 2000,
) -> dict[str, float]:
  """Boxes of the image's connected components (pixels >= `threshold` in the raw
  image's units, 0..255 for the scenes; 8-connectivity), score = the
  component's area in pixels, class from `classifier` ('majority': the
  training objects' most frequent class; 'nearest_mean': the nearest mean crop
  of `fit_scenes` training scenes). Returns the COCO metrics of
  `research.metrics.detection.coco_map` (keys 'mAP', 'mAP50', ...).
  """
  num_classes = int(ctx.config.task.num_classes)
  classify = fit_classifier(ctx.data.train_source(), num_classes, classifier, fit_scenes)
  source = ctx.data.raw(ctx.split)
  truth, found = [], []
  image_size = None
  for i in range(len(source)):
    ex = source[i]
    image_size = np.shape(ex["image"])[:2]
    real = np.asarray(ex["classes"]) >= 0
    truth.append((np.asarray(ex["boxes"])[real], np.asarray(ex["classes"])[real]))
    boxes, areas = components(ex["image"], threshold, min_area)
    classes = np.asarray([classify(crop(ex["image"], b)) for b in boxes], np.int64)
    found.append((boxes, areas.astype(np.float64), classes))
  if image_size is None:
    raise ValueError(f"connected_components baseline: split {ctx.split!r} is empty.")
  return detection.coco_map(truth, found, (int(image_size[0]), int(image_size[1])), num_classes)
