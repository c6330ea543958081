"""scikit-learn digits (1,797 8x8 grey images, 10 classes): the embedded default.

Ships inside scikit-learn, so it runs offline on any laptop in about a minute.
Split: seeded stratified 80/20 (1,437 train / 360 test); 10% of train (144) held out,
stratified, as the validation split the best checkpoint is chosen on.

  python -m tools.train --config=experiments/vision/digits.py:cnn --workdir=runs/digits_cnn
"""

from research.core import smoke
from research.core.config import (
  ConfigDict,
  base_config,
  eval_config,
  parse_arg,
  select_on_validation,
)

MODELS = {
  "mlp": dict(name="mlp", hidden=(256, 128), dropout=0.1),
  "cnn": dict(name="cnn", features=(32, 64), hidden=128, dropout=0.25),
}
# Tiny mode's models (research/core/smoke.py).
TINY = {"mlp": dict(hidden=(16,)), "cnn": dict(features=(4, 8), hidden=16)}
VARIANTS = tuple(MODELS)


def get_config(arg=None):
  arg = parse_arg(arg, variants=VARIANTS, smoke=False)
  c = base_config()
  c.data.name = "digits"
  # 8x8 digits shifted by one pixel are still the same digit; flips are not.
  c.data.pp_train = "value_range(0, 1)|random_crop(8, pad=1)"
  c.data.pp_eval = "value_range(0, 1)"
  c.model = ConfigDict(dict(MODELS[arg.variant], num_classes=10))
  c.batch_size = 64
  c.eval_batch_size = 128
  c.total_epochs = 40
  c.optimizer.name = "adam"
  c.optimizer.lr = 2e-3
  c.schedule.name = "cosine"
  c.schedule.warmup_epochs = 1
  c.log_every_steps = 20
  c.evals.test = eval_config("classification", "test", every_epochs=10, topk=(2,))
  c.baselines.majority = dict(type="majority_class", split="test")
  c.ckpt.every_epochs = 10
  select_on_validation(c, "accuracy")  # 144 of the 1,437 training images, stratified
  c.references = (
    dict(
      metric="test/accuracy",
      value=0.97,
      higher_is_better=True,
      tolerance=0.0,
      source="scikit-learn example 'Recognizing hand-written digits' (SVC, gamma=0.001, "
      "50/50 split): 0.97 accuracy",
      data=dict(name="digits"),
    ),
  )
  if arg.smoke:
    smoke.shrink(c, model=TINY[arg.variant])
  return c
