"""What a baseline is: a registered function of a `BaselineContext`.

A baseline type is a function registered with `@register('type')`:

  fn(ctx: BaselineContext, **kwargs) -> {metric: float}

Each domain module (`classification`, `recsys`, `finance`) registers its own
types here; `research.baselines` imports every domain module, so importing it
gives the complete `BASELINES`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from typing import Any

from research.core.registry import Registry

BaselineFn = Callable[..., Mapping[str, float]]

BASELINES: Registry[BaselineFn] = Registry("baseline type", "config.baselines.<name>.type")


def register(type_name: str) -> Callable[[BaselineFn], BaselineFn]:
  """Decorator: registers `fn(ctx, **kwargs) -> {metric: value}` as a baseline type."""
  return BASELINES.register(type_name)


@dataclasses.dataclass
class BaselineContext:
  """What a baseline may read: the run's config and data, and where to write.

  Attributes:
    config: the resolved experiment config.
    data: the run's `research.data.build.DataBuilder` (`data.raw(split)` gives a
      split's examples exactly as the model's evaluators see them before ops;
      `data.train_source()` the training examples).
    split: the eval split this baseline is scored on.
    output_dir: `<workdir>/baselines/<name>/`, created on demand.
  """

  config: Any
  data: Any
  split: str
  output_dir: str

  def makedirs(self) -> str:
    os.makedirs(self.output_dir, exist_ok=True)
    return self.output_dir
