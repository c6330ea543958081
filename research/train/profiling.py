"""config.profile: a `jax.profiler` trace of a window of training steps.

  --config.profile.start_step=100 --config.profile.num_steps=5

writes a trace of the steps [start_step, start_step + num_steps) into
`<workdir>/profile/` (process 0 only). Open it with TensorBoard's profile
plugin (`pip install tensorboard tensorboard-plugin-profile`, then
`tensorboard --logdir <workdir>/profile`) or with xprof. The window starts
and ends at compiled-call boundaries, so with config.steps_per_call = n it
covers whole calls of n steps.
"""

from __future__ import annotations

import logging
import os

import jax

log = logging.getLogger(__name__)


class StepProfiler:
  """Starts a trace at the first call boundary at or after `start_step` and
  stops it once `num_steps` steps have run (or when the loop ends)."""

  def __init__(self, profile_config, workdir: str):
    self.start = profile_config.start_step
    self.num_steps = int(profile_config.num_steps or 0)
    self.directory = os.path.join(workdir, "profile")
    self.enabled = self.start is not None and jax.process_index() == 0
    self._started_at: int | None = None

  def before_call(self, step: int) -> None:
    """Call before dispatching the steps that start at `step`."""
    if self.enabled and self._started_at is None and step >= self.start:
      os.makedirs(self.directory, exist_ok=True)
      jax.profiler.start_trace(self.directory)
      self._started_at = step

  def after_call(self, step: int, outputs) -> None:
    """Call after the call that ended at `step` (its `outputs` are waited for)."""
    if self._started_at is not None and step - self._started_at >= self.num_steps:
      self.stop(outputs)

  def stop(self, outputs=None) -> None:
    if self._started_at is None:
      return
    jax.block_until_ready(outputs)  # the traced steps' device work is in the trace
    jax.profiler.stop_trace()
    log.warning("Profile of steps %d.. written to %s", self._started_at, self.directory)
    self._started_at, self.enabled = None, False
