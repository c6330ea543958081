"""The pure update and predict functions, independent of how they are parallelised.

`research.train.parallel` compiles the same `train_step` either with `jax.jit`
over a device Mesh (batch sharded on 'data'; implicit collectives, or under
`jax.shard_map` with explicit ones) or with `jax.pmap`; the explicit variants
need collectives in the step, which is what `axis_name` switches on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import optax
from jax.flatten_util import ravel_pytree

from research.train.state import TrainState


def make_train_step(
  model,
  tx: optax.GradientTransformation,
  task,
  lr_schedule: optax.Schedule,
  *,
  accum_steps: int = 1,
  axis_name: str | None = None,
  flat_allreduce: bool = False,
) -> Callable:
  """Returns `train_step(state, batch) -> (new_state, metrics)`.

  Args:
    model: flax module; `apply(variables, x, train=True, rngs=..., mutable=...)`.
    tx: the optax transformation (possibly `optax.MultiSteps`).
    task: provides `inputs(batch)` and `loss(outputs, batch) -> (loss, metrics)`.
    lr_schedule: for logging the learning rate of the update this step feeds.
    accum_steps: micro-batches per optimizer update (for the logged lr only).
    axis_name: None under plain jit (the computation is already global); the
      mapped axis name under pmap or shard_map, where gradients, metrics and
      BatchNorm statistics are averaged across devices with collectives.
    flat_allreduce: with `axis_name`, average gradients and metrics as one
      raveled float32 buffer (one all-reduce operand instead of one per leaf;
      see research.train.parallel.wants_flat_allreduce). Same values.

  metrics: scalars {'loss', task metrics..., 'grad_norm', 'param_norm', 'lr'},
  averaged over the global batch.
  """

  def train_step(state: TrainState, batch: Mapping[str, jax.Array]):
    # One key per step, independent of how many steps ran before a restart:
    # this is what makes a resumed run bitwise identical.
    rng = jax.random.fold_in(state.rng, state.step)
    if axis_name is not None:
      rng = jax.random.fold_in(rng, jax.lax.axis_index(axis_name))
    mutable = list(state.model_state.keys())

    def loss_fn(params):
      variables = {"params": params, **state.model_state}
      outputs = model.apply(
        variables, task.inputs(batch), train=True, rngs={"dropout": rng}, mutable=mutable or False
      )
      logits, new_model_state = outputs if mutable else (outputs, {})
      loss, metrics = task.loss(logits, batch)
      return loss, (metrics, new_model_state)

    grads, (metrics, new_model_state) = jax.grad(loss_fn, has_aux=True)(state.params)
    if axis_name is not None and flat_allreduce:
      grads, metrics = _flat_pmean((grads, metrics), axis_name)
    elif axis_name is not None:
      grads = jax.lax.pmean(grads, axis_name)
      metrics = jax.lax.pmean(metrics, axis_name)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = dict(metrics)
    metrics["grad_norm"] = optax.tree.norm(grads)
    metrics["param_norm"] = optax.tree.norm(params)
    metrics["lr"] = lr_schedule(state.step // accum_steps)
    new_state = dataclasses.replace(
      state,
      step=state.step + 1,
      params=params,
      model_state=dict(new_model_state),
      opt_state=opt_state,
    )
    return new_state, metrics

  return train_step


def scan_steps(train_step: Callable) -> Callable:
  """`train_step` -> `train_steps(state, batches) -> (state, metrics)`: n steps in one call.

  batches: every leaf [n, batch, ...] (n steps' batches stacked); metrics:
  every leaf [n] (step i's metrics at i). The n steps run in a `lax.scan`,
  so one compiled program and one dispatch serve n updates
  (config.steps_per_call; Keras calls it steps_per_execution). Each step is
  the same `train_step`, keyed by `state.step`, so the updates are those of n
  single calls.

  The scan stays rolled (one loop body): unrolled, it compiled far longer and
  ran slower. Inside the loop body XLA CPU (jaxlib 0.10.2) leaves
  weight-gradient convolutions in layouts that take a slow generic path, so
  convolutional models keep steps_per_call=1 on CPU (measurements:
  docs/performance_cpu.md, "Steps per call").
  """

  def train_steps(state: TrainState, batches: Mapping[str, jax.Array]):
    return jax.lax.scan(train_step, state, batches)

  return train_steps


def _flat_pmean(tree, axis_name: str):
  """`pmean` of a pytree as one raveled buffer [total size] (one collective operand).

  ravel_pytree promotes to the leaves' common dtype (float32 here) for the
  reduction and casts each leaf back.
  """
  flat, unravel = ravel_pytree(tree)
  return unravel(jax.lax.pmean(flat, axis_name))


def make_predict(model, task) -> Callable:
  """Returns `predict(state, batch) -> outputs` (e.g. logits [batch, classes])."""

  def predict(state: TrainState, batch: Mapping[str, jax.Array]) -> Any:
    variables = {"params": state.params, **state.model_state}
    return model.apply(variables, task.inputs(batch), train=False)

  return predict
