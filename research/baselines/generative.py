"""Baselines of a generative (GAN) experiment, scored with the model's own metric.

Both read the settings of the run's 'generative' eval on the baseline's split
(classifier run, number of samples, k, noise seed, image range), so their
FID / precision / recall are the same measurement as the model's:

  untrained_generator  the run's model at initialisation (config.seed), sampled
                       with the evaluator's fixed noise: the ceiling training
                       must get well below.
  training_data        `num_samples` training images (seeded draw) in place of
                       samples: the train-vs-test floor, what a generator that
                       reproduced the training distribution would score.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from research.baselines.base import BaselineContext, register
from research.baselines.classification import labels_of
from research.metrics import generative
from research.metrics.evaluators import generative as gen_eval
from research.models import build_model
from research.train import saved_run


def _eval_settings(ctx: BaselineContext) -> dict:
  """The 'generative' eval on ctx.split: its settings, with the evaluator's defaults."""
  for ev in ctx.config.evals.values():
    if ev.type == "generative" and ev.split == ctx.split:
      settings = ev.to_dict()
      break
  else:
    raise ValueError(
      f"Baseline on split {ctx.split!r} needs a config.evals entry of type 'generative' "
      "on that split (it scores with the same classifier and settings)."
    )
  return dict(
    classifier_workdir=settings["classifier_workdir"],
    classifier_checkpoint=settings.get("classifier_checkpoint", "best"),
    num_samples=int(settings.get("num_samples", 10_000)),
    k=int(settings.get("k", 3)),
    seed=int(settings.get("seed", 0)),
    image_key=settings.get("image_key", "image"),
    image_range=tuple(settings.get("image_range", (-1.0, 1.0))),
  )


def _real_features(ctx: BaselineContext, features, image_key: str) -> np.ndarray:
  """Features of every image of ctx.split (raw uint8, as the evaluator reconstructs them)."""
  return features(labels_of(ctx.data.raw(ctx.split), image_key).astype(np.uint8))


@register("untrained_generator")
def untrained_generator(ctx: BaselineContext) -> dict[str, float]:
  """FID / precision / recall of the run's generator at initialisation."""
  s = _eval_settings(ctx)
  features = gen_eval.load_classifier(
    saved_run.load, s["classifier_workdir"], s["classifier_checkpoint"]
  )
  kwargs = ctx.config.model.to_dict()
  model = build_model(kwargs.pop("name"), **kwargs)
  sample = labels_of(ctx.data.raw(ctx.split), s["image_key"])[:1]
  root = jax.random.PRNGKey(ctx.config.seed)
  # The same keys as research.train.state.make_init_fn: the run's own step-0 model.
  params_rng, dropout_rng, _ = jax.random.split(root, 3)
  variables = model.init(
    {"params": params_rng, "dropout": dropout_rng},
    jnp.zeros(sample.shape, jnp.float32),
    train=False,
  )
  images = gen_eval.sample_images(model, variables, num_samples=s["num_samples"], seed=s["seed"])
  fake = features(generative.to_uint8(images, s["image_range"]))
  return generative.score(_real_features(ctx, features, s["image_key"]), fake, s["k"])


@register("training_data")
def training_data(ctx: BaselineContext, num_samples: int | None = None) -> dict[str, float]:
  """FID / precision / recall of `num_samples` training images (default: the eval's)."""
  s = _eval_settings(ctx)
  features = gen_eval.load_classifier(
    saved_run.load, s["classifier_workdir"], s["classifier_checkpoint"]
  )
  train = ctx.data.train_source()
  n = min(int(num_samples or s["num_samples"]), len(train))
  idx = np.sort(np.random.default_rng(s["seed"]).choice(len(train), n, replace=False))
  get_batch = getattr(train, "get_batch", None)
  if get_batch is not None:
    images = np.asarray(get_batch(idx)[s["image_key"]])
  else:
    images = np.stack([np.asarray(train[int(i)][s["image_key"]]) for i in idx])
  fake = features(images.astype(np.uint8))
  return generative.score(_real_features(ctx, features, s["image_key"]), fake, s["k"])
