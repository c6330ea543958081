"""Every `experiment:variant` of experiments/, with what it trains and selects on.

An experiment is a module `experiments/<domain>/<name>.py` with `get_config`
and a module-level `VARIANTS` (a tuple of names, or a dict keyed by them; the
first is the default, as in `parse_arg(arg, variants=VARIANTS)`). Modules whose
name starts with '_' are shared helpers, not experiments.

`entries()` loads every variant's config (`research.core.config.load`: built,
locked and validated, no data read) and describes it: data set, model, the
validation split and the metric its best checkpoint is chosen by, its test
evals and the published references it reproduces. `python -m tools.experiments`
prints it.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from research.core import config as config_lib

EXPERIMENTS_PACKAGE = "experiments"


def experiment_modules(package: str = EXPERIMENTS_PACKAGE) -> dict[str, Any]:
  """{'vision/digits': module, ...}: every experiment module, sorted by name."""
  root = importlib.import_module(package)
  found = {}
  for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
    short = info.name.split(".")[-1]
    if info.ispkg or short.startswith("_"):
      continue
    module = importlib.import_module(info.name)
    if hasattr(module, "get_config"):
      found[info.name.removeprefix(f"{package}.").replace(".", "/")] = module
  return dict(sorted(found.items()))


def variants(module) -> tuple[str, ...]:
  """The module's variant names, the default first."""
  names = getattr(module, "VARIANTS", None)
  if not names:
    raise ValueError(
      f"Experiment module {module.__name__} has no VARIANTS; declare "
      "`VARIANTS = (...)` (names accepted by parse_arg) at module level."
    )
  return tuple(names)


def _validation(config) -> str:
  """How the validation split is made, in words."""
  data = config.data
  if data.get("validation_fraction") is not None:
    return (
      f"{data.validation_fraction:.0%} of '{data.train_split}', stratified by label, "
      f"seed {data.validation_seed}"
    )
  options = data.options.to_dict() if data.options else {}
  if data.format == "interactions":
    if not options.get("validation"):
      return "none"
    method = options.get("split_by")
    return f"carved from '{data.train_split}' by the test split's method ({method})"
  if data.format == "tabular":
    return "the data set's own (seeded stratified 60/20/20)"
  if "validation_days" in options:
    return f"out of time: the last {options['validation_days']} days before the test period"
  return "the data set's own 'validation' split"


def describe(config) -> dict[str, Any]:
  """One catalogue entry of a loaded config (plain JSON types)."""
  best = config.ckpt.best_metric
  best_eval = best.split("/", 1)[0] if best else ""
  data = {"name": config.data.name, "format": config.data.format}
  options = config.data.options.to_dict() if config.data.options else {}
  for key in ("source", "split_by", "data"):
    if options.get(key) is not None:
      data[key] = options[key]
  return {
    "experiment": config.experiment,
    "data": data,
    "model": config.model.name,
    "validation": _validation(config),
    "selection": (
      {"metric": best, "mode": config.ckpt.best_mode, "split": config.evals[best_eval].split}
      if best
      else None
    ),
    "selects_on_test": bool(best)
    and config_lib.is_test_eval(best_eval, config.evals[best_eval].split),
    "evals": {name: ev.split for name, ev in config.evals.items()},
    "references": [
      {
        "metric": r["metric"],
        "value": r["value"],
        "source": r.get("source", ""),
        "data": dict(r.get("data") or {}),
      }
      for r in config.references
    ],
  }


def entries(package: str = EXPERIMENTS_PACKAGE) -> list[dict[str, Any]]:
  """`describe` of every variant of every experiment module, in catalogue order."""
  out = []
  for name, module in experiment_modules(package).items():
    for variant in variants(module):
      config = config_lib.load(f"{name}:{variant}")
      out.append(describe(config))
  return out


def _cell(value: Any) -> str:
  return str(value).replace("|", "\\|")


def markdown(rows: list[dict[str, Any]]) -> str:
  """The catalogue as a markdown table, references listed under each row's cells."""
  lines = [
    "| experiment | data | model | validation | selected by | published reference |",
    "|---|---|---|---|---|---|",
  ]
  for e in rows:
    s = e["selection"]
    selected = f"{s['metric']} ({s['mode']})" if s else "last step"
    refs = "; ".join(f"{r['metric']} {r['value']} ({r['source']})" for r in e["references"])
    data = e["data"]["name"] + "".join(
      f", {k}={v}" for k, v in e["data"].items() if k not in ("name", "format")
    )
    lines.append(
      "| "
      + " | ".join(
        _cell(x)
        for x in (e["experiment"], data, e["model"], e["validation"], selected, refs or "—")
      )
      + " |"
    )
  return "\n".join(lines) + "\n"
