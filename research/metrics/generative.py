"""Sample-quality metrics of a generative model, in a classifier's feature space.

  fid(real, fake)                    Frechet distance of Gaussians fitted to the
                                     two feature sets (Heusel et al. 2017)
  precision_recall(real, fake, k)    k-NN manifold precision and recall
                                     (Kynkaenniemi et al. 2019)
  ClassifierFeatures(config, vars)   uint8 images -> a trained classifier's
                                     penultimate activations

FID is usually computed in Inception-v3 pool features; those weights cannot be
downloaded here, and Inception-FIDs of 28x28 grey images are dominated by
resizing artefacts anyway, so the features are those of a classifier trained by
this codebase on the same data. The numbers are therefore comparable only with
FIDs in the same features (same classifier run): the train-vs-test FID of real
images is the floor to read them against.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from research.core import lazy
from research.data import ops as pp_ops
from research.models import build_model

with lazy.imports():
  from scipy import linalg


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """features [n, d] -> (mean [d], covariance [d, d]) in float64 (unbiased, n - 1)."""
  x = np.asarray(features, np.float64)
  if x.ndim != 2 or len(x) < 2:
    raise ValueError(f"Need features [n >= 2, d], got shape {x.shape}.")
  return x.mean(axis=0), np.cov(x, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
  """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)) of two Gaussians.

  sqrtm of a product of covariances may come back with a tiny imaginary part
  (round-off) or fail on singular covariances; the standard remedy (the
  reference TTUR implementation) is to add eps * I to both and keep the real part.
  """
  mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
  s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
  with warnings.catch_warnings():
    # Singular covariances are common (ReLU features that never fire); the
    # result is checked below instead of warning on every evaluation.
    warnings.simplefilter("ignore", linalg.LinAlgWarning)
    covmean = linalg.sqrtm(s1 @ s2)
  if not np.isfinite(covmean).all():
    offset = np.eye(len(s1)) * 1e-6
    covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
  covmean = np.real(covmean)
  diff = mu1 - mu2
  value = diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean)
  return float(max(value, 0.0))


def fid(real: np.ndarray, fake: np.ndarray) -> float:
  """FID of two feature sets [n, d] and [m, d]."""
  return frechet_distance(*gaussian_stats(real), *gaussian_stats(fake))


def _sq_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Squared Euclidean distances [len(a), len(b)] (float64 accumulation, clipped at 0)."""
  d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
  return np.maximum(d, 0.0)


def knn_radii(x: np.ndarray, k: int, chunk: int = 1000) -> np.ndarray:
  """Squared distance of each row of x [n, d] to its k-th nearest other row: [n]."""
  if len(x) <= k:
    raise ValueError(f"k={k} nearest neighbours need more than {k} points, got {len(x)}.")
  radii = np.empty(len(x))
  for s in range(0, len(x), chunk):
    d = _sq_distances(x[s : s + chunk], x)
    # Column k of the partition: index 0 is the point itself (distance 0).
    radii[s : s + chunk] = np.partition(d, k, axis=1)[:, k]
  return radii


def _covered(points: np.ndarray, centres: np.ndarray, radii: np.ndarray, chunk: int) -> np.ndarray:
  """bool [len(points)]: inside at least one ball (centre, radius^2) of the manifold."""
  out = np.empty(len(points), bool)
  for s in range(0, len(points), chunk):
    d = _sq_distances(points[s : s + chunk], centres)
    out[s : s + chunk] = (d <= radii[None, :]).any(axis=1)
  return out


def precision_recall(
  real: np.ndarray, fake: np.ndarray, k: int = 3, chunk: int = 1000
) -> dict[str, float]:
  """Improved precision and recall (Kynkaenniemi et al. 2019).

  Each set's manifold is the union of balls around its points reaching to the
  k-th nearest neighbour in the same set; precision is the share of fake
  points inside the real manifold, recall the share of real points inside the
  fake one. Hand-written, in row chunks, rather than the `prdc` package: prdc
  holds the full [n, n] distance matrices (three of 10,000 x 10,000 float64,
  2.4 GB), too much beside a training run on this machine; the values are the
  same definition.

  Args:
    real, fake: features [n, d] and [m, d].
    k: neighbours (k=3 in the paper).
  Returns:
    {'precision': [0, 1], 'recall': [0, 1]}.
  """
  real = np.asarray(real, np.float64)
  fake = np.asarray(fake, np.float64)
  precision = _covered(fake, real, knn_radii(real, k, chunk), chunk).mean()
  recall = _covered(real, fake, knn_radii(fake, k, chunk), chunk).mean()
  return {"precision": float(precision), "recall": float(recall)}


def score(real: np.ndarray, fake: np.ndarray, k: int = 3) -> dict[str, float]:
  """{'fid', 'precision', 'recall'} of fake features [m, d] against real [n, d]."""
  return {"fid": fid(real, fake), **precision_recall(real, fake, k)}


def to_uint8(images: np.ndarray, value_range: Sequence[float] = (-1.0, 1.0)) -> np.ndarray:
  """Images in `value_range` (the values 0 and 255 map to) -> uint8, same shape.

  Generated and real images both pass through here before the classifier sees
  them, so a real image preprocessed into the range comes back as its exact
  bytes, and a generated one is quantised like a stored image.
  """
  lo, hi = (float(v) for v in value_range)
  x = (np.asarray(images, np.float64) - lo) * (255.0 / (hi - lo))
  return np.clip(np.rint(x), 0, 255).astype(np.uint8)


class ClassifierFeatures:
  """A trained image classifier's penultimate activations, as FID features.

  Built from the classifier run's config (its model and its evaluation
  preprocessing, `config.data.pp_eval`) and variables
  (research.train.saved_run.load). The model must accept
  `return_features=True` (research.models.cnn.CNN does).

  `features(images uint8 [n, H, W, C])` -> float64 [n, D] (D = the classifier's
  hidden width), in batches of `batch_size`.
  """

  def __init__(self, config: Any, variables: Mapping[str, Any], batch_size: int = 1000):
    kwargs = config.model.to_dict()
    name = kwargs.pop("name")
    kwargs.pop("axis_name", None)
    self.model = build_model(name, **kwargs)
    self.variables = variables
    self.ops = pp_ops.parse(config.data.pp_eval)
    self.input_key = config.task.get("input_key", "image")
    self.batch_size = int(batch_size)
    model = self.model

    def apply(v, x):
      return model.apply(v, x, train=False, return_features=True)

    self._apply = jax.jit(apply)

  def __call__(self, images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8:
      raise ValueError(f"ClassifierFeatures takes uint8 images, got {images.dtype}.")
    out = []
    for s in range(0, len(images), self.batch_size):
      batch = pp_ops.apply_batch(self.ops, {self.input_key: images[s : s + self.batch_size]}, None)
      x = batch[self.input_key]
      n = len(x)
      if n < self.batch_size and s:  # pad the last batch: one compiled shape
        x = np.concatenate([x, np.zeros((self.batch_size - n,) + x.shape[1:], x.dtype)])
      out.append(np.asarray(self._apply(self.variables, x), np.float64)[:n])
    return np.concatenate(out)
