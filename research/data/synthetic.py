"""Synthetic data of any declared shapes and dtypes, for tests and smoke runs.

Learnable by construction: each example draws a latent class `z`; every
categorical feature (one declared with `num_classes`) is `z % num_classes`,
and every other feature is a fixed per-class prototype plus noise. The
prototypes depend only on `seed`, so train and test share the same
class -> data mapping (a model that fits train generalises to test); the
examples depend on `(seed, split)`.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from research.data.core import ArraySource, Feature

SPLITS = ("train", "validation", "test")
DEFAULT_FEATURES = {"image": ((8, 8, 1), "uint8"), "label": ((), "int32", 10)}


def to_feature(key: str, spec: Any) -> Feature:
  """`(shape, dtype)`, `(shape, dtype, num_classes)` or a `Feature` -> `Feature`."""
  if isinstance(spec, Feature):
    feature = spec
  else:
    if not isinstance(spec, (tuple, list)) or len(spec) not in (2, 3):
      raise ValueError(
        f"synthetic feature {key!r}: expected (shape, dtype) or "
        f"(shape, dtype, num_classes), got {spec!r}."
      )
    shape, dtype = spec[0], spec[1]
    num_classes = spec[2] if len(spec) == 3 else None
    if isinstance(shape, int):
      shape = (shape,)
    feature = Feature(tuple(int(s) for s in shape), str(np.dtype(dtype)), num_classes)
  dtype = np.dtype(feature.dtype)
  if any(s is None or s < 0 for s in feature.shape):
    raise ValueError(
      f"synthetic feature {key!r}: unknown (None) or negative dimension in {feature.shape}."
    )
  if feature.num_classes is not None:
    if dtype.kind not in "iu" or feature.num_classes < 1:
      raise ValueError(
        f"synthetic feature {key!r}: num_classes needs an integer dtype and "
        f"num_classes >= 1, got {dtype} and {feature.num_classes}."
      )
  elif dtype.kind not in "iufb":
    raise ValueError(
      f"synthetic feature {key!r}: dtype {dtype} not supported (int, uint, float or bool)."
    )
  return feature


def _seed_words(*parts: int | str) -> list[int]:
  """Stable integer seed words (crc32 of strings: `hash()` varies per process)."""
  return [zlib.crc32(p.encode()) if isinstance(p, str) else int(p) for p in parts]


def _dims(feature: Feature) -> tuple[int, ...]:
  """The shape of a feature `to_feature` accepted (every dimension known)."""
  dims = tuple(s for s in feature.shape if s is not None)
  assert len(dims) == len(feature.shape), feature
  return dims


def _values(
  feature: Feature,
  latent: np.ndarray,
  proto_rng: np.random.Generator,
  noise_rng: np.random.Generator,
  num_latent: int,
) -> np.ndarray:
  """`[n, *shape]` values of one non-categorical feature: prototype[latent] + noise."""
  dtype, shape, n = np.dtype(feature.dtype), _dims(feature), len(latent)
  if dtype.kind == "b":
    bits = proto_rng.random((num_latent, *shape)) < 0.5
    flips = noise_rng.random((n, *shape)) < 0.1
    return bits[latent] ^ flips
  if dtype.kind == "f":
    centres = proto_rng.standard_normal((num_latent, *shape))
    return (centres[latent] + 0.3 * noise_rng.standard_normal((n, *shape))).astype(dtype)
  info = np.iinfo(dtype)
  lo, hi = max(int(info.min), 0), min(int(info.max), 255)
  proto = proto_rng.integers(lo, hi + 1, (num_latent, *shape))
  noisy = proto[latent] + noise_rng.normal(0, 0.08 * (hi - lo), (n, *shape))
  return np.clip(np.rint(noisy), lo, hi).astype(dtype)


def synthetic(
  split: str, *, features: Mapping[str, Any] | None = None, num_examples: int = 64, seed: int = 0
) -> ArraySource:
  """`num_examples` examples with the declared features, deterministic per (seed, split).

  Args:
    split: one of 'train', 'validation', 'test'.
    features: `{key: (shape, dtype)}` or `{key: (shape, dtype, num_classes)}`;
      defaults to `{'image': ((8, 8, 1), 'uint8'), 'label': ((), 'int32', 10)}`.
    num_examples: number of examples (>= 1).
    seed: seeds the class prototypes (shared by all splits) and the examples.
  """
  if split not in SPLITS:
    raise ValueError(f"synthetic has splits {SPLITS}, got {split!r}.")
  if not isinstance(num_examples, int) or num_examples < 1:
    raise ValueError(f"synthetic: num_examples must be a positive int, got {num_examples!r}.")
  if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
    raise ValueError(f"synthetic: seed must be a non-negative int, got {seed!r}.")
  feats = {k: to_feature(k, v) for k, v in (features or DEFAULT_FEATURES).items()}
  if not feats:
    raise ValueError("synthetic: declare at least one feature.")
  num_latent = max([f.num_classes for f in feats.values() if f.num_classes] or [1])
  example_rng = np.random.default_rng(_seed_words(seed, "examples", split))
  latent = example_rng.integers(0, num_latent, num_examples)
  arrays = {}
  for key, f in feats.items():
    if f.num_classes is not None:
      arrays[key] = np.broadcast_to(
        (latent % f.num_classes).reshape((-1,) + (1,) * len(f.shape)), (num_examples, *_dims(f))
      ).astype(f.dtype)
    else:
      proto_rng = np.random.default_rng(_seed_words(seed, "prototype", key))
      noise_rng = np.random.default_rng(_seed_words(seed, "noise", split, key))
      arrays[key] = _values(f, latent, proto_rng, noise_rng, num_latent)
  return ArraySource(
    arrays,
    num_classes={k: f.num_classes for k, f in feats.items() if f.num_classes is not None},
    name=f"synthetic:{split}",
  )
