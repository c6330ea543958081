"""The one training loop every experiment runs: `run(config, workdir)`.

It knows nothing about domains: the config names a data set, a task, a model
and evaluators; the loop feeds batches to the compiled step, logs, evaluates,
checkpoints, and at the end writes summary.json, plots and report.md.
Rerunning the same command in the same workdir resumes from the last
checkpoint (see `research.train.checkpoint` for the resume order, and what
happens to a damaged one). One run at a time holds a workdir
(`research.train.workdir_lock`), and a resume keeps the workdir's config
unless told which keys may change (`research.train.config_pin`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from research import baselines as baselines_lib
from research.core import config as config_lib
from research.outputs import plots, report
from research.outputs import summary as summary_lib
from research.outputs import writer as writer_lib
from research.train import (
  builder,
  config_pin,
  durations,
  early_stopping,
  final_eval,
  init_from,
  profiling,
  workdir_lock,
)
from research.train import checkpoint as ckpt_lib
from research.train import precision as precision_lib
from research.train import state as state_lib
from research.train.progress import Progress

log = logging.getLogger(__name__)


class NonFiniteError(FloatingPointError):
  """Training produced NaN/Inf; the last good checkpoint is left untouched."""


def run(
  config, workdir: str, *, devices=None, allow_config_change=(), on_eval=None
) -> dict[str, Any]:
  """Trains (or resumes) the experiment `config` in `workdir`; returns summary.json's dict.

  One run per workdir at a time (`research.train.workdir_lock`). A resume
  keeps the config the workdir was started with (its config.json) unless
  `allow_config_change` names the keys that may differ (dotted; see
  `research.train.config_pin`). Nothing is written to the workdir before the
  config has validated, the run has been built and the checkpoint to resume
  from (if any) has been read.

  `on_eval(step, metrics)`, when given, is called after each periodic
  evaluation; raising `research.train.early_stopping.Stop` there ends the run
  as early stopping does (tools.tune's pruner).
  """
  config_lib.validate(config)
  os.makedirs(workdir, exist_ok=True)
  lock = workdir_lock.lock_for_run(workdir)
  on_error: list[Callable[[], Any]] = []  # closers of what _train opened, run if it raises
  try:
    return _train(config, workdir, devices, allow_config_change, on_error, on_eval)
  except BaseException:
    # Every exit by exception (NaN, Ctrl-C, SIGTERM's SystemExit, a crash)
    # lets the save in flight finish first: "the last good checkpoint" then
    # exists, and orbax's threads do not die at interpreter shutdown with
    # pages of tracebacks over the real error, which is what propagates.
    for close in reversed(on_error):
      close()
    raise
  finally:
    if lock is not None:
      lock.release()


def _train(config, workdir, devices, allow_config_change, on_error, on_eval) -> dict[str, Any]:
  primary = jax.process_index() == 0
  config_changes = config_pin.check(workdir, config, allow_config_change)  # reads only
  r = builder.build(config, devices=devices, workdir=workdir)
  c = config
  ckpt = ckpt_lib.Checkpointer(
    os.path.join(workdir, "checkpoints"),
    keep=c.ckpt.keep,
    best_metric=c.ckpt.best_metric,
    best_mode=c.ckpt.best_mode,
    async_save=c.ckpt.async_save,
  )
  on_error.append(ckpt.close_after_error)
  writer = writer_lib.MetricWriter(workdir, enabled=primary)
  on_error.append(writer.close)
  evaluators = builder.build_evaluators(r)
  ckpt_every = durations.to_steps("every", c.ckpt, r.steps_per_epoch, default=0) or 0
  train_iter = builder.train_iterator(r)
  stopper = early_stopping.EarlyStopping.from_config(c)  # its state rides in checkpoint meta

  # --- Fresh start or resume (order documented in research/train/checkpoint.py);
  # a damaged newest checkpoint is moved aside and the one before it used.
  resumed = ckpt.restore_newest_good(r.backend.abstract_state(r.init_fn))
  train_seconds = eval_seconds = 0.0
  if resumed is None:
    start = 0
    state = r.backend.init_state(r.init_fn)
    if c.init_from.workdir or c.init_from.get("sources"):
      canonical, desc = init_from.restore_all(c.init_from, r.backend.canonical(state))
      state = r.backend.from_canonical(canonical)
      log.info("Initialised from %s", desc)
  else:
    start, state, data_state, meta = resumed
    state = r.backend.from_canonical(state)
    train_iter.set_state(data_state)
    train_seconds = float(meta.get("train_seconds", 0.0))
    eval_seconds = float(meta.get("eval_seconds", 0.0))
    stopper.restore(meta.get("early_stopping"))
    log.info("Resumed from step %d in %s", start, ckpt.directory)
  # Only now, with the config validated, the run built and the checkpoint
  # read, does the workdir change: config.json (atomically), the allowed
  # config changes, and metrics.jsonl cut back to the step training goes on
  # from (all of it when starting from scratch: a run killed before its
  # first checkpoint left lines that would otherwise be duplicated).
  if primary:
    writer_lib.write_config(workdir, config)
    config_pin.record(workdir, start, config_changes)
  writer.truncate_after(start)
  builder.compile_steps(r)

  progress = Progress(
    total_steps=r.total_steps,
    start_step=start,
    global_batch=c.batch_size,
    enabled=primary and c.progress,
  )
  on_error.append(progress.close)
  if primary and start == 0:
    progress.write(
      f"{c.experiment}: {r.total_steps} steps ({r.steps_per_epoch} per epoch), "
      f"batch {c.batch_size} on {r.backend.num_devices} device(s) "
      f"[{c.parallel}], workdir {workdir}"
    )

  step, data_state, pending = start, train_iter.get_state(), []
  stop_requested = threading.Event()
  with _on_sigterm(stop_requested.set):
    t_start, restored_eval_seconds = time.perf_counter(), eval_seconds
    # Training time excludes this run's periodic evaluations (reported apart).
    train_time = lambda: (
      train_seconds + time.perf_counter() - t_start - (eval_seconds - restored_eval_seconds)
    )
    per_call = r.backend.steps_per_call
    events = [c.log_every_steps, ckpt_every] + [e.every_steps for e in evaluators]
    profiler = profiling.StepProfiler(c.profile, workdir)
    on_error.append(profiler.stop)
    while step < r.total_steps and not stopper.stopped:
      n = _steps_this_call(step, r.total_steps, per_call, events)
      host_batches = [next(train_iter) for _ in range(n)]
      data_state = train_iter.get_state()  # position *after* these batches: saved with step+n
      profiler.before_call(step)
      if n == 1:
        state, metrics = r.backend.train_step(state, r.backend.put_batch(host_batches[0]))
      else:
        state, metrics = r.backend.train_steps(state, r.backend.put_batches(host_batches))
      first_call = step == start
      step += n
      profiler.after_call(step, metrics)
      pending.append(metrics)
      if first_call:
        jax.block_until_ready(metrics)
        progress.first_step_done(step)
      is_last = step == r.total_steps
      preempted = stop_requested.is_set() or ckpt.reached_preemption(step)
      if step % c.log_every_steps == 0 or is_last or preempted:
        _log_train(pending, step, r, writer, progress, ckpt)
        pending = []
      due = [e for e in evaluators if e.every_steps and step % e.every_steps == 0 and not is_last]
      eval_metrics = {}
      if due:
        t_eval = time.perf_counter()
        eval_metrics = _evaluate(due, r, state, step, writer, progress, ckpt, workdir, primary)
        eval_seconds += time.perf_counter() - t_eval
        early_stopping.after_eval(stopper, step, eval_metrics, on_eval)
        if stopper.stopped:
          progress.write(f"Stopped early at step {step}: {stopper.reason}.")
      # The last step is saved after the final evaluation, with its metrics,
      # so the best-checkpoint policy can pick it.
      # With early stopping every evaluation of ckpt.best_metric is saved, so
      # the best checkpoint exists whenever the run stops (keep=N prunes the rest).
      if not is_last and (
        preempted
        or (ckpt_every and step % ckpt_every == 0)
        or (stopper.metric and c.ckpt.best_metric in eval_metrics)
      ):
        if pending:  # the guard must see every step before its state is saved
          _log_train(pending, step, r, writer, progress, ckpt)
          pending = []
        ckpt.save(
          step,
          r.backend.canonical(state),
          data_state=data_state,
          meta=dict(
            train_seconds=train_time(),
            eval_seconds=eval_seconds,
            compile_seconds=progress.compile_seconds,
            early_stopping=stopper.state(),
          ),
          metrics=eval_metrics or None,
        )
      if preempted and not is_last:
        ckpt.wait()
        progress.close()
        writer.close()
        progress.write(
          f"Stopped at step {step} on request; checkpoint saved. Rerun the same command to resume."
        )
        raise SystemExit(143)
    train_seconds = train_time()
  profiler.stop(state)
  progress.close()

  # --- Final evaluation, summary, plots and report.
  final, artifacts = {}, {}
  for ev in evaluators:
    scalars, arts = ev.run(builder.make_predict_fn(r, lambda: state))
    final.update(scalars)
    artifacts.update(arts)
  if final:
    writer.write_scalars(step, final)
  ckpt.save(
    step,
    r.backend.canonical(state),
    data_state=data_state,
    meta=dict(
      train_seconds=train_seconds,
      eval_seconds=eval_seconds,
      compile_seconds=progress.compile_seconds,
      early_stopping=stopper.state(),
    ),
    metrics=final or None,
  )
  # summary.json and report.md describe the checkpoint the tools default to.
  final, artifacts, reported = final_eval.reported_checkpoint(
    r, ckpt, step, final, artifacts, workdir
  )
  ckpt.close()
  writer.close()
  fingerprint = summary_lib.params_fingerprint(state_lib.host_variables(r.backend.canonical(state)))
  result = {k: v for k, v in final.items() if isinstance(v, (int, float))}
  if primary:
    # Not of test evals: the lowest test loss over evaluations is a choice made on test.
    result.update(
      _best_eval_losses(
        workdir,
        [
          ev
          for ev in evaluators
          if not config_lib.is_test_eval(ev.name, config.evals[ev.name].split)
        ],
      )
    )
    extra = dict(
      devices=r.backend.num_devices,
      device_kind=jax.devices()[0].device_kind,
      processes=jax.process_count(),
      eval_seconds=eval_seconds,
      mesh=",".join(
        f"{k}={v}"
        for k, v in getattr(r.backend, "mesh_shape", {"data": r.backend.num_devices}).items()
      ),
      precision=precision_lib.resolve(c.precision),
      commit=summary_lib.code_commit(),
      **reported,
    )
    if stopper.stopped:
      extra["stopped_early"] = stopper.reason
    if progress.compile_seconds is not None:  # None when a finished run is rerun
      extra["compile_seconds"] = progress.compile_seconds
    summary_lib.write_summary(
      workdir,
      result,
      step=step,
      train_seconds=train_seconds,
      params_fingerprint=fingerprint,
      extra=extra,
    )
    class_names = {ev.name: getattr(ev, "class_names", None) for ev in evaluators}
    baseline_results = baselines_lib.run_baselines(c, r.data, workdir) if c.baselines else {}
    # `result` adds the run-level numbers (e.g. val_sampled/best_loss) that
    # references may name.
    _write_plots_and_report(
      workdir,
      c,
      artifacts,
      {**final, **result},
      step,
      train_seconds,
      fingerprint,
      extra,
      class_names,
      baseline_results,
    )
  return dict(result, step=step, train_seconds=train_seconds, params_fingerprint=fingerprint)


def _steps_this_call(step: int, total: int, per_call: int, event_every) -> int:
  """Steps the next call runs: `per_call` (config.steps_per_call) when the call
  starts on a multiple of it, ends by `total` and no log, evaluation or
  checkpoint (every `event_every` steps; 0 = never) falls strictly inside it,
  since those happen between calls; else 1. So at most two programs are
  compiled (one step, `per_call` steps) and every event keeps its exact step;
  events off the multiples of `per_call` cost a few single steps around them
  (and the single step's compile, the first time, counts as training time).
  """
  end = step + per_call
  if per_call == 1 or step % per_call or end > total:
    return 1
  if any(every and (end - 1) // every > step // every for every in event_every):
    return 1
  return per_call


def _per_step(value, per_device: bool) -> np.ndarray:
  """One call's metric -> [steps]: jit gives [] or [n]; pmap [devices] or [devices, n]."""
  value = np.asarray(value, np.float64)
  return (value[0] if per_device else value).reshape(-1)


def _log_train(pending, step, r, writer, progress, ckpt) -> None:
  """Fetches the metrics of the steps since the last log; stops on NaN/Inf."""
  values = jax.device_get(pending)
  metrics = {}
  for key in values[0]:
    series = np.concatenate([_per_step(v[key], r.backend.per_device_metrics) for v in values])
    bad = ~np.isfinite(series)
    if bad.any():
      first = step - len(series) + 1 + int(np.argmax(bad))
      good = ckpt.last_finished_step()  # waits for a save in flight: name only what exists
      kept = (
        f"the last good checkpoint is step {good} in {ckpt.directory}; rerunning resumes from it"
        if good is not None
        else "no checkpoint had been saved yet"
      )
      raise NonFiniteError(
        f"Non-finite train/{key} ({series[bad][0]}) at step {first}. Stopped without saving; "
        f"{kept}. Lower optimizer.lr, set optimizer.clip_norm, or check the input data."
      )
    metrics[f"train/{key}"] = float(series.mean())
  rate = progress.examples_per_sec(step)
  if rate:
    metrics["train/examples_per_sec"] = rate
  writer.write_scalars(step, metrics)
  progress.update(step, metrics.get("train/loss"))


def _evaluate(
  evaluators, r, state, step, writer, progress, ckpt, workdir, primary
) -> dict[str, float]:
  results = {}
  for ev in evaluators:
    scalars, artifacts = ev.run(builder.make_predict_fn(r, lambda: state))
    results.update(scalars)
    if primary:  # e.g. a grid of generated samples per evaluation
      plots.plot_eval_artifacts(workdir, artifacts, experiment=r.config.experiment, step=step)
  loss = {k: v for k, v in results.items() if k.endswith("/loss") and not math.isfinite(v)}
  if loss:
    good = ckpt.last_finished_step()
    kept = (
      f"the last good checkpoint is step {good} in {ckpt.directory}"
      if good is not None
      else "no checkpoint had been saved yet"
    )
    raise NonFiniteError(f"Non-finite eval loss {loss} at step {step}; {kept}.")
  writer.write_scalars(step, results)
  headline = {k: v for k, v in results.items() if k.count("/") == 1 and "num_examples" not in k}
  progress.write(f"step {step}: " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(headline.items())))
  return results


def _best_eval_losses(workdir, evaluators) -> dict[str, float]:
  """'<eval>/best_loss': the lowest '<eval>/loss' over all evaluations of the
  run (nanoGPT reports its best validation loss). Read back from metrics.jsonl,
  which a resumed run has truncated to what really happened."""
  best: dict[str, float] = {}
  for line in writer_lib.read_metrics(workdir):
    for ev in evaluators:
      value = line.get(f"{ev.name}/loss")
      if isinstance(value, (int, float)) and math.isfinite(value):
        key = f"{ev.name}/best_loss"
        best[key] = min(best.get(key, math.inf), value)
  return best


def _write_plots_and_report(
  workdir,
  c,
  artifacts,
  final,
  step,
  train_seconds,
  fingerprint,
  extra,
  class_names,
  baseline_results,
):
  paths = list(plots.plot_curves(workdir))
  # Each artifact kind has its plot (confusion matrix, ROC, calibration, ...).
  paths += plots.plot_artifacts(
    workdir,
    artifacts,
    experiment=c.experiment,
    step=extra.get("checkpoint_step", step),
    class_names=class_names,
  )
  writer_lib.save_artifacts(workdir, artifacts)
  summary = dict(
    final, step=step, train_seconds=train_seconds, params_fingerprint=fingerprint, **extra
  )
  per_class = {k: v for k, v in final.items() if k.count("/") >= 2}
  report.write_report(
    workdir,
    experiment=c.experiment,
    config=c,
    summary=summary,
    references=[dict(r) for r in c.references],
    per_class=per_class or None,
    plots=[os.path.relpath(p, workdir) for p in paths],
    baselines=baseline_results,
    model_name=c.model.name,
    sections=report.artifact_sections(artifacts),
  )


@contextlib.contextmanager
def _on_sigterm(callback):
  """SIGTERM asks the loop to checkpoint and stop at the next call boundary (after
  at most config.steps_per_call steps)."""
  if threading.current_thread() is not threading.main_thread():
    yield
    return
  previous = signal.signal(signal.SIGTERM, lambda *_: callback())
  try:
    yield
  finally:
    signal.signal(signal.SIGTERM, previous)
