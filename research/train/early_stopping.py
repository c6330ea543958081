"""Early stopping: stop a run after `patience` evaluations without improvement.

  config.early_stopping = dict(metric="val/loss", mode="min", patience=3, min_delta=1e-3)

`EarlyStopping` is the loop's small state object: `update(step, metrics)`
after each periodic evaluation; `state()` goes into each checkpoint's meta
and `from_state` restores it, so a run killed and resumed stops at the same
step as one that was not. The best checkpoint is the one the tools default to
(`ckpt.best_metric`, which `check` requires to be set); with early stopping
on, the loop saves a checkpoint at each evaluation of that metric, so the best
one exists whenever the run stops.

`Stop` is also how a caller of `research.train.loop.run` (tools.tune's
pruner, through `on_eval`) ends a run cleanly: the loop catches it at an
evaluation, then saves, evaluates and reports as at the last step.

Keras' `EarlyStopping` callback and flax's `flax.training.early_stopping`
do the same counting, but neither fits here: Keras is not a dependency, and
flax's dataclass neither records the best step nor explains why it stopped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


class Stop(Exception):
  """Raised by an `on_eval` hook to end the run at this evaluation; `reason` is logged."""

  def __init__(self, reason: str):
    super().__init__(reason)
    self.reason = reason


def enabled(config) -> bool:
  return bool(config.early_stopping.metric)


def is_test_metric(config, metric: str) -> bool:
  """True when `metric` ('<eval>/<name>') comes from an eval of the test split."""
  name = metric.split("/", 1)[0]
  ev = config.evals.get(name)
  return name == "test" or (ev is not None and ev.split == "test")


def check(config) -> None:
  """Raises ValueError (one line, naming the key and the fix) for a bad config.early_stopping."""
  es = config.early_stopping
  if not es.metric:
    return
  name = es.metric.split("/", 1)[0]
  if "/" not in es.metric or name not in config.evals:
    raise ValueError(
      f"config.early_stopping.metric={es.metric!r} must be '<eval>/<metric>' with "
      f"<eval> one of config.evals: {', '.join(config.evals) or '(none)'}."
    )
  if is_test_metric(config, es.metric):
    raise ValueError(
      f"config.early_stopping.metric={es.metric!r} is a test metric; stop on a "
      "validation eval (e.g. 'val/loss') so nothing is chosen on the test split."
    )
  if not (config.evals[name].every_steps or config.evals[name].every_epochs):
    raise ValueError(
      f"config.early_stopping needs periodic evaluations: set "
      f"config.evals.{name}.every_steps (or every_epochs)."
    )
  if es.mode not in ("min", "max"):
    raise ValueError(f"config.early_stopping.mode must be 'min' or 'max', got {es.mode!r}.")
  if isinstance(es.patience, bool) or not isinstance(es.patience, int) or es.patience < 1:
    raise ValueError(
      f"config.early_stopping.patience must be an integer >= 1 (evaluations), got {es.patience!r}."
    )
  if not isinstance(es.min_delta, (int, float)) or es.min_delta < 0:
    raise ValueError(
      f"config.early_stopping.min_delta must be a number >= 0, got {es.min_delta!r}."
    )
  if not config.ckpt.best_metric:
    raise ValueError(
      "config.early_stopping needs config.ckpt.best_metric (e.g. the same "
      f"{es.metric!r}) so the run keeps its best checkpoint, not the last one."
    )
  if config.ckpt.best_metric == es.metric and config.ckpt.best_mode != es.mode:
    raise ValueError(
      f"config.early_stopping.mode={es.mode!r} but config.ckpt.best_mode="
      f"{config.ckpt.best_mode!r} for the same metric {es.metric!r}; make them agree."
    )


class EarlyStopping:
  """Counts evaluations since the last improvement of `metric` by more than `min_delta`.

  An evaluation improves when its value beats the best so far by more than
  `min_delta` (below for 'min', above for 'max'); the first evaluation always
  does. After `patience` evaluations in a row that do not, `stopped` is set
  and `reason` says why.
  """

  def __init__(
    self, metric: str | None, mode: str = "min", patience: int = 3, min_delta: float = 0.0
  ):
    self.metric, self.mode = metric, mode
    self.patience, self.min_delta = int(patience), float(min_delta)
    self.best: float | None = None
    self.best_step: int | None = None
    self.bad_evals = 0
    self.stopped_step: int | None = None
    self.reason: str | None = None  # also set by `stop` (a pruner, say)

  @classmethod
  def from_config(cls, config) -> EarlyStopping:
    """The run's stopper; with no early_stopping.metric it only records a `stop`."""
    es = config.early_stopping
    return cls(es.metric, es.mode, es.patience, es.min_delta)

  @property
  def stopped(self) -> bool:
    return self.reason is not None

  def update(self, step: int, metrics: Mapping[str, float]) -> bool:
    """Takes one evaluation's metrics; returns True when this evaluation improved.

    Evaluations without the metric (another eval's schedule) change nothing.
    """
    if self.metric is None or self.stopped:
      return False
    value = metrics.get(self.metric)
    if value is None:
      return False
    value = float(value)
    if self.best is None or self._better(value, self.best):
      self.best, self.best_step, self.bad_evals = value, step, 0
      return True
    self.bad_evals += 1
    if self.bad_evals >= self.patience:
      self.stop(
        step,
        f"{self.metric} did not improve by {self.min_delta:g} for {self.patience} "
        f"evaluations; best {self.best:.6g} at step {self.best_step}",
      )
    return False

  def stop(self, step: int, reason: str) -> None:
    self.stopped_step, self.reason = step, reason

  def _better(self, value: float, best: float) -> bool:
    if not math.isfinite(value):
      return False
    if self.mode == "min":
      return value < best - self.min_delta
    return value > best + self.min_delta

  def state(self) -> dict[str, Any]:
    """JSON-able; saved in each checkpoint's meta under 'early_stopping'."""
    return dict(
      best=self.best,
      best_step=self.best_step,
      bad_evals=self.bad_evals,
      stopped_step=self.stopped_step,
      reason=self.reason,
    )

  def restore(self, state: Mapping[str, Any] | None) -> EarlyStopping:
    for key, value in (state or {}).items():
      if key in ("best", "best_step", "bad_evals", "stopped_step", "reason"):
        setattr(self, key, value)
    return self


def after_eval(
  stopper: EarlyStopping, step: int, metrics: Mapping[str, float], on_eval=None
) -> bool:
  """The loop's one call after a periodic evaluation: updates `stopper`, then
  calls `on_eval(step, metrics)` (unless already stopped), whose `Stop` stops
  the run. Returns True when the early-stopping metric improved."""
  improved = stopper.update(step, metrics)
  if on_eval is not None and not stopper.stopped:
    try:
      on_eval(step, dict(metrics))
    except Stop as e:
      stopper.stop(step, e.reason)
  return improved
