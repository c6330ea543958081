"""Training throughput of the same small CNN in PyTorch and in this codebase's Flax step.

  pip install -e '.[compare]'     # torch is optional: only this script needs it
  python -m tools.compare_torch_cnn [--steps=100] [--repeats=5] [--model_kwargs='{"pool": "reshape"}']

The network is the 'cnn' model of experiments/vision/fashion_mnist.py:cnn:
conv3x3 32 -> relu -> maxpool 2 -> conv3x3 64 -> relu -> maxpool 2 -> dense 256
-> relu -> dropout -> dense 10, on [batch, 28, 28, 1] float inputs (random data:
only throughput is measured), cross-entropy, Adam (lr 1e-3). The Flax side goes
through the codebase (`build_model`, `make_optimizer`, `make_train_step`,
`JitBackend`), i.e. exactly the step `tools.train` runs, batch on device.

Both frameworks are timed interleaved in one process (torch, flax, torch, ...)
so that noise from other work on the machine hits both alike; prints one JSON
line with the median images/s of each.
"""

from research.platforms import xla_flags

xla_flags.apply()

import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from research.apps import cli
from research.core import tasks
from research.models import build_model
from research.train import optim, parallel
from research.train import state as state_lib
from research.train import step as step_lib

_LR = 1e-3
_NUM_CLASSES = 10


# ---- helpers shared with tools/compare_torch_gpt.py ---------------------------


def import_torch(tool: str = "tools.compare_torch_cnn"):
  """torch, or a clear exit: it is an optional dependency only these tools need."""
  try:
    import torch
  except ImportError:
    raise SystemExit(
      f"{tool} needs PyTorch, an optional dependency of this "
      "project: pip install -e '.[compare]' (installs torch==2.13.0)."
    ) from None
  return torch


def torch_step_runner(step):
  """`run(steps) -> seconds` calling `step() -> loss tensor`; syncs once on the last loss."""

  def run(steps: int) -> float:
    t = time.perf_counter()
    for _ in range(steps):
      loss = step()
    loss.item()
    return time.perf_counter() - t

  return run


def jax_step_runner(backend, state, host_batch):
  """`run(steps) -> seconds` of the backend's compiled step on a batch already on device.

  With a backend compiled for config.steps_per_call = n > 1, each call runs n
  steps (the same batch n times): `steps` is rounded up to whole calls and the
  time returned is for `steps` of them (time per step x steps). The state is
  donated each call, so the runner keeps the newest one.
  """
  per_call = backend.steps_per_call
  if per_call > 1:
    data, step = backend.put_batches([host_batch] * per_call), backend.train_steps
  else:
    data, step = backend.put_batch(host_batch), backend.train_step
  box = [state]

  def run(steps: int) -> float:
    calls = -(-steps // per_call)
    state = box[0]
    t = time.perf_counter()
    for _ in range(calls):
      state, metrics = step(state, data)
    jax.block_until_ready(metrics)
    box[0] = state
    return (time.perf_counter() - t) * steps / (calls * per_call)

  return run


def time_interleaved(runners: dict, *, steps: int, repeats: int, warmup: int = 10) -> dict:
  """{name: [seconds per `steps` steps] * repeats}, the runners taking turns.

  Interleaving (a, b, a, b, ...) makes load from other work on a shared
  machine hit every runner alike; compare medians.
  """
  for run in runners.values():
    run(warmup)  # compilation, allocator, thread pools
  times = {name: [] for name in runners}
  for _ in range(repeats):
    for name, run in runners.items():
      times[name].append(run(steps))
  return times


# ---- the CNN -------------------------------------------------------------------


def torch_runner(batch: int, dropout: float):
  """Returns `run(steps) -> seconds` training the CNN in PyTorch (NCHW, its native layout)."""
  torch = import_torch()
  nn = torch.nn
  torch.manual_seed(0)
  model = nn.Sequential(
    nn.Conv2d(1, 32, 3, padding=1),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Conv2d(32, 64, 3, padding=1),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Flatten(),
    nn.Linear(7 * 7 * 64, 256),
    nn.ReLU(),
    nn.Dropout(dropout),
    nn.Linear(256, _NUM_CLASSES),
  )
  model.train()
  opt = torch.optim.Adam(model.parameters(), lr=_LR)
  loss_fn = nn.CrossEntropyLoss()
  x = torch.randn(batch, 1, 28, 28)
  y = torch.randint(0, _NUM_CLASSES, (batch,))

  def step():
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
    return loss

  return torch_step_runner(step)


def flax_runner(batch: int, dropout: float, model_kwargs: dict):
  """Returns `run(steps) -> seconds` running this codebase's jit train step (batch on device)."""
  backend = parallel.JitBackend()
  model = build_model(
    "cnn",
    num_classes=_NUM_CLASSES,
    features=(32, 64),
    hidden=256,
    dropout=dropout,
    axis_name=backend.axis_name,
    **model_kwargs,
  )
  task = tasks.ClassificationTask(num_classes=_NUM_CLASSES)
  lr = optim.make_schedule({"name": "constant"}, base_lr=_LR, total_steps=1, warmup_steps=0)
  tx = optim.make_optimizer({"name": "adam"}, lr)
  init_fn = state_lib.make_init_fn(
    model, tx, jax.ShapeDtypeStruct((1, 28, 28, 1), jnp.float32), seed=0
  )
  step = step_lib.make_train_step(
    model, tx, task, lr, axis_name=backend.axis_name, flat_allreduce=backend.flat_allreduce
  )
  backend.compile(step, step_lib.make_predict(model, task))
  rng = np.random.default_rng(0)
  host = {
    "image": rng.standard_normal((batch, 28, 28, 1), np.float32),
    "label": rng.integers(0, _NUM_CLASSES, (batch,), np.int32),
  }
  return jax_step_runner(backend, backend.init_state(init_fn), host)


def main(argv):
  del argv
  batch, steps = _BATCH.value, _STEPS.value
  runners = {}
  if _ONLY.value != "flax":
    runners["torch"] = torch_runner(batch, _DROPOUT.value)
  if _ONLY.value != "torch":
    runners["flax"] = flax_runner(batch, _DROPOUT.value, json.loads(_MODEL_KWARGS.value))
  times = time_interleaved(runners, steps=steps, repeats=_REPEATS.value)
  result = {
    f"{name}_images_per_sec": round(batch * steps / statistics.median(t), 1)
    for name, t in times.items()
  }
  result.update(
    {
      f"{name}_images_per_sec_all": [round(batch * steps / s, 1) for s in t]
      for name, t in times.items()
    }
  )
  if "torch" in runners:
    result["torch_num_threads"] = import_torch().get_num_threads()
  result.update(
    batch=batch,
    steps=steps,
    repeats=_REPEATS.value,
    jax_backend=jax.default_backend(),
    flax_model_kwargs=json.loads(_MODEL_KWARGS.value),
    xla_flags=xla_flags.current(),
  )
  print(json.dumps(result), flush=True)


if __name__ == "__main__":
  # Flags are defined only when this file is the program, so that
  # tools/compare_torch_gpt.py can import the shared helpers above.
  _STEPS = flags.DEFINE_integer("steps", 100, "Timed training steps per measurement.")
  _REPEATS = flags.DEFINE_integer("repeats", 5, "Interleaved measurements per framework.")
  _BATCH = flags.DEFINE_integer("batch", 128, "Batch size.")
  _DROPOUT = flags.DEFINE_float("dropout", 0.3, "Dropout before the last layer (both frameworks).")
  _MODEL_KWARGS = flags.DEFINE_string("model_kwargs", "{}", "JSON: extra fields of the Flax 'cnn'.")
  _ONLY = flags.DEFINE_enum("only", None, ["torch", "flax"], "Time one framework only.")
  cli.run(main)
