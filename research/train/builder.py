"""Builds everything a run needs from a validated config.

Shared by training (`research.train.loop`), evaluation of a saved workdir
(`research.train.evaluate`) and the benchmark tool, so the three can never
disagree about how a config becomes a model, an optimizer or a pipeline.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np
import optax

from research.core import tasks
from research.data import build as data_build
from research.data import ops as pp_ops
from research.data import pipeline
from research.metrics import evaluators as evaluators_lib
from research.models import build_model, model_fields
from research.train import durations, optim, parallel, saved_run
from research.train import precision as precision_lib
from research.train import state as state_lib
from research.train import step as step_lib

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Run:
  """The pieces of one run. Durations are in steps (one step = one batch)."""

  config: Any
  data: data_build.DataBuilder
  train_source: Any
  task: Any
  model: Any
  tx: optax.GradientTransformation
  lr_schedule: optax.Schedule
  backend: Any
  init_fn: Callable[[], state_lib.TrainState]
  steps_per_epoch: int
  total_steps: int
  train_ops: list
  eval_ops: list


def build(config, *, devices=None, workdir: str | None = None) -> Run:
  """Everything a run needs. `workdir` keeps run artifacts such as the tokenizer."""
  backend = parallel.make_backend(
    config.parallel, devices, grad_allreduce=config.grad_allreduce, mesh=config.mesh.to_dict()
  )
  n_dev = jax.device_count() if devices is None else len(devices)
  for key in ("batch_size", "eval_batch_size"):
    if config[key] % n_dev:
      raise ValueError(
        f"config.{key}={config[key]} must be a multiple of the {n_dev} devices "
        "the batch is sharded over."
      )
  data = data_build.DataBuilder(config, workdir)
  train_source = data.train_source()
  spe = pipeline.steps_per_epoch(len(train_source), config.batch_size)
  total = durations.to_steps("total", config, spe)
  if total is None:  # validated configs have one; a hand-built config may not
    raise ValueError("Set config.total_steps or config.total_epochs (steps win if both are set).")
  accum = int(config.optimizer.accum_steps or 1)
  updates = max(total // accum, 1)
  warmup = (durations.to_steps("warmup", config.schedule, spe, default=0) or 0) // accum
  lr = optim.make_schedule(
    config.schedule, base_lr=config.optimizer.lr, total_steps=updates, warmup_steps=warmup
  )
  tx = optim.make_optimizer(config.optimizer, lr)
  model_kwargs = config.model.to_dict()
  if "vocab_size" in model_kwargs and model_kwargs["vocab_size"] is None:
    if data.tokenizer is None:
      raise ValueError(
        "config.model.vocab_size is None (= from the tokenizer), but "
        "config.data.tokenizer is empty."
      )
    model_kwargs["vocab_size"] = data.tokenizer.vocab_size
  fill_model_fields(model_kwargs, data)
  model_kwargs.update(precision_lib.model_fields(config, model_kwargs["name"]))
  model = build_model(model_kwargs.pop("name"), axis_name=backend.axis_name, **model_kwargs)
  task = tasks.build_task(config.task)
  train_ops = data.ops(config.data.pp_train)
  eval_ops = data.ops(config.data.pp_eval)
  sample = _sample_input(train_source, train_ops, task)
  init_fn = state_lib.make_init_fn(model, tx, sample, config.seed)
  backend.set_param_axes(state_lib.param_logical_axes(model, sample))
  backend.abstract_state(init_fn)  # fixes the state's layout before anything compiles
  return Run(
    config=config,
    data=data,
    train_source=train_source,
    task=task,
    model=model,
    tx=tx,
    lr_schedule=lr,
    backend=backend,
    init_fn=init_fn,
    steps_per_epoch=spe,
    total_steps=total,
    train_ops=train_ops,
    eval_ops=eval_ops,
  )


def fill_model_fields(model_kwargs: dict, data: data_build.DataBuilder) -> None:
  """Sets model fields the config leaves None from the data (e.g. a recommender's
  `num_items` from the training vocabulary); only fields the model has."""
  fields = set(model_fields(model_kwargs["name"]))
  for key, value in data.model_fields().items():
    if key in fields and model_kwargs.get(key) is None:
      model_kwargs[key] = value


def _sample_input(source, train_ops, task):
  """Shapes of one preprocessed model input (an array or a pytree of arrays,
  e.g. an encoder-decoder's {'inputs', 'targets'}), with a batch dimension of 1."""
  example = pp_ops.apply(train_ops, source[0], np.random.default_rng(0))
  return jax.tree.map(
    lambda x: jax.ShapeDtypeStruct((1,) + np.shape(x), np.asarray(x).dtype), task.inputs(example)
  )


def compile_steps(run: Run) -> None:
  accum = int(run.config.optimizer.accum_steps or 1)
  train_step = step_lib.make_train_step(
    run.model,
    run.tx,
    run.task,
    run.lr_schedule,
    accum_steps=accum,
    axis_name=run.backend.axis_name,
    flat_allreduce=run.backend.flat_allreduce,
  )
  steps_per_call = int(run.config.get("steps_per_call", 1))
  if steps_per_call > 1:
    warn_if_scanned_steps_are_slow(run)
  run.backend.compile(
    train_step, step_lib.make_predict(run.model, run.task), steps_per_call=steps_per_call
  )


def warn_if_scanned_steps_are_slow(run: Run) -> bool:
  """Warns (and returns True) for config.steps_per_call > 1 with a convolutional
  model on CPU: inside the scan's loop body XLA CPU (jaxlib 0.10.2) runs the
  weight-gradient convolutions on a slow generic path (research.train.step.
  scan_steps; docs/performance_cpu.md). Traces the init (its forward
  pass) once, no compilation."""
  if jax.default_backend() != "cpu":
    return False
  if "conv_general_dilated" not in str(jax.make_jaxpr(run.init_fn)()):
    return False
  log.warning(
    "config.steps_per_call=%d with a convolutional model on CPU: XLA CPU runs the "
    "weight-gradient convolutions inside the multi-step loop on a slow path "
    "(docs/performance_cpu.md, 'Steps per call'). Set --config.steps_per_call=1, or "
    "compare both with python -m tools.benchmark.",
    run.config.steps_per_call,
  )
  return True


def train_iterator(run: Run):
  c = run.config
  return pipeline.train_iterator(
    run.train_source,
    global_batch_size=c.batch_size,
    ops=run.train_ops,
    seed=c.seed,
    num_threads=c.data.num_threads,
    prefetch=c.data.prefetch,
  )


def build_evaluators(run: Run, names=None) -> list:
  """One evaluator per `config.evals` entry (or only `names`)."""
  c = run.config
  result = []
  for name, ev in c.evals.items():
    if names is not None and name not in names:
      continue
    every = durations.to_steps("every", ev, run.steps_per_epoch, default=0) or 0
    rounds = itertools.count()

    def batches_fn(split=ev.split, ev=ev, rounds=rounds):
      # Built per round: random-window LM evals draw fresh windows each time.
      source = run.data.eval_source(split, ev, round_index=next(rounds))
      return pipeline.eval_iterator(
        source, global_batch_size=c.eval_batch_size, ops=run.eval_ops, seed=c.seed
      )

    cls = evaluators_lib.EVALUATORS[ev.type]
    kwargs = {
      k: v
      for k, v in ev.to_dict().items()
      if k not in ("type", "split", "every_steps", "every_epochs", "windows", "num_batches")
    }
    for key in ("num_classes", "label_key", "target_key", "weight_key"):
      if key in c.task:  # evaluators take the task's names unless the eval overrides them
        kwargs.setdefault(key, c.task[key])
    if getattr(cls, "wants_other_splits", False):
      # Evaluators comparing with another split (e.g. PSI of the test scores
      # against the training scores) get a batches_fn for any split.
      def batches_for(split, ev=ev):
        return pipeline.eval_iterator(
          run.data.eval_source(split, ev),
          ops=run.eval_ops,
          global_batch_size=c.eval_batch_size,
          seed=c.seed,
        )

      kwargs["batches_for"] = batches_for
    if getattr(cls, "wants_saved_runs", False):
      # Evaluators that score with another run's model (e.g. a classifier's
      # features for FID) read it through here: research/metrics may not
      # import research.train.
      kwargs["load_saved_run"] = saved_run.load
    for attr in getattr(cls, "data_attributes", ()):
      # e.g. the run's tokenizer, for evaluators that decode text.
      kwargs.setdefault(attr, getattr(run.data, attr))
    for attr in getattr(cls, "source_attributes", ()):
      # e.g. the fitted feature names of a table, for attributions.
      value = getattr(run.data.eval_source(ev.split, ev), attr, None)
      if value is not None:
        kwargs.setdefault(attr, list(value))
    class_names = getattr(run.data.raw(ev.split), "class_names", None)
    if class_names is not None:
      kwargs.setdefault("class_names", list(class_names))
    result.append(cls(name, batches_fn, every_steps=every, **kwargs))
  return result


@dataclasses.dataclass(frozen=True)
class Predictor:
  """A run's model on host batches: what every evaluator's `run(predict_fn)` gets.

  `predictor(host_batch)` puts `host_batch` ({key: [b, ...]} numpy, b the
  global eval batch size) on the devices, runs the compiled predict step on
  the current state and returns the batch's arrays plus the model output as
  global arrays: {'logits': [b, ...] (e.g. [b, num_classes], [b, T, vocab]),
  key: [b, ...] for every batch key (label, mask, ...)}.

  Evaluators that need more than predictions (integrated gradients need the
  model's gradients) use `model`, `task` and `variables()`.

  Attributes:
    model: the run's (unbound) flax module.
    task: the run's task (`research.core.tasks`); `task.inputs(batch)` is the
      model input.
    backend: the run's `research.train.parallel` backend (device layout, the
      compiled predict step).
    state_ref: () -> the current train state in the backend's layout; called at
      every use, so a Predictor made once follows a training run's state.
    one_in_flight: evaluators must not queue device work ahead (several CPU
      devices: research.platforms.cpu.needs_step_sync).
  """

  model: Any
  task: Any
  backend: Any
  state_ref: Callable[[], Any]
  one_in_flight: bool = False

  def __call__(self, host_batch: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
    batch = self.backend.put_batch(host_batch)
    logits = self.backend.predict(self.state_ref(), batch)
    flat = self.backend.flatten_batch(batch)
    return dict(flat, logits=logits)

  def variables(self) -> dict[str, Any]:
    """The current {'params': ..., **model_state} (e.g. batch_stats), one copy per
    leaf in the canonical (unreplicated) layout: what `model.apply` takes."""
    state = self.backend.canonical(self.state_ref())
    return {"params": state.params, **state.model_state}


def make_predict_fn(run: Run, state_ref: Callable[[], Any]) -> Predictor:
  """The `Predictor` of `run` at the state `state_ref()` returns."""
  return Predictor(
    model=run.model,
    task=run.task,
    backend=run.backend,
    state_ref=state_ref,
    one_in_flight=bool(run.backend.sync_steps),
  )
