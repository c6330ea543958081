"""DCGAN on Fashion-MNIST: a generator of 28x28 clothing images.

Model: research.models.gan.DCGAN (Radford et al. 2016): generator z [64] ->
7x7 -> 14x14 -> 28x28 (transposed convs, BatchNorm, tanh), discriminator two
stride-2 convs (leaky ReLU) -> logit. Both players train in one compiled step
of the shared loop: one Adam per player (lr 2e-4, b1 0.5, the DCGAN setting) as
parameter groups of config.optimizer, non-saturating GAN loss
(research.core.tasks.GANTask).

Metric: FID, precision and recall (k=3) of generated images in the features
(penultimate layer, 256-d) of the Fashion-MNIST CNN trained by this codebase;
Inception weights cannot be downloaded here, so published Inception-FIDs are
not comparable with these numbers. Validation FID (2,000 samples against the
6,000 held-out training images) picks the checkpoint; test (10,000 samples
against the 10,000 test images) is scored once at the end, beside two
baselines in the same features: the untrained generator and 10,000 training
images (the train-vs-test floor).

  python -m tools.train --config=experiments/vision/fashion_mnist.py:cnn --workdir=runs/fm_cnn
  python -m tools.train --config=experiments/vision/fashion_mnist_gan.py:dcgan --workdir=runs/fm_dcgan

`:dcgan,classifier=<workdir>` scores with another classifier run (default runs/fm_cnn).
"""

from research.core import smoke
from research.core.config import (
  ConfigDict,
  base_config,
  eval_config,
  parse_arg,
  select_on_validation,
)

# The classifier run whose features score the samples (train it first, command above).
CLASSIFIER_WORKDIR = "runs/fm_cnn"

VARIANTS = {
  "dcgan": dict(
    model=dict(
      name="dcgan", latent_dim=64, generator_features=(64, 32), discriminator_features=(32, 64)
    ),
    tiny=dict(latent_dim=8, generator_features=(8, 4), discriminator_features=(4, 8)),
  ),
}


def get_config(arg=None):
  arg = parse_arg(arg, variants=tuple(VARIANTS), smoke=False, classifier=CLASSIFIER_WORKDIR)
  v = VARIANTS[arg.variant]
  c = base_config()
  c.data.name = "fashion_mnist"
  # The generator's tanh range; the evaluator maps images back to bytes with image_range.
  c.data.pp_train = c.data.pp_eval = "value_range(-1, 1)"
  c.task = ConfigDict(dict(name="gan", input_key="image"))
  c.model = ConfigDict(v["model"])
  c.batch_size = 64
  c.eval_batch_size = 1000
  c.total_steps = 8000  # about 9.5 epochs of the 54,000 training images
  c.optimizer.name = "adam"
  c.optimizer.lr = 2e-4
  # One Adam per player (research.train.optim parameter groups), DCGAN's settings.
  c.optimizer.groups = ConfigDict(
    dict(generator=dict(lr=2e-4, b1=0.5), discriminator=dict(lr=2e-4, b1=0.5))
  )
  c.schedule.name = "constant"
  c.log_every_steps = 100
  c.evals.test = eval_config(
    "generative",
    "test",
    topk=(),
    classifier_workdir=arg.classifier,
    num_samples=10_000,
    k=3,
    seed=0,
    image_range=(-1.0, 1.0),
  )
  # val: the same measurement with 2,000 samples against the carved validation
  # split, every 500 steps; the lowest val/fid is the reported checkpoint.
  select_on_validation(c, "fid", mode="min")
  c.evals.val.num_samples = 2000
  c.evals.val.every_steps = 500
  c.ckpt.every_epochs = None
  c.ckpt.every_steps = 500
  c.ckpt.keep = 3
  c.baselines.untrained_generator = dict(type="untrained_generator", split="test")
  c.baselines.training_data = dict(type="training_data", split="test")
  c.references = ()  # no published FID in these features; the baselines are the reference
  if arg.smoke:
    smoke.shrink(c, model=v["tiny"], eval_batch_size=64)
    c.evals.val.num_samples = c.evals.test.num_samples = 32
    c.evals.val.grid = c.evals.test.grid = 16
  return c
