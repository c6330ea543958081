"""Real detection / segmentation data sets in the scene schema of `research.data.vision.scenes`.

So that a user with TFDS `coco`, `voc` or `oxford_iiit_pet` prepared runs the
same experiments (the U-Net, the detector) as on `fashion_mnist_scenes`, each
example is mapped to the same keys with fixed shapes (S = `canvas`, M =
`max_objects`):

  image uint8 [S, S, 3]; boxes float32 [M, 4] ((ymin, xmin, ymax, xmax) in [0, 1]
  of the canvas, padding rows 0); classes int32 [M] (-1 padding);
  num_objects int32 []; oxford_iiit_pet also segmentation_mask int32 [S, S].

Letterbox (`letterbox`): the image is resized, aspect ratio kept, so its
longer side is S (PIL bilinear, antialiased when shrinking), and placed at the
top-left of a zero canvas; the boxes move with it (y * h' / S, x * w' / S for
the resized h' x w'). Mask pixels of the padding are -1 (ignored by the
segmentation task and metrics: they are not image).

Objects beyond `max_objects` are dropped, keeping the data set's own order
(COCO's annotation order, VOC's XML order); `num_objects` counts those kept.
COCO crowd regions (`is_crowd`) are dropped first, as COCO's evaluation ignores
them. Box coordinates are clipped to [0, 1].

oxford_iiit_pet's trimap (1 = pet, 2 = background, 3 = border between them)
becomes the mask 0 = background (2), k + 1 = the pet's class k (1), -1 =
border (3; ambiguous, ignored like VOC's 'void' boundary), -1 for any other
value. Classes by option `labels`: 'pet' (one class: every pet is class 0),
'species' (cat 0 / dog 1) or 'breed' (37). The box is tight around the pet
and border pixels. TFDS ships only train / test; 'validation' is a seeded 10%
of the TFDS train split (plain shuffle, `holdout.carve_indices`), 'train' the
rest.

TFDS's `coco` builder code imports TensorFlow, so `coco` needs TensorFlow
installed besides the prepared data; `voc` and `oxford_iiit_pet` do not.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from research.data import holdout, tfds_source
from research.data.core import Feature

PET_LABELS = {"pet": 1, "species": 2, "breed": 37}
COMMON_OPTIONS = ("canvas", "max_objects", "download")


@dataclasses.dataclass(frozen=True)
class RealSet:
  """One TFDS data set and how its examples map to the scene schema."""

  tfds_name: str
  splits: tuple[str, ...]
  num_classes: int
  segmentation: bool
  how_to_get: str
  options: tuple[str, ...] = COMMON_OPTIONS
  defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)


REAL = {
  "coco": RealSet(
    "coco/2017",
    ("train", "validation"),
    80,
    False,
    "`tfds build coco/2017 --file_format=array_record` (needs TensorFlow and ~25 GB)",
    defaults={"canvas": 256, "max_objects": 32},
  ),
  "voc": RealSet(
    "voc/2007",
    ("train", "validation", "test"),
    20,
    False,
    "`tfds build voc/2007 --file_format=array_record`",
    defaults={"canvas": 256, "max_objects": 16},
  ),
  "oxford_iiit_pet": RealSet(
    "oxford_iiit_pet",
    ("train", "validation", "test"),
    1,
    True,
    "`tfds build oxford_iiit_pet --file_format=array_record`",
    options=COMMON_OPTIONS + ("labels", "validation_seed"),
    defaults={"canvas": 128, "max_objects": 1, "labels": "pet", "validation_seed": 0},
  ),
}


def features(name: str, canvas: int | None, max_objects: int | None, num_classes: int):
  """The example features of data set `name`."""
  out = {
    "image": Feature((canvas, canvas, 3), "uint8"),
    "boxes": Feature((max_objects, 4), "float32"),
    "classes": Feature((max_objects,), "int32", num_classes),
    "num_objects": Feature((), "int32"),
  }
  if REAL[name].segmentation:
    out["segmentation_mask"] = Feature((canvas, canvas), "int32", num_classes + 1)
  return out


def _resize(array: np.ndarray, height: int, width: int, nearest: bool) -> np.ndarray:
  """[h, w] or [h, w, c] uint8 -> [height, width(, c)] (PIL; nearest for label maps)."""
  from PIL import Image

  if array.ndim == 3 and array.shape[-1] == 1:
    return _resize(array[..., 0], height, width, nearest)[..., None]
  if array.ndim == 3:
    return np.stack([_resize(array[..., i], height, width, nearest) for i in range(3)], -1)
  image = Image.fromarray(np.ascontiguousarray(array))
  method = Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR
  return np.asarray(image.resize((width, height), method))


def letterbox(
  image: np.ndarray, canvas: int, *, nearest: bool = False, fill: int = 0
) -> tuple[np.ndarray, tuple[float, float]]:
  """`image` [h, w(, c)] resized (aspect kept, longer side `canvas`) onto a `fill`ed
  [canvas, canvas(, c)] at the top-left; also (h' / canvas, w' / canvas), the factors
  that map normalised box coordinates of `image` to the canvas."""
  h, w = image.shape[:2]
  scale = canvas / max(h, w)
  nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
  out = np.full((canvas, canvas) + image.shape[2:], fill, image.dtype)
  out[:nh, :nw] = _resize(image, nh, nw, nearest)
  return out, (nh / canvas, nw / canvas)


def place_boxes(
  boxes: np.ndarray, labels: np.ndarray, factors: tuple[float, float], max_objects: int
) -> dict[str, np.ndarray]:
  """boxes float [n, 4] (ymin, xmin, ymax, xmax in [0, 1] of the image) and int
  labels [n] -> the schema's padded 'boxes' [M, 4], 'classes' [M], 'num_objects'."""
  n = min(len(boxes), len(labels), max_objects)
  out_boxes = np.zeros((max_objects, 4), np.float32)
  out_classes = np.full((max_objects,), -1, np.int32)
  if n:
    fy, fx = factors
    b = np.clip(np.asarray(boxes[:n], np.float32).reshape(n, 4), 0.0, 1.0)
    out_boxes[:n] = b * np.array([fy, fx, fy, fx], np.float32)
    out_classes[:n] = np.asarray(labels[:n], np.int32)
  return {"boxes": out_boxes, "classes": out_classes, "num_objects": np.asarray(n, np.int32)}


def _pet_mask(trimap: np.ndarray, cls: int) -> np.ndarray:
  """oxford_iiit_pet trimap [h, w(, 1)] (1 pet, 2 background, 3 border) -> int32 labels."""
  trimap = np.asarray(trimap).reshape(trimap.shape[:2])
  out = np.full(trimap.shape, -1, np.int32)
  out[trimap == 2] = 0
  out[trimap == 1] = cls + 1
  return out


class RealSource:
  """`DataSource` mapping a TFDS split's examples (random access) to the scene schema.

  Args:
    name: a key of `REAL`.
    examples: random access TFDS examples (a `tfds.data_source` split, or any
      sequence of dicts in the same layout).
    canvas, max_objects: S and M of the schema.
    labels: oxford_iiit_pet's class scheme ('pet', 'species', 'breed').
    indices: the examples of `examples` to use (None: all).
  """

  def __init__(
    self,
    name: str,
    examples: Sequence[Mapping[str, Any]],
    *,
    canvas: int,
    max_objects: int,
    labels: str = "pet",
    indices: np.ndarray | None = None,
    split: str = "",
  ):
    self.spec = REAL[name]
    self.kind = name
    self._examples = examples
    self.canvas, self.max_objects, self.labels = int(canvas), int(max_objects), labels
    self._indices = None if indices is None else np.asarray(indices, np.int64)
    self.num_classes = PET_LABELS[labels] if name == "oxford_iiit_pet" else self.spec.num_classes
    self.features = features(name, self.canvas, self.max_objects, self.num_classes)
    self.name = f"{name}:{split}"
    self.class_names = _class_names(name, examples, labels, self.num_classes)

  def __len__(self) -> int:
    return len(self._examples) if self._indices is None else len(self._indices)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    n = len(self)
    if not -n <= index < n:
      raise IndexError(f"{self.name}: index {index} out of range for {n} examples.")
    index %= n
    example = self._examples[int(index if self._indices is None else self._indices[index])]
    image = np.asarray(example["image"], np.uint8)
    if image.ndim == 2 or image.shape[-1] == 1:  # a few VOC / COCO images are grey
      image = np.repeat(image.reshape(image.shape[:2] + (1,)), 3, -1)
    image, factors = letterbox(image, self.canvas)
    if self.kind == "oxford_iiit_pet":
      return self._pet(example, image)
    objects = example["objects"]
    boxes, labels = np.asarray(objects["bbox"]), np.asarray(objects["label"])
    if "is_crowd" in objects:
      n = min(len(boxes), len(labels))
      keep = ~np.asarray(objects["is_crowd"], bool)[:n]
      boxes, labels = boxes[:n][keep], labels[:n][keep]
    return {"image": image, **place_boxes(boxes, labels, factors, self.max_objects)}

  def _pet(self, example, image) -> dict[str, np.ndarray]:
    cls = {"pet": 0, "species": int(example["species"]), "breed": int(example["label"])}[
      self.labels
    ]
    mask = _pet_mask(np.asarray(example["segmentation_mask"]), cls)
    mask, factors = letterbox(mask, self.canvas, nearest=True, fill=-1)
    # Tight around the pet and its border, in the letterboxed mask's pixels.
    rows, cols = np.nonzero((mask > 0) | _border(example, self.canvas))
    out = {"image": image, "segmentation_mask": mask.astype(np.int32)}
    if len(rows):
      box = np.array([[rows.min(), cols.min(), rows.max() + 1, cols.max() + 1]]) / self.canvas
      out.update(place_boxes(box, np.array([cls]), (1.0, 1.0), self.max_objects))
    else:
      out.update(place_boxes(np.zeros((0, 4)), np.zeros((0,)), factors, self.max_objects))
    return out

  def __repr__(self) -> str:
    return f"RealSource({self.name!r}, n={len(self)}, canvas={self.canvas})"


def _border(example, canvas: int) -> np.ndarray:
  """bool [canvas, canvas]: the trimap's border (3) pixels, letterboxed."""
  trimap = np.asarray(example["segmentation_mask"])
  trimap = trimap.reshape(trimap.shape[:2])
  border, _ = letterbox((trimap == 3).astype(np.uint8), canvas, nearest=True)
  return border.astype(bool)


def _class_names(name: str, examples, labels: str, num_classes: int) -> list[str]:
  if name == "oxford_iiit_pet" and labels == "pet":
    return ["pet"]
  if name == "oxford_iiit_pet" and labels == "species":
    return ["cat", "dog"]
  info: Any = getattr(examples, "dataset_info", None)
  try:
    feature = (
      info.features["label"] if name == "oxford_iiit_pet" else info.features["objects"]["label"]
    )
    names = list(feature.names)
  except (AttributeError, KeyError, TypeError):
    names = []
  return names if len(names) == num_classes else [str(i) for i in range(num_classes)]


def check_options(name: str, options: Mapping[str, Any]) -> None:
  """ValueError naming a bad option of data set `name`."""
  if int(options["canvas"]) < 8:
    raise ValueError(f"{name} option canvas={options['canvas']} must be >= 8 pixels.")
  if int(options["max_objects"]) < 1:
    raise ValueError(f"{name} option max_objects={options['max_objects']} must be >= 1.")
  if name == "oxford_iiit_pet" and options["labels"] not in PET_LABELS:
    raise ValueError(
      f"oxford_iiit_pet option labels={options['labels']!r}; valid: {list(PET_LABELS)}."
    )


def load(name: str, split: str, data_dir: str | None, **options: Any) -> RealSource:
  """Data set `name`'s `split` from TFDS prepared data (or a download), in the scene schema.

  Raises:
    DataNotFoundError: not prepared and not downloadable, listing what was tried.
  """
  spec = REAL[name]
  download = bool(options.pop("download", True))
  o = {**spec.defaults, **options}
  check_options(name, o)
  tfds_split = "train" if (name == "oxford_iiit_pet" and split == "validation") else split
  tfds_dir = tfds_source.tfds_dir_for(spec.tfds_name.split("/")[0], data_dir)
  tried: list[str] = []
  examples = tfds_source.open_or_download(
    spec.tfds_name,
    tfds_dir,
    call=f"tfds.data_source({spec.tfds_name!r}, split={tfds_split!r}, data_dir={tfds_dir!r})",
    open_fn=lambda: tfds_source.open_prepared(spec.tfds_name, tfds_split, tfds_dir),
    download_fn=lambda: tfds_source.download_and_prepare(spec.tfds_name, tfds_split, tfds_dir),
    download=download,
    tried=tried,
  )
  if examples is None:
    raise tfds_source.not_found(spec.tfds_name, split, tried, spec.how_to_get)
  indices = None
  if name == "oxford_iiit_pet" and split != "test":
    train, val = holdout.carve_indices(None, len(examples), 0.1, int(o["validation_seed"]))
    indices = val if split == "validation" else train
  return RealSource(
    name,
    examples,
    canvas=o["canvas"],
    max_objects=o["max_objects"],
    labels=o.get("labels", "pet"),
    indices=indices,
    split=split,
  )
