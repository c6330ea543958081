"""MNIST-1D (Greydanus 2020): 4,000/1,000 length-40 signals, 10 classes.

Generated locally by the `mnist1d` package with its default arguments (seed 42).
References (the paper's table): logistic 32%, MLP 68%, CNN 94%.

  python -m tools.train --config=experiments/vision/mnist1d.py:cnn --workdir=runs/m1d_cnn
"""

from research.core import smoke
from research.core.config import (
  ConfigDict,
  base_config,
  eval_config,
  parse_arg,
  select_on_validation,
)

_SOURCE = "Greydanus, 'Scaling down deep learning' (MNIST-1D), arXiv:2011.14439, Table 1"
VARIANTS = {
  "logistic": dict(model=dict(name="logistic"), reference=0.32),
  "mlp": dict(model=dict(name="mlp", hidden=(100, 100)), reference=0.68),
  "cnn": dict(model=dict(name="cnn1d"), reference=0.94),
}


def get_config(arg=None):
  arg = parse_arg(arg, variants=tuple(VARIANTS), smoke=False)
  v = VARIANTS[arg.variant]
  c = base_config()
  c.data.name = "mnist1d"
  c.model = ConfigDict(dict(v["model"], num_classes=10))
  # The paper's training setup: Adam, lr 1e-2, batch 100, 6,000 steps.
  c.batch_size, c.eval_batch_size = 100, 1000
  c.total_steps = 6000
  c.optimizer.name, c.optimizer.lr = "adam", 1e-2
  c.schedule.name = "constant"
  c.log_every_steps = 200
  c.evals.test = eval_config("classification", "test", every_steps=1000)
  c.ckpt.every_steps, c.ckpt.every_epochs = 1000, None
  select_on_validation(c, "accuracy")  # 400 of the 4,000 training signals, stratified
  c.references = (
    dict(
      metric="test/accuracy",
      value=v["reference"],
      higher_is_better=True,
      tolerance=0.0,
      source=f"{_SOURCE} ({arg.variant})",
      data=dict(name="mnist1d"),
    ),
  )
  if arg.smoke:
    smoke.shrink(c, eval_batch_size=200)  # the models are tiny already
  return c


def search_space(variant):
  """tools.tune's default space (research/apps/search_space.py); the hand-set values lie in it."""
  del variant  # the same optimiser knobs for every model
  return {
    "optimizer.lr": ("log", 1e-3, 5e-2),
    "batch_size": ("choice", 50, 100, 200),
    "schedule.name": ("choice", "constant", "cosine"),
  }
