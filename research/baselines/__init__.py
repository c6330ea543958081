"""Baselines computed in the same run, on the same split, as the trained model.

A published reference compares a run with somebody else's setup; a baseline
compares it with a simple or classic method on *this* run's exact data (the
global mean and user/item biases for ratings, popularity for ranking, logistic
regression and gradient-boosted trees for credit scoring, GARCH for market
risk). Every domain module registers its baselines in `base.BASELINES` and is
imported below, so the table is complete once this package is imported; the
shared loop runs them after the final evaluation and the report puts them in one table beside the
model's own metrics.

Config (`config.baselines`): name -> ConfigDict(type=<registered type>,
split=<an eval split>, **kwargs). For example

  c.baselines.gbdt = dict(type='lightgbm', split='test', num_leaves=31)

A baseline type is a function registered with `@register('type')` (`base`):

  fn(ctx: BaselineContext, **kwargs) -> {metric: float}

Domain-only packages (lightgbm, optbinning, arch, scikit-learn) are imported
inside the baseline functions, so importing this package loads none of them.

Metric names are bare ('rmse', 'auc'); the runner prefixes the split, so
'test/rmse' lines up with the evaluator's 'test/rmse' of the model. A baseline
may write its own files (a points table, predictions) under `ctx.output_dir`.
Baselines run on the primary process only, on host data (numpy, scikit-learn).
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from research.baselines import (
  classification,
  detection,
  finance,
  generative,
  recsys,
  segmentation,
  text,
)
from research.baselines.base import BASELINES, BaselineContext, BaselineFn, register
from research.outputs import writer

__all__ = [
  "BASELINES",
  "RESULTS_FILE",
  "BaselineContext",
  "baseline_arguments",
  "check_baseline_config",
  "classification",
  "detection",
  "finance",
  "generative",
  "recsys",
  "register",
  "run_baselines",
  "segmentation",
  "text",
]

log = logging.getLogger(__name__)

RESULTS_FILE = "baselines.json"


def check_baseline_config(name: str, baseline: Mapping[str, Any], eval_splits) -> None:
  """Raises ValueError naming the bad field of `config.baselines.<name>`."""
  type_name = baseline.get("type")
  fn = BASELINES.get(type_name, field=f"config.baselines.{name}.type")
  split = baseline.get("split")
  if split not in eval_splits:
    raise ValueError(
      f"config.baselines.{name}.split={split!r} is not an eval split of this "
      f"experiment; config.evals uses: {sorted(set(eval_splits))}."
    )
  # The arguments go to the baseline function after training; an unknown one
  # must fail now, not after the model has trained.
  valid = _arguments(fn)
  if valid is not None:
    unknown = sorted(set(baseline) - {"type", "split"} - set(valid))
    if unknown:
      raise ValueError(
        f"config.baselines.{name}: baseline type {type_name!r} takes no "
        f"argument(s) {unknown}; valid: {', '.join(valid) or '(none)'}."
      )


def baseline_arguments(type_name: str) -> tuple[str, ...] | None:
  """The keyword arguments a baseline type accepts (None: any, it takes **kwargs)."""
  return _arguments(BASELINES.get(type_name))


def _arguments(fn: BaselineFn) -> tuple[str, ...] | None:
  params = list(inspect.signature(fn).parameters.values())[1:]  # after ctx
  if any(p.kind is p.VAR_KEYWORD for p in params):
    return None
  return tuple(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


def run_baselines(config, data, workdir: str) -> dict[str, dict[str, float]]:
  """Runs every `config.baselines` entry; writes and returns
  {baseline name: {'<split>/<metric>': value, 'seconds': wall time}}."""
  results = {}
  for name, b in config.baselines.items():
    kwargs = {k: v for k, v in b.to_dict().items() if k not in ("type", "split")}
    ctx = BaselineContext(
      config=config, data=data, split=b.split, output_dir=os.path.join(workdir, "baselines", name)
    )
    fn = BASELINES.get(b.type, field=f"config.baselines.{name}.type")
    t0 = time.perf_counter()
    metrics = fn(ctx, **kwargs)
    seconds = time.perf_counter() - t0
    results[name] = {f"{b.split}/{k}": float(v) for k, v in metrics.items()}
    results[name]["seconds"] = seconds
    log.info(
      "Baseline %s (%s) on %s: %s (%.1f s)",
      name,
      b.type,
      b.split,
      {k: round(v, 4) for k, v in metrics.items()},
      seconds,
    )
  if results:
    writer.atomic_write(
      os.path.join(workdir, RESULTS_FILE), json.dumps(results, indent=2, sort_keys=True)
    )
  return results
