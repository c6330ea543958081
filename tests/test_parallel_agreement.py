"""The jit-sharded step, the pmap step and a single-device step give the same update
(and n steps in one scanned call, config.steps_per_call, the same as n calls).

Same initial state, same global batch, BatchNorm included: under implicit jit
the batch statistics are over the global batch automatically; under pmap and
under jit with explicit collectives (shard_map, `grad_allreduce='flat'`) they
are averaged across devices with `axis_name`; on one device there is nothing
to average. All must agree to float tolerance, for params and statistics,
whether gradients are averaged leaf by leaf ('xla') or as one raveled buffer
('flat').
"""

import jax
import numpy as np
import pytest

from research.core import config as config_lib
from research.train import builder

# Every case trains resnet_tiny under several parallel set-ups: 10-60 s each on 2 cores.
pytestmark = pytest.mark.slow


def _config(
  parallel: str, accum_steps: int = 1, grad_allreduce: str = "xla", steps_per_call: int = 1
):
  c = config_lib.base_config()
  c.data.name = "synthetic"
  c.data.options = config_lib.ConfigDict(
    dict(features={"image": ((8, 8, 3), "uint8"), "label": ((), "int32", 10)}, num_examples=64)
  )
  c.data.pp_train = c.data.pp_eval = "value_range(0, 1)"
  c.model = config_lib.ConfigDict(dict(name="resnet_tiny", stem="small", num_classes=10))
  c.batch_size, c.eval_batch_size, c.total_steps = 16, 16, 3
  c.optimizer.name, c.optimizer.lr = "momentum", 0.1
  c.optimizer.accum_steps = accum_steps
  c.parallel = parallel
  c.grad_allreduce = grad_allreduce
  c.steps_per_call = steps_per_call
  c.evals.test = config_lib.eval_config("classification", "test")
  return config_lib.finalize(c, "tests/parallel", None)


def _train(parallel, devices, steps=3, accum_steps=1, grad_allreduce="xla"):
  run = builder.build(_config(parallel, accum_steps, grad_allreduce), devices=devices)
  assert run.backend.flat_allreduce == (grad_allreduce == "flat" and len(devices) > 1)
  state = run.backend.init_state(run.init_fn)
  builder.compile_steps(run)
  it = builder.train_iterator(run)
  losses = []
  for _ in range(steps):
    state, metrics = run.backend.train_step(state, run.backend.put_batch(next(it)))
    losses.append(run.backend.scalar_metrics(metrics)["loss"])
  return jax.device_get(run.backend.canonical(state)), losses


# accum_steps=2 runs optax.MultiSteps: step 2 applies an update, step 3 only accumulates,
# so both kinds of step are compared.
@pytest.mark.parametrize("accum_steps", [2])
def test_jit_pmap_and_single_device_agree(accum_steps):
  assert jax.device_count() == 8, "tests/conftest.py should give 8 fake CPU devices"
  devices = jax.devices()
  one, loss_one = _train("jit", devices[:1], accum_steps=accum_steps, grad_allreduce="xla")
  assert "batch_stats" in one.model_state
  runs = {
    (parallel, mode): _train(parallel, devices, accum_steps=accum_steps, grad_allreduce=mode)
    for parallel in ("jit", "pmap")
    for mode in ("xla", "flat")
  }
  for (parallel, mode), (other, losses) in runs.items():
    np.testing.assert_allclose(losses, loss_one, rtol=1e-5, err_msg=f"{parallel}/{mode}")
    assert int(other.step) == int(one.step) == 3
    for tree in ("params", "model_state"):
      a = jax.tree_util.tree_leaves_with_path(getattr(other, tree))
      b = jax.tree_util.tree_leaves(getattr(one, tree))
      for (path, x), y in zip(a, b):
        np.testing.assert_allclose(
          x,
          y,
          rtol=2e-5,
          atol=2e-6,
          err_msg=(f"{parallel}/{mode}: {tree}{jax.tree_util.keystr(path)}"),
        )
  # The update really moved the parameters (the comparison is not vacuous).
  init = builder.build(_config("jit"), devices=devices[:1]).init_fn()
  moved = jax.tree.map(
    lambda a, b: np.abs(np.asarray(a) - np.asarray(b)).max(), one.params, init.params
  )
  assert max(jax.tree.leaves(moved)) > 1e-3


@pytest.mark.parametrize("parallel", ["jit", "pmap"])
def test_multi_cpu_device_steps_run_one_at_a_time(parallel):
  """Several CPU devices: a step is dispatched only once the previous one is
  done (see research.platforms.cpu.needs_step_sync: queued steps can deadlock
  XLA CPU's all-reduce); one device keeps async dispatch."""
  devices = jax.devices()
  run = builder.build(_config(parallel), devices=devices[:2])
  assert run.backend.sync_steps
  assert not builder.build(_config(parallel), devices=devices[:1]).backend.sync_steps
  state = run.backend.init_state(run.init_fn)
  builder.compile_steps(run)
  it = builder.train_iterator(run)
  batch = run.backend.put_batch(next(it))
  state, first = run.backend.train_step(state, batch)
  state, second = run.backend.train_step(state, batch)
  assert all(x.is_ready() for x in jax.tree.leaves(first))
  out = run.backend.predict(state, batch)
  assert all(x.is_ready() for x in jax.tree.leaves((state, second)))
  assert np.isfinite(run.backend.scalar_metrics(second)["loss"])
  assert jax.tree.leaves(out)
  assert builder.make_predict_fn(run, lambda: state).one_in_flight  # evaluators follow suit


def test_flat_allreduce_is_one_collective_operand():
  """'flat' averages every gradient leaf and metric in one all-reduce operand;
  'xla' leaves one operand per leaf (what costs a rendezvous each on XLA CPU)."""
  import re

  devices = jax.devices()[:2]

  def config(mode):  # a model without BatchNorm, whose statistics are reduced per layer
    c = _config("jit", grad_allreduce=mode)
    c.model = config_lib.ConfigDict(dict(name="cnn", num_classes=10, features=(4, 8), hidden=16))
    return c

  def all_reduce_operands(mode):
    run = builder.build(config(mode), devices=devices)
    builder.compile_steps(run)
    state = run.backend.init_state(run.init_fn)
    batch = run.backend.put_batch(next(builder.train_iterator(run)))
    hlo = run.backend.lower_train_step(state, batch).compile().as_text()
    shapes = [m.group(1) for m in re.finditer(r"= (\(.*?\)|\S+) all-reduce(?:-start)?\(", hlo)]
    return sum(max(1, s.count("[")) for s in shapes)

  num_leaves = len(jax.tree.leaves(builder.build(config("xla"), devices=devices).init_fn().params))
  assert num_leaves >= 6
  assert all_reduce_operands("xla") >= num_leaves
  assert all_reduce_operands("flat") == 1


def test_unknown_grad_allreduce_is_refused():
  with pytest.raises(ValueError, match="grad_allreduce"):
    _config("jit", grad_allreduce="ring")


@pytest.mark.parametrize(
  "parallel, num_devices, mode",
  [("jit", 1, "xla"), ("jit", 2, "xla"), ("jit", 2, "flat"), ("pmap", 2, "xla")],
)
def test_train_steps_equal_single_steps(parallel, num_devices, mode):
  """steps_per_call: 3 steps in one scanned call give the per-step losses and
  the state of 3 single calls, BatchNorm statistics and optax.MultiSteps'
  accumulator (accum_steps=2) included."""
  run = builder.build(
    _config(parallel, accum_steps=2, grad_allreduce=mode, steps_per_call=3),
    devices=jax.devices()[:num_devices],
  )
  builder.compile_steps(run)
  it = builder.train_iterator(run)
  host = [next(it) for _ in range(3)]
  single, losses = run.backend.init_state(run.init_fn), []
  for batch in host:
    single, metrics = run.backend.train_step(single, run.backend.put_batch(batch))
    losses.append(run.backend.scalar_metrics(metrics)["loss"])
  chunked = run.backend.init_state(run.init_fn)
  chunked, metrics = run.backend.train_steps(chunked, run.backend.put_batches(host))
  series = np.asarray(jax.device_get(metrics["loss"]))
  if run.backend.per_device_metrics:
    series = series[0]
  np.testing.assert_allclose(series, losses, rtol=1e-5)
  a, b = (
    jax.device_get(run.backend.canonical(chunked)),
    jax.device_get(run.backend.canonical(single)),
  )
  assert int(a.step) == int(b.step) == 3
  for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(x, y, rtol=2e-5, atol=2e-6, err_msg=jax.tree_util.keystr(path))
