"""Durations in one unit inside the loop: configs may say steps or epochs.

big_vision's `utils.steps` habit: a config names a duration as
`<prefix>_steps` or `<prefix>_epochs`; `to_steps` turns it into steps (one
step = one batch) so the loop only ever counts steps. When both are set,
`_steps` wins (as `max_steps` does over epochs in most trainers): that is what
lets `--config.total_steps=100` shorten an epoch-based config from the
command line, where ml_collections cannot set a number back to None.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def to_steps(
  prefix: str, config: Mapping[str, Any], steps_per_epoch: int | None, *, default: int | None = None
) -> int | None:
  """Resolves `config.<prefix>_steps` / `config.<prefix>_epochs` to steps.

  Args:
    prefix: e.g. 'total', 'warmup', 'eval_every'.
    config: a ConfigDict or mapping.
    steps_per_epoch: optimizer steps in one pass over the training data; may be
      None when only `_steps` is allowed.
    default: returned when neither key is set (or both are None).

  Returns:
    The duration in steps (epochs are rounded up so a fractional epoch still
    trains), or `default`.
  """
  get = config.get if hasattr(config, "get") else lambda k, d=None: getattr(config, k, d)
  steps, epochs = get(f"{prefix}_steps", None), get(f"{prefix}_epochs", None)
  if steps is not None:
    if steps < 0:
      raise ValueError(f"`{prefix}_steps` must be >= 0, got {steps}.")
    return int(steps)
  if epochs is not None:
    if steps_per_epoch is None:
      raise ValueError(f"`{prefix}_epochs` needs a known epoch length; use `{prefix}_steps`.")
    if epochs < 0:
      raise ValueError(f"`{prefix}_epochs` must be >= 0, got {epochs}.")
    return math.ceil(epochs * steps_per_epoch)
  return default
