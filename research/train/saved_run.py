"""Reading a finished (or running) workdir without building its run: its config
and the variables of one of its checkpoints.

`research.train.evaluate` (evaluation of a workdir), the apps (generate,
translate, recommend) and evaluators that score with another run's model (the
FID classifier of research.metrics.evaluators.generative, handed
`load_saved_run` by research.train.builder) read runs through here.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Any

from research.core import config as config_lib
from research.train import checkpoint as ckpt_lib

log = logging.getLogger(__name__)


def load_workdir_config(workdir: str) -> config_lib.ConfigDict:
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(
      f"No config.json in {workdir!r}: is it a workdir written by `python -m tools.train`?"
    )
  with open(path) as f:
    raw = json.load(f)
  config = config_lib.base_config()
  _merge(config, raw)
  return config


# Sections whose keys belong to the experiment (a model's fields, a task's,
# the evals), not to base_config: taken whole from config.json, not merged.
_FREE_FORM = {
  ("task",),
  ("model",),
  ("evals",),
  ("references",),
  ("data", "options"),
  ("data", "tabular"),
  ("data", "tokenizer"),
}


def _merge(node, raw, path=()):
  for key, value in raw.items():
    here = path + (key,)
    if (
      isinstance(value, dict)
      and here not in _FREE_FORM
      and key in node
      and isinstance(node[key], config_lib.ConfigDict)
    ):
      _merge(node[key], value, here)
    elif isinstance(value, dict):
      node[key] = config_lib.ConfigDict(value)
    else:
      node[key] = _tuples(value)


def _tuples(value):
  """JSON lists back to the tuples configs use (hashable, e.g. model widths)."""
  if isinstance(value, list):
    return tuple(_tuples(v) for v in value)
  return value


def _pick_step(ckpt, which: str, workdir: str) -> int:
  steps = ckpt.all_steps()
  if not steps:
    raise FileNotFoundError(
      f"No checkpoints in {ckpt.directory}; train first with "
      f"`python -m tools.train ... --workdir={workdir}`."
    )
  if which == "latest":
    return steps[-1]
  if which == "best":
    if ckpt.best_metric and config_lib.is_test_eval(ckpt.best_metric.split("/", 1)[0], ""):
      # A run from before the validation split: its "best" was chosen on test.
      log.warning(
        "%s chose its best checkpoint by %s, a test metric; its test numbers are "
        "optimistic. Retrain (experiments now select on validation) or pass "
        "--checkpoint=latest.",
        workdir,
        ckpt.best_metric,
      )
    best = ckpt.best_step()
    return best if best is not None else steps[-1]
  if str(which).isdigit() and int(which) in steps:
    return int(which)
  raise ValueError(f"Checkpoint {which!r} not found; choose 'best', 'latest' or one of {steps}.")


def restore_picked(ckpt, which: str, workdir: str, read):
  """(step, read(step)) for the checkpoint `which` names ('best', 'latest' or a
  step number). When 'best' or 'latest' turns out unreadable, the other kept
  steps are tried, newest first, each skip one WARNING; a step asked for by
  number is that step or a clear error. Read-only: a damaged step is left
  where it is (the next training resume moves it to checkpoints/corrupt/),
  since a tool reading a workdir must not rearrange it under a running job.
  """
  step = _pick_step(ckpt, which, workdir)
  candidates = [step]
  if which in ("best", "latest"):
    candidates += [s for s in reversed(ckpt.all_steps()) if s != step]
  return ckpt.first_good(candidates, read)


def restore_raw_picked(ckpt, which: str, workdir: str):
  """`restore_picked` for `Checkpointer.restore_raw` (tools.score, tools.generate, ...)."""
  return restore_picked(ckpt, which, workdir, ckpt.restore_raw)


def restore_variables(workdir: str, config, which: str = "best") -> tuple[int, dict[str, Any]]:
  """(step, variables) of checkpoint `which` ('best', 'latest' or a step number)
  of `workdir`, read without building the train state (`restore_raw_picked`).

  `variables` is what `model.apply` takes: {'params': ..., **model_state} (e.g.
  'batch_stats'), every leaf whole on this process's first device.
  """
  ckpt = ckpt_lib.Checkpointer(
    os.path.join(workdir, "checkpoints"),
    keep=config.ckpt.keep,
    best_metric=config.ckpt.best_metric,
    best_mode=config.ckpt.best_mode,
  )
  try:
    step, saved = restore_raw_picked(ckpt, which, workdir)
  finally:
    ckpt.close()
  return step, {"params": saved["params"], **dict(saved.get("model_state") or {})}


@dataclasses.dataclass(frozen=True)
class SavedRun:
  """A trained run read from its workdir: `config` (its config.json),
  `variables` ({'params', **model_state}, what `model.apply` takes) of
  checkpoint `step`."""

  workdir: str
  config: Any
  variables: dict[str, Any]
  step: int


def load(workdir: str, which: str = "best") -> SavedRun:
  """The config and checkpoint `which` ('best', 'latest' or a step) of `workdir`.

  Raises FileNotFoundError (one line, saying how to train it) when `workdir`
  holds no run.
  """
  config = load_workdir_config(workdir)
  step, variables = restore_variables(workdir, config, which)
  return SavedRun(workdir=workdir, config=config, variables=variables, step=step)
