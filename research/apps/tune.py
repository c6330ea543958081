"""Hyperparameter search with optuna: each trial an ordinary run, scored on validation.

`run(config, path, arg, workdir, space, options)` is the search behind
`python -m tools.tune` (flags there). Trial n trains in `<workdir>/trials/<n>/`
through `research.train.loop.run` and is scored on the config's validation
metric (`ckpt.best_metric`, else `early_stopping.metric`; a test metric is
refused), read from the trial's summary.json, i.e. the checkpoint the tools
use. The pruner reads the intermediate evaluations through the loop's
`on_eval` hook and stops a bad trial cleanly. The first trial is the config's
own (hand-set) values when they lie in the space, so the report compares
against them.

The study is `<workdir>/study.db` (SQLite, optuna's RDB storage): running the
search again resumes it until `options.trials` trials have finished
(complete, pruned, or failed with NaN), and several processes may run it at
once (each may finish one trial past the count). A trial whose process died
(kill -9, a lost node) stops sending optuna's heartbeat; after the grace
period optuna marks it FAIL and `RetryFailedTrialCallback` enqueues its
parameters again. The retry *resumes the dead trial's run*: its workdir is
moved to the new trial's number and the loop resumes from its last
checkpoint, so no trained steps are thrown away and no parameters are run
twice from scratch. A trial stopped by SIGTERM/Ctrl-C is enqueued again the
same way at once. At the end the best trial's checkpoint is evaluated once on
the test split and `<workdir>/report.md` written (trials, best parameters,
importances, optimisation history).

The search space is {dotted config key: spec} (research/apps/search_space.py):
the experiment module's `search_space(variant)`, replaced by a space file,
with single keys added on top (`resolve_space`).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import os
import shutil
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from research.apps import cli
from research.apps import search_space as space_lib
from research.core import config as config_lib

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Options:
  """How the search runs (tools.tune's flags of the same names)."""

  trials: int = 12  # finished trials (complete, pruned or NaN) to reach
  sampler: str = "tpe"  # 'tpe' | 'random' | 'grid'
  pruner: str = "median"  # 'median' | 'halving' | 'none'
  prune_after: int = 2  # evaluations a trial runs before the pruner may stop it
  grid_points: int = 3  # values per range for the grid sampler
  seed: int = 0  # sampler seed
  heartbeat_seconds: int = 10  # a trial silent for 3x this is dead, failed and retried


@dataclasses.dataclass
class Result:
  """A finished (or resumed-and-finished) search."""

  study: Any  # optuna.Study
  metric: str  # what the trials were scored on, e.g. 'val/accuracy'
  test: dict | None  # best trial's test metrics ({'trial', 'metrics'}); None while others run
  report: str  # path of report.md


def resolve_space(
  config: config_lib.ConfigDict,
  path: str,
  arg: str | None,
  space_file: str | None = None,
  extra: Mapping[str, Any] | None = None,
) -> dict[str, tuple]:
  """The search space: the experiment module's `search_space(variant)` (or
  `space_file`'s), plus `extra` {key: spec}, checked against `config`'s keys."""
  first = (arg or "").split(",")[0].strip()
  variant = first if "=" not in first else ""
  space = (
    space_lib.from_file(space_file, variant)
    if space_file
    else space_lib.from_module(config_lib.import_experiment(path), variant)
  )
  space.update(extra or {})
  return space_lib.check(space, config)


def run(
  config: config_lib.ConfigDict,
  path: str,
  arg: str | None,
  workdir: str,
  space: Mapping[str, tuple],
  options: Options = Options(),
  overrides: Sequence[str] = (),
) -> Result:
  """Runs (or resumes) the search in `workdir` until `options.trials` have finished.

  Args:
    config: the finalized experiment config (`config_lib.load` / `finalize`);
      each trial is a copy with the trial's parameters set.
    path, arg: the experiment file and its argument, as in "path.py:arg".
    space: {dotted config key: spec}, e.g. from `resolve_space`.
    overrides: the command line's `--config.<key>=...` flags; part of the
      study's identity, so a resume with other overrides is refused.
  """
  metric = space_lib.scoring_metric(config)
  identity = dict(
    config=config.experiment,
    sampler=options.sampler,
    pruner=options.pruner,
    prune_after=options.prune_after,
    metric=metric[0],
    space={k: [space_lib.encode(v) for v in s] for k, s in space.items()},
    overrides=sorted(overrides),
  )
  # A resumed process seeds its sampler apart from the first, so a random
  # sampler does not draw the first process's points again.
  offset = (
    int(time.time_ns() % 1_000_003) if os.path.exists(os.path.join(workdir, "study.db")) else 0
  )
  sampler, grid = make_sampler(options.sampler, space, options.seed + offset, options.grid_points)
  study = open_study(
    workdir,
    "minimize" if metric[1] == "min" else "maximize",
    sampler,
    make_pruner(options.pruner, options.prune_after),
    options.heartbeat_seconds,
    identity,
  )
  enqueue_hand_set(study, config, space, grid)
  objective = Objective(study, config, path, arg, space, grid, workdir, metric)
  search(study, objective, options.trials, grid)
  optuna = _optuna()
  running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
  test = None
  if running:
    log.warning(
      "%d trial(s) still running in other processes; the last one to finish "
      "evaluates the best trial on test.",
      len(running),
    )
  else:
    test = evaluate_best(study, workdir)
  report = write_report(study, workdir, identity, metric[0], test)
  return Result(study=study, metric=metric[0], test=test, report=report)


def summary_line(result: Result) -> str:
  """One line: the best trial, its parameters and test metrics, and the report's path."""
  try:
    best = result.study.best_trial
  except ValueError:
    return f"No trial completed. Report: {result.report}"
  test = f"; test: {_show(_headline(result.test['metrics']))}" if result.test else ""
  return (
    f"Best trial {best.number}: {result.metric}={best.value:.4f} with {_show(best.params)}"
    f"{test}. Report: {result.report}"
  )


STUDY = "tune"
# Trial states that count towards Options.trials. A FAIL counts only when the run
# itself failed (NaN: a too-high learning rate is a result); a trial killed
# from outside is retried instead.
_NAN_FAILURE = "failure"


def _optuna():
  """optuna, quiet; imported on first use (only the search needs it)."""
  import optuna

  optuna.logging.set_verbosity(optuna.logging.WARNING)
  warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
  return optuna


def open_study(workdir: str, direction: str, sampler, pruner, heartbeat: int, identity: dict):
  """Creates or loads `<workdir>/study.db`; refuses one made for another search."""
  optuna = _optuna()
  os.makedirs(workdir, exist_ok=True)
  # The retry copies the dead trial's parameters and user attributes (its
  # workdir) into a new WAITING trial. Renamed in optuna 4.9, same behaviour.
  if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback"):
    retry = dict(
      heartbeat_stale_trial_callback=(optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3))
    )
  else:
    retry = dict(failed_trial_callback=optuna.storages.RetryFailedTrialCallback(max_retry=3))
  storage = optuna.storages.RDBStorage(
    f"sqlite:///{os.path.abspath(os.path.join(workdir, 'study.db'))}",
    # SQLite serialises writers; several processes wait for the lock, not fail.
    engine_kwargs={"connect_args": {"timeout": 60}},
    heartbeat_interval=heartbeat,
    grace_period=3 * heartbeat,
    **retry,
  )
  study = optuna.create_study(
    storage=storage,
    study_name=STUDY,
    direction=direction,
    sampler=sampler,
    pruner=pruner,
    load_if_exists=True,
  )
  stored = study.user_attrs.get("identity")
  if stored is None:
    study.set_user_attr("identity", identity)
  elif stored != identity:
    diff = {
      k: (stored.get(k), identity.get(k))
      for k in set(stored) | set(identity)
      if stored.get(k) != identity.get(k)
    }
    raise ValueError(
      f"{workdir}/study.db holds another search ({diff}, stored -> now); resume "
      "with the same --config and --space, or use a new --workdir."
    )
  return study


def make_sampler(name: str, space: Mapping[str, tuple], seed: int, points: int):
  optuna = _optuna()
  if name == "grid":
    grid = {
      k: [space_lib.encode(v) for v in space_lib.grid_values(s, points)] for k, s in space.items()
    }
    return optuna.samplers.GridSampler(grid, seed=seed), grid
  if name == "random":
    return optuna.samplers.RandomSampler(seed=seed), None
  return optuna.samplers.TPESampler(seed=seed), None


def make_pruner(name: str, prune_after: int):
  """Intermediate values are keyed by evaluation number (1, 2, ...)."""
  optuna = _optuna()
  if name == "median":
    return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=prune_after)
  if name == "halving":
    return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(prune_after, 1))
  return optuna.pruners.NopPruner()


def suggest(trial, space: Mapping[str, tuple], grid: dict | None) -> dict:
  """Config overrides {key: value} for this trial."""
  params = {}
  for key, spec in space.items():
    if grid is not None or spec[0] == "choice":
      choices = grid[key] if grid is not None else [space_lib.encode(v) for v in spec[1:]]
      params[key] = space_lib.decode(trial.suggest_categorical(key, choices))
    elif spec[0] == "int":
      params[key] = trial.suggest_int(key, spec[1], spec[2])
    else:
      params[key] = trial.suggest_float(key, spec[1], spec[2], log=spec[0] == "log")
  return params


def finished(study) -> list:
  """Trials that count towards `Options.trials`."""
  optuna = _optuna()
  states = optuna.trial.TrialState
  return [
    t
    for t in study.get_trials(deepcopy=False)
    if t.state in (states.COMPLETE, states.PRUNED)
    or (t.state == states.FAIL and _NAN_FAILURE in t.user_attrs)
  ]


class Objective:
  """One trial: a run in trials/<n>/ with the trial's parameters."""

  def __init__(self, study, base_config, config_path, config_arg, space, grid, workdir, metric):
    self.study, self.base, self.space, self.grid = study, base_config, space, grid
    self.path, self.arg, self.workdir = config_path, config_arg, workdir
    self.metric, self.mode = metric

  def __call__(self, trial):
    optuna = _optuna()
    from research.train import early_stopping, loop

    params = suggest(trial, self.space, self.grid)
    config = self._config(params)
    workdir = os.path.join(self.workdir, "trials", str(trial.number))
    self._adopt_dead_run(trial, workdir)
    trial.set_user_attr("workdir", os.path.relpath(workdir, self.workdir))
    pruned = []
    # Reported by evaluation number, not step: with batch_size in the space,
    # the k-th evaluation (every N epochs) falls on different steps, and the
    # pruner compares trials at equal keys. A retry inherits the steps of the
    # dead trial's evaluations, so its numbering carries on.
    eval_steps = list(trial.user_attrs.get("eval_steps", []))

    def on_eval(step, metrics):
      value = metrics.get(self.metric)
      if value is None or not math.isfinite(value):
        return
      eval_steps[:] = [s for s in eval_steps if s < step] + [step]
      trial.set_user_attr("eval_steps", eval_steps)
      trial.report(float(value), len(eval_steps))
      if trial.should_prune():
        pruned.append(step)
        raise early_stopping.Stop(
          f"pruned by the search at step {step} ({self.metric}={value:.4g} behind the other trials)"
        )

    log.warning("trial %d: %s", trial.number, _show(params))
    try:
      summary = loop.run(config, workdir, on_eval=on_eval)
    except loop.NonFiniteError as e:
      trial.set_user_attr(_NAN_FAILURE, str(e).split(". ")[0])
      raise
    except (KeyboardInterrupt, SystemExit):
      # Stopped from outside (SIGTERM saves a checkpoint): run it again,
      # resuming this workdir, when the search is resumed.
      self.study.enqueue_trial(trial.params, user_attrs=dict(trial.user_attrs))
      raise
    trial.set_user_attr("steps", int(summary["step"]))
    if pruned:
      raise optuna.TrialPruned()
    value = summary.get(self.metric)
    if value is None:
      raise ValueError(f"trial {trial.number}: summary.json has no {self.metric!r}.")
    return float(value)

  def _config(self, params):
    config = copy.deepcopy(self.base)
    for key, value in params.items():
      config_lib.set_key(config, key, value)
    return config_lib.finalize(config, self.path, self.arg)

  def _adopt_dead_run(self, trial, workdir):
    """A retried trial resumes the run of the trial it retries: that workdir
    (user attr 'workdir', inherited by the retry) moves to this trial's number."""
    previous = trial.user_attrs.get("workdir")
    if not previous or os.path.exists(workdir):
      return
    source = os.path.join(self.workdir, previous)
    if os.path.isdir(source) and os.path.abspath(source) != os.path.abspath(workdir):
      shutil.move(source, workdir)
      trial.set_user_attr("resumed", previous)
      log.warning("trial %d resumes the run of %s (its process died)", trial.number, previous)


def _show(params: dict) -> str:
  return ", ".join(f"{k}={_fmt(v)}" for k, v in params.items())


def _fmt(v) -> str:
  return f"{v:.4g}" if isinstance(v, float) else str(v)


def enqueue_hand_set(study, config, space: Mapping[str, tuple], grid: dict | None) -> None:
  """Trial 0 = the config's own values, when each lies in the space (a fresh study
  only; not for the grid sampler, which tries its own points)."""
  if (
    grid is not None
    or study.user_attrs.get("hand_set_enqueued")
    or study.get_trials(deepcopy=False)
  ):
    return
  study.set_user_attr("hand_set_enqueued", True)
  values = {}
  for key, spec in space.items():
    value = config
    for part in key.split("."):
      value = value[part]
    if not space_lib.contains(spec, value):
      return
    values[key] = space_lib.encode(value)
  study.enqueue_trial(values, user_attrs={"hand_set": True})


def search(study, objective, trials: int, grid: dict | None) -> None:
  """Runs trials until `trials` have finished (or the grid is exhausted)."""
  from research.train import loop

  if grid is not None:
    trials = min(trials, math.prod(len(v) for v in grid.values()))
  while len(finished(study)) < trials:
    study.optimize(objective, n_trials=1, catch=(loop.NonFiniteError,))


def evaluate_best(study, workdir: str) -> dict | None:
  """The best trial's checkpoint on the test split, once (cached in best_test.json)."""
  from research.train import evaluate

  try:
    best = study.best_trial
  except ValueError:
    return None
  path = os.path.join(workdir, "best_test.json")
  if os.path.exists(path):
    with open(path) as f:
      cached = json.load(f)
    if cached.get("trial") == best.number:
      return cached
  metrics = evaluate.evaluate(os.path.join(workdir, best.user_attrs["workdir"]), split="test")
  result = dict(trial=best.number, metrics=metrics)
  with open(path, "w") as f:
    json.dump(result, f, indent=2, sort_keys=True)
  return result


def write_report(study, workdir: str, identity: dict, metric: str, test: dict | None) -> str:
  """`<workdir>/report.md` with a trials table, best parameters, test metrics and plots."""
  optuna = _optuna()
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  trials = study.get_trials(deepcopy=False)
  keys = list(identity["space"])
  lines = [
    f"# Search: {identity['config']}",
    "",
    f"Scored on **{metric}** ({study.direction.name.lower()}), sampler {identity['sampler']}, "
    f"pruner {identity['pruner']}; {len(finished(study))} finished of {len(trials)} trials. "
    "Nothing here was chosen on the test split.",
    "",
  ]
  hand = next((t for t in trials if t.user_attrs.get("hand_set")), None)
  try:
    best = study.best_trial
  except ValueError:
    best = None
  if best is not None:
    lines += [
      "## Best trial",
      "",
      f"Trial {best.number}: {metric} = {best.value:.4f} "
      f"(run in `{best.user_attrs.get('workdir')}`).",
      "",
      "| Parameter | Value |",
      "|---|---|",
    ]
    lines += [f"| {k} | {_fmt(space_lib.decode(v))} |" for k, v in best.params.items()]
    lines.append("")
    if test:
      scalars = _headline(test["metrics"])
      lines += [
        "Test split, evaluated once on the best trial's checkpoint: "
        + ", ".join(f"{k} = {v:.4f}" for k, v in sorted(scalars.items()))
        + "."
      ]
      if hand is not None and hand.number != best.number:
        hand_summary = _summary(workdir, hand)
        shared = {k: hand_summary[k] for k in scalars if k in hand_summary}
        if shared:
          lines += [
            "",
            f"The hand-set config (trial {hand.number}, {metric} = "
            f"{_fmt(hand.value)}) scored on test: "
            + ", ".join(
              f"{k} = {v:.4f} (best − hand-set {scalars[k] - v:+.4f})"
              for k, v in sorted(shared.items())
            )
            + ".",
          ]
      elif hand is not None:
        lines += ["", "The best trial is the hand-set config itself."]
      lines.append("")
  lines += [
    "## Trials",
    "",
    "| # | State | " + metric + " | " + " | ".join(keys) + " | Steps | Note |",
    "|" + "---|" * (len(keys) + 5),
  ]
  for t in trials:
    note = []
    if t.user_attrs.get("hand_set"):
      note.append("hand-set config")
    if t.user_attrs.get("resumed"):
      note.append(f"resumed {t.user_attrs['resumed']}")
    if _NAN_FAILURE in t.user_attrs:
      note.append(t.user_attrs[_NAN_FAILURE])
    if t.state.name == "FAIL" and _NAN_FAILURE not in t.user_attrs:
      note.append("process died or stopped; parameters retried")
    params = [_fmt(space_lib.decode(t.params[k])) if k in t.params else "" for k in keys]
    lines.append(
      f"| {t.number} | {t.state.name.lower()} | {_fmt(t.value) if t.value is not None else ''}"
      f" | "
      + " | ".join(params)
      + f" | {t.user_attrs.get('steps', '')} | "
      + "; ".join(note)
      + " |"
    )
  lines.append("")
  plots = [
    (
      "optimization_history.png",
      "Optimisation history",
      optuna.visualization.matplotlib.plot_optimization_history,
    ),
    (
      "param_importances.png",
      "Parameter importances",
      optuna.visualization.matplotlib.plot_param_importances,
    ),
  ]
  for name, title, plot in plots:
    try:
      ax = plot(study)
      ax.figure.savefig(os.path.join(workdir, name), dpi=100, bbox_inches="tight")
      plt.close(ax.figure)
      lines += [f"## {title}", "", f"![{title}]({name})", ""]
    except Exception as e:  # noqa: BLE001  # a plot is optional; the report says why it is missing
      # Importances need >= 2 complete trials whose parameters differ.
      lines += [f"## {title}", "", f"_Not drawn: {cli._one_line(e)}_", ""]
  path = os.path.join(workdir, "report.md")
  with open(path, "w") as f:
    f.write("\n".join(lines))
  return path


def _headline(metrics: dict) -> dict:
  return {
    k: v
    for k, v in metrics.items()
    if isinstance(v, (int, float)) and k.count("/") == 1 and not k.endswith("num_examples")
  }


def _summary(workdir: str, trial) -> dict:
  path = os.path.join(workdir, trial.user_attrs.get("workdir", ""), "summary.json")
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f)
