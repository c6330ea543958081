"""What every evaluator is: an object built from config that scores a model on one split.

big_vision habit: the trainer knows nothing about metrics. It hands every
evaluator a `predict_fn` and writes whatever scalars and artifacts come back.

  evaluator = EVALUATORS['classification'](name='test', batches_fn=..., num_classes=10)
  scalars, artifacts = evaluator.run(predict_fn)
  # scalars['test/accuracy'], artifacts['test/confusion_matrix']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

import jax
import numpy as np

from research.core.distributed import to_host

__all__ = ["Evaluator", "HostBatch", "PredictFn", "require_outputs", "to_host"]

HostBatch = Mapping[str, np.ndarray]
PredictFn = Callable[[HostBatch], Mapping[str, jax.Array]]


class Evaluator(Protocol):
  """What the trainer relies on.

  `every_steps` = 0 means run only once, at the end of training.
  `run` returns (scalars keyed '<name>/<metric>', artifacts keyed
  '<name>/<artifact>', e.g. '<name>/confusion_matrix').
  """

  name: str
  every_steps: int

  def run(self, predict_fn: PredictFn) -> tuple[dict[str, float], dict[str, np.ndarray]]: ...


def require_outputs(out, keys, name):
  missing = [k for k in keys if k not in out]
  if missing:
    raise KeyError(f"Evaluator {name!r}: predict_fn output lacks {missing}; it has {sorted(out)}.")
