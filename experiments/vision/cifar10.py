"""CIFAR-10 (50k/10k 32x32 colour images, 10 classes).

Data: `$RESEARCH_DATA_DIR/cifar10/` (the original `cifar-10-python.tar.gz` or
its `cifar-10-batches-py/` folder), else TFDS `cifar10`.
References: LeNet-5 on CIFAR-10 about 0.64 (typical reimplementations);
ResNet-18 (small-image stem, SGD, crop+flip, ~200 epochs) 0.9502 in kuangliu/pytorch-cifar.

  python -m tools.train --config=experiments/vision/cifar10.py:resnet18 --workdir=runs/c10_r18
"""

from research.core import smoke
from research.core.config import (
  ConfigDict,
  base_config,
  eval_config,
  parse_arg,
  select_on_validation,
)

# Per-channel mean/std of the CIFAR-10 training images.
_NORM = "value_range(0, 1)|standardize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))"
VARIANTS = {
  "lenet": dict(
    model=dict(name="lenet"),
    epochs=30,
    optimizer="adam",
    lr=1e-3,
    tiny={},
    reference=(0.64, "LeNet-5 on CIFAR-10, typical reimplementation accuracy"),
  ),
  "resnet18": dict(
    model=dict(name="resnet18", stem="small"),
    epochs=200,
    optimizer="momentum",
    lr=0.1,
    tiny=dict(name="resnet_tiny"),
    reference=(
      0.9502,
      "kuangliu/pytorch-cifar README: ResNet18 93.02% (0.9502 with 200-epoch cosine schedule)",
    ),
  ),
}


def get_config(arg=None):
  arg = parse_arg(arg, variants=tuple(VARIANTS), smoke=False)
  v = VARIANTS[arg.variant]
  c = base_config()
  c.data.name = "cifar10"
  c.data.pp_train = _NORM + "|random_crop(32, pad=4)|flip_lr"
  c.data.pp_eval = _NORM
  c.model = ConfigDict(dict(v["model"], num_classes=10))
  c.batch_size, c.eval_batch_size = 128, 1000
  c.total_epochs = v["epochs"]
  c.optimizer.name, c.optimizer.lr = v["optimizer"], v["lr"]
  if v["optimizer"] == "momentum":
    c.optimizer.weight_decay = 5e-4
  c.schedule.name, c.schedule.warmup_epochs = "cosine", 1
  c.log_every_steps = 100
  c.evals.test = eval_config("classification", "test", every_epochs=5)
  c.ckpt.every_epochs = 1
  select_on_validation(c, "accuracy")  # 5,000 training images held out, stratified
  value, source = v["reference"]
  c.references = (
    dict(
      metric="test/accuracy",
      value=value,
      source=source,
      higher_is_better=True,
      tolerance=0.0,
      data=dict(name="cifar10"),
    ),
  )
  if arg.smoke:
    smoke.shrink(c, model=v["tiny"], eval_batch_size=16)
  return c
