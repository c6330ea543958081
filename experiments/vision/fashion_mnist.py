"""Fashion-MNIST (60k/10k 28x28 grey images of clothing, 10 classes).

Data: local IDX files (`$RESEARCH_DATA_DIR/fashion_mnist/` or Debian's
`dataset-fashion-mnist` in /usr/share/datasets/fashion-mnist), else TFDS.
References: the Fashion-MNIST benchmark table (zalandoresearch/fashion-mnist
README): MLP 256-128-64 0.900, 2-conv CNN about 0.925, ResNet18 0.949.
`cnn_aug` is `cnn` with colour jitter, random erasing and mixup (docs/vision.md,
"Augmentation").

  python -m tools.train --config=experiments/vision/fashion_mnist.py:cnn --workdir=runs/fm_cnn
"""

from research.core import smoke
from research.core.config import (
  ConfigDict,
  base_config,
  eval_config,
  parse_arg,
  select_on_validation,
)

_SOURCE = "Fashion-MNIST benchmark table, github.com/zalandoresearch/fashion-mnist README"
VARIANTS = {
  "mlp": dict(
    model=dict(name="mlp", hidden=(256, 128, 64), dropout=0.1),
    reference=0.900,
    epochs=30,
    lr=1e-3,
    pp="",
    optimizer="adam",
    tiny=dict(hidden=(16,)),
  ),
  "cnn": dict(
    model=dict(name="cnn", features=(32, 64), hidden=256, dropout=0.3),
    reference=0.925,
    epochs=14,
    lr=2e-3,
    pp="|flip_lr",
    optimizer="adam",
    tiny=dict(features=(4, 8), hidden=16),
  ),
  # `cnn` plus the augmentations of research/data/ops/image.py: colour jitter
  # (brightness/contrast; saturation does nothing on grey images), random
  # erasing with the defaults Zhong et al. 2017 used on Fashion-MNIST (p 0.5,
  # area 0.02-0.4, aspect 0.3-3.3, filled with the mean) and mixup (Zhang et al.
  # 2018) with alpha 0.2 (the paper's ImageNet range is 0.1-0.4, CIFAR 1): a mild
  # setting, since 14 epochs leave little room for a strong regulariser. Same
  # epochs and learning rate as `cnn`.
  "cnn_aug": dict(
    model=dict(name="cnn", features=(32, 64), hidden=256, dropout=0.3),
    reference=0.925,
    epochs=14,
    lr=2e-3,
    pp_unit="|color_jitter(brightness=0.2, contrast=0.2)",  # on [0, 1] images
    pp="|flip_lr|random_erasing(p=0.5)|mixup(alpha=0.2)",
    reference_of="cnn",
    optimizer="adam",
    tiny=dict(features=(4, 8), hidden=16),
  ),
  "resnet18": dict(
    model=dict(name="resnet18", stem="small"),
    reference=0.949,
    epochs=40,
    lr=0.1,
    pp="|random_crop(28, pad=2)|flip_lr",
    optimizer="momentum",
    tiny=dict(name="resnet_tiny"),
  ),
}


def get_config(arg=None):
  arg = parse_arg(arg, variants=tuple(VARIANTS), smoke=False)
  v = VARIANTS[arg.variant]
  c = base_config()
  c.data.name = "fashion_mnist"
  # Mean/std of the Fashion-MNIST training images (in [0, 1] units); `pp_unit`
  # ops (colour jitter) work on [0, 1] images, so they run before standardize.
  unit, std = "value_range(0, 1)", "|standardize(0.2860, 0.3530)"
  c.data.pp_train = unit + v.get("pp_unit", "") + std + v["pp"]
  c.data.pp_eval = unit + std
  c.model = ConfigDict(dict(v["model"], num_classes=10))
  c.batch_size = 128
  c.eval_batch_size = 1000
  c.total_epochs = v["epochs"]
  c.optimizer.name = v["optimizer"]
  c.optimizer.lr = v["lr"]
  if v["optimizer"] == "momentum":
    c.optimizer.weight_decay = 5e-4
  c.schedule.name = "cosine"
  c.schedule.warmup_epochs = 1
  c.log_every_steps = 100
  c.evals.test = eval_config("classification", "test", every_epochs=2)
  c.ckpt.every_epochs = 1
  select_on_validation(c, "accuracy")  # 6,000 training images held out, stratified
  c.references = (
    dict(
      metric="test/accuracy",
      value=v["reference"],
      higher_is_better=True,
      tolerance=0.0,
      source=f"{_SOURCE} ({v.get('reference_of', arg.variant)})",
      data=dict(name="fashion_mnist"),
    ),
  )
  if arg.smoke:
    smoke.shrink(c, model=v["tiny"], eval_batch_size=2000)
  return c
