"""Tiny mode (`smoke=True`): every experiment's config shrunk to a two-step run.

What is the same for every experiment lives here; an experiment passes its own
model shrink (and sets anything else specific to it, e.g. a tokenizer's
vocabulary, afterwards):

  if arg.smoke:
    smoke.shrink(c, model=dict(hidden=(16,)))

The data stays real (the tests give it small local files), so tiny mode runs
every code path a full run does: training, evaluation, checkpointing, baselines
and the report.
"""

from collections.abc import Mapping
from typing import Any

from research.core.config import ConfigDict


def shrink(
  c: ConfigDict,
  *,
  model: Mapping[str, Any] | None = None,
  batch_size: int = 16,
  eval_batch_size: int = 64,
  steps: int = 2,
) -> None:
  """Shrinks `c` in place to a `steps`-step run that still does everything once.

  Sets the training length in steps (epochs off), the batch sizes, a log line
  and a checkpoint every step, and every evaluation to once, at the end (an
  experiment that wants one during training sets its cadence afterwards). A
  warmup in epochs is dropped and one in steps becomes 1 step, so a schedule
  with a warmup still runs through it within `steps`.

  Args:
    c: an experiment's config (unlocked).
    model: overrides of `c.model`'s fields (e.g. `dict(hidden=(16,))`); each
      must already be a field of the model, so a misspelt one fails here.
    batch_size: global training batch.
    eval_batch_size: global evaluation batch.
    steps: training steps.
  """
  for key, value in (model or {}).items():
    if key not in c.model:
      raise KeyError(f"Tiny mode: {c.model.name!r} has no field {key!r}.")
    c.model[key] = value
  c.batch_size, c.eval_batch_size = batch_size, eval_batch_size
  c.total_epochs, c.total_steps = None, steps
  c.schedule.warmup_epochs = None
  if c.schedule.warmup_steps is not None:
    c.schedule.warmup_steps = 1
  for ev in c.evals.values():
    ev.every_epochs = ev.every_steps = None
  c.ckpt.every_epochs, c.ckpt.every_steps = None, 1
  c.log_every_steps = 1
