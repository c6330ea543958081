"""scikit-learn's 8x8 digits, which ship inside the sklearn package (no download).

1797 images with values 0..16; split with a seeded stratified 80/20 split into
'train' (1437) and 'test' (360) so every run sees the same partition.
"""

from __future__ import annotations

import functools

import numpy as np

from research.data.core import ArraySource

SPLITS = ("train", "test")


@functools.lru_cache(maxsize=1)
def _digits_splits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """`{split: (uint8 [N, 8, 8, 1], int32 [N])}`, computed once per process."""
  from sklearn.datasets import load_digits
  from sklearn.model_selection import train_test_split

  digits = load_digits()
  # 0..16 -> 0..255 with rounding, so ops written for uint8 images apply unchanged.
  images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
  labels = digits.target.astype(np.int32)
  x_train, x_test, y_train, y_test = train_test_split(
    images, labels, test_size=0.2, random_state=0, stratify=labels
  )
  for a in (x_train, x_test, y_train, y_test):
    a.setflags(write=False)  # shared by every source from this cache
  return {"train": (x_train, y_train), "test": (x_test, y_test)}


def digits(split: str) -> ArraySource:
  """Digits `split` as `{'image': uint8 [8, 8, 1], 'label': int32 []}` examples."""
  if split not in SPLITS:
    raise ValueError(f"digits has splits {SPLITS}, got {split!r}.")
  images, labels = _digits_splits()[split]
  source = ArraySource(
    {"image": images, "label": labels}, num_classes={"label": 10}, name=f"digits:{split}"
  )
  source.class_names = [str(i) for i in range(10)]
  return source
