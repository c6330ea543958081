"""Search spaces for `tools.tune`: {dotted config key: spec}, without optuna.

A spec is a tuple (in an experiment module or a --space=file.py) or the same
as a string (on the command line, `--space.optimizer.lr=log:1e-4:1e-1`):

  ("log", lo, hi)        float, log-uniform            "log:1e-4:1e-1"
  ("float", lo, hi)      float, uniform                "float:0:0.5"
  ("int", lo, hi)        integer, both ends included   "int:1:4"
  ("choice", a, b, ...)  one of the values             "choice:(64,)|(128,)|(64,64)"

An experiment module declares its default with a module-level
`search_space(variant) -> dict`; a --space file may define that function or a
`SEARCH_SPACE` dict. The grid sampler takes `choice` values as they are and
`points` values spread over each range (log-spaced for 'log').
"""

from __future__ import annotations

import ast
import importlib.util
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

KINDS = ("log", "float", "int", "choice")


def parse(text: str) -> tuple:
  """'log:1e-4:1e-1' -> ('log', 0.0001, 0.1); 'choice:a|b' -> ('choice', 'a', 'b')."""
  kind, _, rest = text.partition(":")
  if kind not in KINDS or not rest:
    raise ValueError(
      f"Search space spec {text!r} must be one of log:LO:HI, float:LO:HI, "
      "int:LO:HI or choice:A|B|..."
    )
  if kind == "choice":
    return ("choice",) + tuple(_literal(v) for v in rest.split("|"))
  parts = rest.split(":")
  if len(parts) != 2:
    raise ValueError(f"Search space spec {text!r} needs two bounds, {kind}:LO:HI.")
  cast = int if kind == "int" else float
  return (kind, cast(float(parts[0])), cast(float(parts[1])))


def _literal(text: str) -> Any:
  try:
    return ast.literal_eval(text.strip())
  except (ValueError, SyntaxError):
    return text.strip()  # a bare word: a string choice


def check(space: Mapping[str, Any], config) -> dict[str, tuple]:
  """The space with string specs parsed; ValueError naming a bad key or spec."""
  if not space:
    raise ValueError(
      "Empty search space: the experiment declares no `search_space(variant)`; "
      "pass --space=space.py or --space.<config key>=log:1e-4:1e-1 (see "
      "research/apps/search_space.py)."
    )
  out = {}
  for key, spec in space.items():
    node = config
    for part in key.split("."):
      if not hasattr(node, "keys") or part not in node:
        raise ValueError(
          f"Search space key {key!r} is not a config key (dotted, e.g. optimizer.lr)."
        )
      node = node[part]
    spec = parse(spec) if isinstance(spec, str) else tuple(spec)
    if not spec or spec[0] not in KINDS:
      raise ValueError(f"Search space {key!r}: spec {spec!r} must start with one of {KINDS}.")
    if spec[0] == "choice":
      if len(spec) < 2:
        raise ValueError(f"Search space {key!r}: 'choice' needs at least one value.")
    elif len(spec) != 3 or not spec[1] < spec[2] or (spec[0] == "log" and spec[1] <= 0):
      raise ValueError(f"Search space {key!r}: {spec!r} needs LO < HI (and LO > 0 for 'log').")
    out[key] = spec
  return out


def from_module(module, variant: str) -> dict:
  """A module's `search_space(variant)` or `SEARCH_SPACE`; {} when it has neither."""
  if hasattr(module, "search_space"):
    return dict(module.search_space(variant))
  return dict(getattr(module, "SEARCH_SPACE", {}))


def from_file(path: str, variant: str) -> dict:
  spec = importlib.util.spec_from_file_location("search_space_file", path)
  if spec is None or spec.loader is None:
    raise FileNotFoundError(f"--space={path!r}: no such Python file.")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  space = from_module(module, variant)
  if not space:
    raise ValueError(f"--space={path!r} defines neither search_space(variant) nor SEARCH_SPACE.")
  return space


def grid_values(spec: tuple, points: int) -> list:
  """The values the grid sampler tries for one spec."""
  kind = spec[0]
  if kind == "choice":
    return list(spec[1:])
  lo, hi = spec[1], spec[2]
  if kind == "log":
    return [float(v) for v in np.geomspace(lo, hi, points)]
  if kind == "int":
    # tolist() gives Python floats, and round() of a float is an int.
    return sorted({round(v) for v in np.linspace(lo, hi, points).tolist()})
  return [float(v) for v in np.linspace(lo, hi, points)]


def encode(value: Any) -> Any:
  """A choice as optuna stores it (None, bool, int, float or str): tuples as their repr."""
  return value if value is None or isinstance(value, (bool, int, float, str)) else repr(value)


def decode(value: Any) -> Any:
  if isinstance(value, str) and value[:1] in "([{":
    return _literal(value)
  return value


def contains(spec: tuple, value: Any) -> bool:
  """Whether `value` (a config's own value) lies in `spec` (to enqueue it as trial 0)."""
  if spec[0] == "choice":
    return encode(value) in [encode(v) for v in spec[1:]]
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
    return False
  return spec[1] <= value <= spec[2]


def scoring_metric(config) -> tuple[str, str]:
  """(metric, 'min'|'max') tools.tune scores a trial on: config.ckpt.best_metric
  (the checkpoint the tools use is chosen by it), else early_stopping.metric.
  ValueError when neither is set or the metric is a test eval's."""
  from research.train import early_stopping

  if config.ckpt.best_metric:
    metric, mode = config.ckpt.best_metric, config.ckpt.best_mode
  elif config.early_stopping.metric:
    metric, mode = config.early_stopping.metric, config.early_stopping.mode
  else:
    raise ValueError(
      "tools.tune scores trials on config.ckpt.best_metric (or "
      "early_stopping.metric); set one to a validation metric, e.g. "
      "--config.ckpt.best_metric=val/accuracy."
    )
  if early_stopping.is_test_metric(config, metric):
    raise ValueError(
      f"tools.tune refuses to select on the test metric {metric!r} "
      "(config.ckpt.best_metric); name a validation eval's metric, e.g. "
      "--config.ckpt.best_metric=val/accuracy."
    )
  return metric, mode
