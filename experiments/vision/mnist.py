"""MNIST (60k/10k 28x28 handwritten digits).

Data: local IDX files in `$RESEARCH_DATA_DIR/mnist/`, else TFDS `mnist`.
References: a published MLP reaches 0.983; the flax examples CNN 0.9917.

  python -m tools.train --config=experiments/vision/mnist.py:cnn --workdir=runs/mnist_cnn
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
  "mlp": dict(
    model=dict(name="mlp", hidden=(512, 256), dropout=0.2),
    epochs=20,
    lr=1e-3,
    tiny=dict(hidden=(16,)),
    reference=(
      0.983,
      "Published 2-hidden-layer MLP on MNIST (Keras mnist_mlp example): 0.9830 test accuracy",
    ),
  ),
  "cnn": dict(
    model=dict(name="cnn", features=(32, 64), hidden=256, dropout=0.0),
    epochs=10,
    lr=1e-3,
    tiny=dict(features=(4, 8), hidden=16),
    reference=(
      0.9917,
      "flax examples/mnist README: 0.9917 test accuracy (10 epochs, SGD momentum)",
    ),
  ),
}


def get_config(arg=None):
  arg = parse_arg(arg, variants=tuple(VARIANTS), smoke=False)
  v = VARIANTS[arg.variant]
  c = base_config()
  c.data.name = "mnist"
  c.data.pp_train = c.data.pp_eval = "value_range(0, 1)|standardize(0.1307, 0.3081)"
  c.model = ConfigDict(dict(v["model"], num_classes=10))
  c.batch_size, c.eval_batch_size = 128, 1000
  c.total_epochs = v["epochs"]
  c.optimizer.name, c.optimizer.lr = "adam", v["lr"]
  c.schedule.name, c.schedule.warmup_epochs = "cosine", 1
  c.log_every_steps = 100
  c.evals.test = eval_config("classification", "test", every_epochs=2)
  c.ckpt.every_epochs = 1
  select_on_validation(c, "accuracy")  # 6,000 training images held out, stratified
  value, source = v["reference"]
  c.references = (
    dict(
      metric="test/accuracy",
      value=value,
      source=source,
      higher_is_better=True,
      tolerance=0.0,
      data=dict(name="mnist"),
    ),
  )
  if arg.smoke:
    smoke.shrink(c, model=v["tiny"], eval_batch_size=16)
  return c
