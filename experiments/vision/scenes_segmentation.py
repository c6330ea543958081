"""Semantic segmentation of Fashion-MNIST scenes with a U-Net (Ronneberger et al. 2015).

Data: `fashion_mnist_scenes` (research.data.vision.scenes): 1-6 real
Fashion-MNIST images at random sizes (16-40 px) and places on a 64x64 canvas;
per-pixel labels 0 = background, k + 1 = clothing class k. Training scenes use
the Fashion-MNIST training images minus a stratified 10% holdout, validation
scenes that holdout (checkpoint selection), test scenes the test images only,
fixed by the seed.

Metrics: confusion-matrix mIoU over the labels present and pixel accuracy
(research.metrics.segmentation). No published number applies to this
synthetic data, so the report has no published reference; the comparison is
the same-run 'all_background' baseline on the same test scenes (every pixel
predicted background: pixel accuracy = the background share, mIoU = its IoU
over 1 + the classes present).

A user with TFDS `oxford_iiit_pet` prepared runs the same experiment on it
with variant `unet,data=oxford_iiit_pet` (research.data.vision.detection_sources).

  python -m tools.train --config=experiments/vision/scenes_segmentation.py:unet \
    --workdir=runs/scenes_unet
"""

from research.core import smoke
from research.core.config import (
  ConfigDict,
  base_config,
  eval_config,
  parse_arg,
  select_on_validation,
)

VARIANTS = {
  "unet": dict(
    model=dict(name="unet", features=(8, 16, 32, 64), dropout=0.0),
    tiny=dict(features=(4, 8)),
  ),
}

# `data=`: the scenes (default), or a real segmentation set in the same schema.
DATA = {
  "fashion_mnist_scenes": dict(
    options=dict(
      canvas=64,
      min_objects=1,
      max_objects=6,
      min_size=16,
      max_size=40,
      train_scenes=16000,
      validation_scenes=1000,
      test_scenes=1000,
      seed=0,
    ),
    num_classes=10,
    epochs=2,
    tiny=dict(
      canvas=32,
      min_size=8,
      max_size=20,
      max_objects=4,
      train_scenes=64,
      validation_scenes=16,
      test_scenes=16,
    ),
  ),
  # Pet vs background (the trimap's border ignored); validation: 10% of TFDS train.
  "oxford_iiit_pet": dict(
    options=dict(canvas=128, labels="pet"), num_classes=1, epochs=20, tiny=dict(canvas=32)
  ),
}


def get_config(arg=None):
  arg = parse_arg(arg, variants=tuple(VARIANTS), smoke=False, data="fashion_mnist_scenes")
  if arg.data not in DATA:
    raise ValueError(f"Unknown data {arg.data!r}; valid: {', '.join(DATA)}.")
  v = VARIANTS[arg.variant]
  c = base_config()
  c.data.name = arg.data
  c.data.options = ConfigDict(DATA[arg.data]["options"])
  c.data.pp_train = "value_range(0, 1)"
  c.data.pp_eval = "value_range(0, 1)"
  num_classes = DATA[arg.data]["num_classes"]
  c.task = ConfigDict(
    dict(name="segmentation", num_classes=num_classes, label_key="segmentation_mask")
  )
  # Background + the object classes per pixel.
  c.model = ConfigDict(dict(v["model"], num_classes=num_classes + 1))
  c.batch_size = 32
  c.eval_batch_size = 200
  c.total_epochs = DATA[arg.data]["epochs"]
  c.optimizer.name = "adam"
  c.optimizer.lr = 2e-3
  c.schedule.name = "cosine"
  c.schedule.warmup_steps = 100
  c.log_every_steps = 50
  c.evals.test = eval_config("segmentation", "test", every_epochs=0.5)
  c.ckpt.every_epochs = 0.5
  # The data set brings its own validation scenes (held-out training images).
  select_on_validation(c, "miou", fraction=None)
  c.baselines.all_background = dict(type="all_background", split="test")
  c.references = ()
  if arg.smoke:
    c.data.options.update(DATA[arg.data]["tiny"])
    smoke.shrink(c, model=v["tiny"], eval_batch_size=16)
  return c
