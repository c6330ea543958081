"""The 'generative' evaluator: FID, precision and recall of a generator's samples.

Samples `num_samples` images from the run's generator (fixed, seeded noise, so
every evaluation of a run scores the same z), and scores them against the
evaluator's split in the features of a classifier trained by this codebase
(`classifier_workdir`; research.metrics.generative). The first `grid` samples
come back as the artifact '<name>/samples' (uint8 [grid, H, W, C]), which the
outputs layer draws as an image grid at every evaluation.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import jax
import numpy as np

from research.metrics import generative
from research.metrics.evaluators.base import HostBatch, PredictFn


class ClassifierMissingError(FileNotFoundError):
  """The FID classifier's workdir holds no trained run."""


def load_classifier(
  load_saved_run: Callable[..., Any] | None, workdir: str, which: str = "best"
) -> generative.ClassifierFeatures:
  """The feature extractor of the classifier run in `workdir`; one clear line if absent."""
  if not workdir or not os.path.exists(os.path.join(workdir, "config.json")):
    raise ClassifierMissingError(
      f"FID classifier workdir {workdir!r} holds no trained run; train it first with "
      f"`python -m tools.train --config=experiments/vision/fashion_mnist.py:cnn "
      f"--workdir={workdir}` (or point --config.evals.<name>.classifier_workdir at one)."
    )
  if load_saved_run is None:
    raise ValueError(
      "The generative evaluator needs load_saved_run (research.train.saved_run.load); "
      "research.train.builder passes it."
    )
  saved = load_saved_run(workdir, which)
  return generative.ClassifierFeatures(saved.config, saved.variables)


def sample_images(
  model, variables, *, num_samples: int, seed: int, batch_size: int = 1000, method="generate"
) -> np.ndarray:
  """num_samples images [n, H, W, C] (model range) from z ~ N(0, I) drawn with `seed`.

  The noise depends only on (seed, num_samples, model.latent_dim), so evaluations
  at different steps, and baselines, score the same z.
  """
  z = np.asarray(
    jax.random.normal(jax.random.PRNGKey(seed), (num_samples, model.latent_dim)), np.float32
  )
  generate = _jitted_generate(model, method)
  out = []
  for s in range(0, num_samples, batch_size):
    chunk = z[s : s + batch_size]
    n = len(chunk)
    if n < batch_size and s:  # one compiled shape
      chunk = np.concatenate([chunk, np.zeros((batch_size - n, z.shape[1]), z.dtype)])
    out.append(np.asarray(generate(variables, chunk))[:n])
  return np.concatenate(out)


_GENERATE_CACHE: dict[tuple[Any, str], Callable] = {}


def _jitted_generate(model, method: str) -> Callable:
  """One jitted `model.apply(v, z, method=...)` per (model, method): evaluation
  rounds of a run reuse the compiled sampler."""
  key = (model, method)
  if key not in _GENERATE_CACHE:
    _GENERATE_CACHE[key] = jax.jit(lambda v, z: model.apply(v, z, method=method))
  return _GENERATE_CACHE[key]


class GenerativeEvaluator:
  """FID / precision / recall of generated samples against a split.

  Args:
    name: key prefix, e.g. 'val' or 'test'.
    batches_fn: () -> fresh iterable of host batches of the split (images in
      the model's range under `image_key`, bool 'mask').
    classifier_workdir: the trained classifier run whose penultimate features
      the metrics use (research.metrics.generative.ClassifierFeatures).
    classifier_checkpoint: which of its checkpoints ('best', 'latest', a step).
    num_samples: generated images scored (10,000 for the test numbers).
    k: neighbours of the precision/recall manifolds.
    seed: of the fixed noise.
    image_range: the model-space values of pixel 0 and pixel 255.
    grid: samples returned as the '<name>/samples' artifact.
    method: the model method mapping z to images.
    load_saved_run: research.train.saved_run.load (passed by the builder).
  Scalars: '<name>/fid', '<name>/precision', '<name>/recall', '<name>/num_samples'.
  """

  wants_saved_runs = True  # research.train.builder passes load_saved_run

  def __init__(
    self,
    name: str,
    batches_fn: Callable[[], Iterable[HostBatch]],
    *,
    classifier_workdir: str,
    every_steps: int = 0,
    classifier_checkpoint: str = "best",
    num_samples: int = 10_000,
    k: int = 3,
    seed: int = 0,
    image_key: str = "image",
    image_range: Sequence[float] = (-1.0, 1.0),
    grid: int = 64,
    method: str = "generate",
    load_saved_run: Callable[..., Any] | None = None,
    topk: Sequence[int] = (),
    class_names: Sequence[str] | None = None,
  ):
    del topk, class_names  # set for every eval by eval_config / the builder; unused here
    if every_steps < 0:
      raise ValueError(f"every_steps must be >= 0, got {every_steps}.")
    self.name, self.every_steps, self.batches_fn = name, int(every_steps), batches_fn
    self.num_samples, self.k, self.seed = int(num_samples), int(k), int(seed)
    self.image_key, self.image_range = image_key, tuple(float(v) for v in image_range)
    self.grid, self.method = int(grid), method
    # Loaded now, so a missing classifier stops the run before it trains.
    self.features = load_classifier(load_saved_run, classifier_workdir, classifier_checkpoint)
    self._real: np.ndarray | None = None

  def real_features(self) -> np.ndarray:
    """Features [n, D] of the split's images (computed once; the split does not change)."""
    if self._real is None:
      images = []
      for batch in self.batches_fn():
        mask = np.asarray(batch["mask"], bool)
        images.append(np.asarray(batch[self.image_key])[mask])
      self._real = self.features(generative.to_uint8(np.concatenate(images), self.image_range))
    return self._real

  def run(self, predict_fn: PredictFn) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    if not hasattr(predict_fn, "variables"):
      raise ValueError(
        f"Evaluator {self.name!r} (generative) needs a predict_fn with .model and "
        ".variables() (a research.train.builder.Predictor)."
      )
    model = predict_fn.model  # type: ignore[attr-defined]
    images = sample_images(
      model,
      predict_fn.variables(),
      num_samples=self.num_samples,
      seed=self.seed,
      method=self.method,
    )
    fake = generative.to_uint8(images, self.image_range)
    scores = generative.score(self.real_features(), self.features(fake), self.k)
    scalars = {f"{self.name}/{k}": v for k, v in scores.items()}
    scalars[f"{self.name}/num_samples"] = float(len(fake))
    return scalars, {f"{self.name}/samples": fake[: self.grid]}
