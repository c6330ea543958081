"""A progress bar with examples/s and ETA that leaves compilation out.

The bar starts only after the first step has finished (i.e. compiled), so the
rate and ETA describe steady-state training, not XLA's compile time.
"""

from __future__ import annotations

import sys
import time

from tqdm import tqdm


class Progress:
  def __init__(self, *, total_steps: int, start_step: int, global_batch: int, enabled: bool):
    self.total, self.global_batch, self.enabled = total_steps, global_batch, enabled
    self.start_step = start_step
    self.bar: tqdm | None = None
    self.compile_seconds: float | None = None
    self._t0 = time.perf_counter()
    self._steady_t0: float | None = None
    self._steady_step = 0

  def first_step_done(self, step: int) -> None:
    """Call once the first step's result is ready; measures compile time."""
    self.compile_seconds = time.perf_counter() - self._t0
    self._steady_t0, self._steady_step = time.perf_counter(), step
    if self.enabled:
      self.bar = tqdm(
        total=self.total,
        initial=step,
        unit="step",
        file=sys.stderr,
        dynamic_ncols=True,
        smoothing=0.1,
        mininterval=1.0,
      )

  def examples_per_sec(self, step: int) -> float | None:
    if self._steady_t0 is None or step <= self._steady_step:
      return None
    return (step - self._steady_step) * self.global_batch / (time.perf_counter() - self._steady_t0)

  def update(self, step: int, loss: float | None = None) -> None:
    if self.bar is None:
      return
    self.bar.update(step - self.bar.n)
    rate = self.examples_per_sec(step)
    postfix: dict[str, str] = {}
    if rate:
      postfix["ex/s"] = f"{rate:,.0f}"
    if loss is not None:
      postfix["loss"] = f"{loss:.4f}"
    self.bar.set_postfix(postfix, refresh=False)

  def write(self, message: str) -> None:
    if self.bar is not None:
      self.bar.write(message, file=sys.stderr)
    elif self.enabled:
      print(message, file=sys.stderr, flush=True)

  def close(self) -> None:
    if self.bar is not None:
      self.bar.close()
