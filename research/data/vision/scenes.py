"""Scenes of several real objects on one canvas, for segmentation and detection.

No real detection data set can be fetched on the machines this codebase is
developed on, so `fashion_mnist_scenes` composes real Fashion-MNIST (or MNIST,
or scikit-learn digits) images into scenes with boxes, classes and per-pixel
masks. Each scene is made from its index alone (a per-index seeded generator),
lazily: any number of scenes costs nothing until read, random access works, and
the same (seed, split, index) gives the same scene in every run on every
machine (only integer draws and elementwise float64 arithmetic, no BLAS).

How one scene is made (`compose`):

1. Draw `n` uniformly in [min_objects, max_objects].
2. For each object: an image drawn uniformly from the split's object pool,
   resized (bilinear, half-pixel centres) to a square side drawn uniformly in
   [min_size, max_size] pixels, placed at a uniform position fully inside the
   canvas. Its pixels are those of the resized image >= `MASK_THRESHOLD` (16 of
   255); they overwrite the canvas (later objects occlude earlier ones).
   A placement that would leave an earlier object with less than
   `MIN_VISIBLE` (half) of its pixels visible is redrawn, up to `PLACEMENT_TRIES`
   times; after that the object is left out, so `num_objects` may be below `n`
   (rare with the defaults: 64x64, at most 6 objects of 16..40 pixels).
3. The mask holds, per pixel, 0 for background or k + 1 for the Fashion-MNIST
   class k of the object visible there; every image pixel that is not
   background in the mask is an object pixel and vice versa.
4. Boxes are tight around each object's VISIBLE pixels (COCO's convention),
   as TFDS bbox features: (ymin, xmin, ymax, xmax) normalised to [0, 1] by the
   canvas side, pixel edges (a box around pixel rows r0..r1 spans r0 / S to
   (r1 + 1) / S).

Where the objects come from (no image is shared between splits):

* 'train' scenes: the object source's training images minus a held-out part;
* 'validation' scenes: that held-out part (`holdout_fraction` of the training
  images, stratified by class, seeded with `holdout_seed`, as
  `research.data.holdout` carves a validation split);
* 'test' scenes: the object source's test split only. The test scenes are
  fixed: they depend only on the options (seed default 0), never on the run.

Example (S = canvas, M = max_objects):
  image uint8 [S, S, 1] (0..255, like the 'fashion_mnist' source's image);
  segmentation_mask int32 [S, S] (0 background, k + 1 class k; not named "mask",
    which the eval pipeline reserves for its padding flags; TFDS oxford_iiit_pet's name);
  boxes float32 [M, 4] ((ymin, xmin, ymax, xmax) in [0, 1]; padding rows 0);
  classes int32 [M] (class k of each box; -1 padding);
  num_objects int32 [] (rows of boxes/classes in use; the first ones).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from research.data import holdout
from research.data.core import DataSource, Feature

SPLITS = ("train", "validation", "test")
OBJECT_SOURCES = ("fashion_mnist", "mnist", "digits")
OPTIONS = (
  "objects",
  "canvas",
  "min_objects",
  "max_objects",
  "min_size",
  "max_size",
  "train_scenes",
  "validation_scenes",
  "test_scenes",
  "seed",
  "holdout_fraction",
  "holdout_seed",
  "download",
)
DEFAULTS: dict[str, Any] = {
  "objects": "fashion_mnist",
  "canvas": 64,
  "min_objects": 1,
  "max_objects": 6,
  "min_size": 16,
  "max_size": 40,
  "train_scenes": 20000,
  "validation_scenes": 1000,
  "test_scenes": 1000,
  "seed": 0,
  "holdout_fraction": 0.1,
  "holdout_seed": 0,
}
NUM_CLASSES = 10  # object classes; the mask has NUM_CLASSES + 1 values with background

# A resized object's pixel belongs to the object when its value is >= this (of 255).
MASK_THRESHOLD = 16
# Every earlier object keeps at least this share of its pixels visible.
MIN_VISIBLE = 0.5
PLACEMENT_TRIES = 10
# Mixed into each scene's seed so the splits never share a random stream.
_SPLIT_CODE = {"train": 0, "validation": 1, "test": 2}


def features(canvas: int | None, max_objects: int | None) -> dict[str, Feature]:
  """The example features for a `canvas` side and `max_objects` (None: varies)."""
  return {
    "image": Feature((canvas, canvas, 1), "uint8"),
    "segmentation_mask": Feature((canvas, canvas), "int32", NUM_CLASSES + 1),
    "boxes": Feature((max_objects, 4), "float32"),
    "classes": Feature((max_objects,), "int32", NUM_CLASSES),
    "num_objects": Feature((), "int32"),
  }


def resize_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
  """float64 [height, width] from [h, w]: bilinear, half-pixel centres, edges clamped.

  Elementwise arithmetic only, so the result is bit-identical on every machine.
  """
  image = np.asarray(image, np.float64)
  h, w = image.shape

  def axis(n_out: int, n_in: int):
    pos = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    pos = np.clip(pos, 0, n_in - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, pos - lo

  y0, y1, wy = axis(height, h)
  x0, x1, wx = axis(width, w)
  top = image[y0][:, x0] * (1 - wx) + image[y0][:, x1] * wx
  bottom = image[y1][:, x0] * (1 - wx) + image[y1][:, x1] * wx
  return top * (1 - wy[:, None]) + bottom * wy[:, None]


def compose(
  rng: np.random.Generator,
  images: np.ndarray,
  labels: np.ndarray,
  *,
  canvas: int,
  min_objects: int,
  max_objects: int,
  min_size: int,
  max_size: int,
) -> dict[str, np.ndarray]:
  """One scene (the module docstring's steps) from object `images` uint8 [N, h, w(, 1)]
  and their `labels` int [N], drawing everything from `rng`."""
  n = int(rng.integers(min_objects, max_objects + 1))
  image = np.zeros((canvas, canvas), np.uint8)
  owner = np.full((canvas, canvas), -1, np.int64)  # index of the object visible there
  areas: list[int] = []
  classes: list[int] = []
  for _ in range(n):
    which = int(rng.integers(len(images)))
    size = int(rng.integers(min_size, max_size + 1))
    patch = resize_bilinear(images[which].reshape(images.shape[1:3]), size, size)
    pixels = np.rint(patch).clip(0, 255).astype(np.uint8)
    inside = pixels >= MASK_THRESHOLD
    area = int(inside.sum())
    if area == 0:
      continue
    for _ in range(PLACEMENT_TRIES):
      top = int(rng.integers(canvas - size + 1))
      left = int(rng.integers(canvas - size + 1))
      window = owner[top : top + size, left : left + size]
      covered = np.bincount(window[inside & (window >= 0)], minlength=len(areas))
      visible = np.bincount(owner[owner >= 0], minlength=len(areas)) - covered
      if all(visible[k] >= MIN_VISIBLE * areas[k] for k in range(len(areas))):
        window[inside] = len(areas)
        image[top : top + size, left : left + size][inside] = pixels[inside]
        areas.append(area)
        classes.append(int(labels[which]))
        break
  return _annotate(image, owner, np.asarray(classes, np.int32), canvas, max_objects)


def _annotate(image, owner, classes, canvas: int, max_objects: int) -> dict[str, np.ndarray]:
  """The example dict from the composed image, owner map int [S, S] (-1 none) and the
  placed objects' `classes` int32 [k]."""
  k = len(classes)
  mask = np.where(owner >= 0, classes[np.maximum(owner, 0)] + 1 if k else 0, 0).astype(np.int32)
  boxes = np.zeros((max_objects, 4), np.float32)
  out_classes = np.full((max_objects,), -1, np.int32)
  for i in range(k):
    rows, cols = np.nonzero(owner == i)
    boxes[i] = (rows.min(), cols.min(), rows.max() + 1, cols.max() + 1)
    out_classes[i] = classes[i]
  boxes /= canvas
  return {
    "image": image[..., None],
    "segmentation_mask": mask,
    "boxes": boxes,
    "classes": out_classes,
    "num_objects": np.int32(k),
  }


class SceneSource:
  """`num_scenes` scenes composed from object `images` uint8 [N, h, w, 1] / `labels` int [N].

  Scene `i` is `compose` with `np.random.default_rng([seed, split code, i])`.
  """

  def __init__(
    self,
    images: np.ndarray,
    labels: np.ndarray,
    num_scenes: int,
    *,
    split: str,
    seed: int,
    canvas: int,
    min_objects: int,
    max_objects: int,
    min_size: int,
    max_size: int,
    name: str = "scenes",
    class_names=None,
  ):
    self.images, self.labels = images, np.asarray(labels)
    self.num_scenes, self.split, self.seed = int(num_scenes), split, int(seed)
    self.layout = {
      "canvas": int(canvas),
      "min_objects": int(min_objects),
      "max_objects": int(max_objects),
      "min_size": int(min_size),
      "max_size": int(max_size),
    }
    self.name = name
    self.features = features(int(canvas), int(max_objects))
    if class_names is not None:
      self.class_names = list(class_names)

  def __len__(self) -> int:
    return self.num_scenes

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    index = int(index)
    if not -self.num_scenes <= index < self.num_scenes:
      raise IndexError(f"{self.name}: index {index} out of range for {self.num_scenes} scenes.")
    index %= self.num_scenes
    rng = np.random.default_rng([self.seed, _SPLIT_CODE[self.split], index])
    return compose(rng, self.images, self.labels, **self.layout)

  def get_batch(self, indices) -> dict[str, np.ndarray]:
    """`{key: [b, ...]}` for int `indices` `[b]`."""
    scenes = [self[int(i)] for i in np.asarray(indices).reshape(-1)]
    return {k: np.stack([s[k] for s in scenes]) for k in self.features}

  def __repr__(self) -> str:
    return f"SceneSource({self.name!r}, n={self.num_scenes}, {self.layout})"


def check_options(options: dict[str, Any]) -> None:
  """ValueError naming the option when a scene option is out of range."""
  o = options
  if o["objects"] not in OBJECT_SOURCES:
    raise ValueError(
      f"fashion_mnist_scenes option objects={o['objects']!r}; valid: {list(OBJECT_SOURCES)}."
    )
  if not 1 <= o["min_objects"] <= o["max_objects"]:
    raise ValueError(
      "fashion_mnist_scenes needs 1 <= min_objects <= max_objects, got "
      f"min_objects={o['min_objects']}, max_objects={o['max_objects']}."
    )
  if not 1 <= o["min_size"] <= o["max_size"] <= o["canvas"]:
    raise ValueError(
      "fashion_mnist_scenes needs 1 <= min_size <= max_size <= canvas, got "
      f"min_size={o['min_size']}, max_size={o['max_size']}, canvas={o['canvas']}."
    )
  for split in SPLITS:
    if int(o[f"{split}_scenes"]) < 1:
      raise ValueError(f"fashion_mnist_scenes option {split}_scenes must be >= 1.")
  holdout.check_fraction(o["holdout_fraction"])


@functools.lru_cache(maxsize=4)
def _object_pool(objects: str, split: str, data_dir: str | None, download: bool):
  """(uint8 [N, h, w, 1], int32 [N], class names) of the object source's `split`."""
  if objects == "digits":
    from research.data.vision import digits

    source: DataSource = digits.digits(split)
  else:
    from research.data.vision import sources as vision_sources

    source = vision_sources.load(objects, split, data_dir, download=download)
  if hasattr(source, "column"):
    images, labels = np.asarray(source.column("image")), np.asarray(source.column("label"))
  else:
    examples = [source[i] for i in range(len(source))]
    images = np.stack([e["image"] for e in examples])
    labels = np.asarray([e["label"] for e in examples])
  images.setflags(write=False)
  return images, labels.astype(np.int32), list(getattr(source, "class_names", []))


def scenes(split: str, data_dir: str | None = None, **options: Any) -> SceneSource:
  """The `split` ('train' | 'validation' | 'test') scenes; options as `DEFAULTS`."""
  if split not in SPLITS:
    raise ValueError(f"fashion_mnist_scenes has splits {SPLITS}, got {split!r}.")
  download = bool(options.pop("download", True))
  o = {**DEFAULTS, **options}
  check_options(o)
  images, labels, names = _object_pool(
    o["objects"], "test" if split == "test" else "train", data_dir, download
  )
  if split != "test":
    train, val = holdout.carve_indices(
      labels, len(labels), o["holdout_fraction"], o["holdout_seed"]
    )
    keep = val if split == "validation" else train
    images, labels = images[keep], labels[keep]
  return SceneSource(
    images,
    labels,
    o[f"{split}_scenes"],
    split=split,
    seed=o["seed"],
    canvas=o["canvas"],
    min_objects=o["min_objects"],
    max_objects=o["max_objects"],
    min_size=o["min_size"],
    max_size=o["max_size"],
    name=f"fashion_mnist_scenes:{split}({o['objects']} objects)",
    class_names=names or None,
  )
