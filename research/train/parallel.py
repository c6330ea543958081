"""The same step compiled with `jax.jit` over a named Mesh (data, FSDP, tensor parallel), or `jax.pmap`.

Both backends expose one interface so the loop does not care which runs:

  backend.init_state(init_fn)        -> state placed for the step
  backend.compile(train_step, predict, steps_per_call=1)
  backend.put_batch(host_batch)      -> device batch (per-process data in)
  backend.train_step(state, batch)   -> (state, metrics)      (state donated)
  backend.put_batches(host_batches)  -> n batches stacked on a leading steps axis
  backend.train_steps(state, batches) -> (state, metrics [n]): n steps, one call
                                        (when compiled with steps_per_call > 1)
  backend.predict(state, batch)      -> outputs, global [batch, ...]
  backend.canonical(state)           -> state as one unreplicated global pytree
                                        (what checkpoints and evals see)
  backend.from_canonical(state)      -> placed state
  backend.abstract_state(init_fn)    -> ShapeDtypeStructs with shardings, for restore
  backend.axis_name                  -> the step's mapped axis name, or None (implicit)
  backend.flat_allreduce             -> the step averages one raveled buffer
  backend.per_device_metrics         -> metrics carry a leading device axis (pmap)

'jit' is the default (the modern way: a global batch sharded on a 'data' mesh
axis, XLA inserts the collectives; with config.grad_allreduce='flat' the step
runs under `jax.shard_map` with explicit ones instead). 'pmap' is kept because
it is what many published JAX code bases use; tests prove all of them give the
same update.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from research.platforms import needs_step_sync
from research.train import sharding as sharding_lib
from research.train.step import scan_steps

PMAP_AXIS = "batch"
BACKENDS = ("jit", "pmap")
GRAD_ALLREDUCE = ("xla", "flat")


def wants_flat_allreduce(mode: str, devices: Sequence[jax.Device]) -> bool:
  """Whether the step averages gradients and metrics in one flat all-reduce.

  mode (config.grad_allreduce): 'xla' (the default: collectives as JAX/XLA
  place them, one all-reduce operand per gradient leaf) or 'flat' (one
  raveled buffer; only with more than one device, there is nothing to reduce
  on one). Why 'flat' exists: XLA CPU (jaxlib 0.10.2) runs a multi-operand
  all-reduce as one rendezvous of the devices' threads per operand. gpt_cpu
  on 2 host devices has 38 gradient leaves, so 38 rendezvous; raveled it is
  one (docs/performance_cpu.md, "Gradient all-reduce", has the timings). On
  GPU/TPU XLA combines per-leaf all-reduces well and the ravel would copy
  every gradient, so it stays opt-in.

  What 'flat' changes besides speed: the step then runs with explicit
  collectives (pmap's semantics; under parallel='jit' inside `jax.shard_map`):
  each device's loss is the mean over its own slice of the batch and those
  means are averaged with equal weight, in-batch negatives or other
  batch-wide terms see only the device's slice, and dropout draws one key per
  device (`fold_in` of the axis index). That equals the global step
  when every slice carries the same number of weighted targets (full
  fixed-length LM windows, as in gpt_cpu); it does not for padded or masked
  targets (MLM) or in-batch-softmax retrieval, so leave those on 'xla'.
  """
  check_grad_allreduce(mode)
  return mode == "flat" and len(devices) > 1


def check_grad_allreduce(mode: str) -> None:
  if mode not in GRAD_ALLREDUCE:
    raise ValueError(f"Unknown config.grad_allreduce {mode!r}; valid: {', '.join(GRAD_ALLREDUCE)}.")


def check_steps_per_call(n) -> int:
  if isinstance(n, bool) or not isinstance(n, int) or n < 1:
    raise ValueError(f"config.steps_per_call must be an integer >= 1, got {n!r}.")
  return n


class OneInFlight:
  """Runs compiled steps with at most one in flight when `sync_steps`.

  Before each dispatch it waits for the previous dispatch's outputs, not
  after each step: the caller's host work between steps (the next batch's
  `next()` and `put_batch`) still overlaps the running step.
  """

  sync_steps = False
  steps_per_call = 1
  _in_flight: Any = None
  # The backend's compile() sets these: jax.jit / jax.pmap-wrapped functions
  # (called, and `.lower`ed for the compiled-memory report).
  _train_step: Any = None
  _train_steps: Any = None  # only with steps_per_call > 1
  _predict: Any = None

  def dispatch(self, fn: Callable, *args):
    """fn(*args), after the previous `dispatch`'s outputs are ready (if `sync_steps`)."""
    if not self.sync_steps:
      return fn(*args)
    for x in jax.tree.leaves(self._in_flight):
      # Donated buffers (the old state) are deleted; their step is done.
      if isinstance(x, jax.Array) and not x.is_deleted():
        x.block_until_ready()
    self._in_flight = fn(*args)
    return self._in_flight

  def train_step(self, state, batch):
    """One step: a batch from `put_batch` -> (state, metrics)."""
    return self.dispatch(self._train_step, state, batch)

  def lower_train_step(self, state, batch):
    return self._train_step.lower(state, batch)

  def train_steps(self, state, batches):
    """`steps_per_call` steps in one dispatch: batches from `put_batches` -> (state, metrics [n])."""
    if self._train_steps is None:
      raise ValueError("train_steps needs compile(..., steps_per_call=n) with n > 1.")
    return self.dispatch(self._train_steps, state, batches)

  def lower_train_steps(self, state, batches):
    return self._train_steps.lower(state, batches)


class JitBackend(OneInFlight):
  """`jax.jit` over a named Mesh ('data', 'fsdp', 'tensor'; research.train.sharding).

  The batch is split over ('data', 'fsdp'); each leaf of the state is placed
  by `sharding.state_shardings` (replicated on a data-only mesh; split under
  fsdp / tensor), and XLA's SPMD partitioner inserts the collectives.

  With `flat_allreduce` (see `wants_flat_allreduce`; data parallelism only)
  the step runs under `jax.shard_map` on the 'data' axis, so it can average
  one raveled buffer with `pmean` itself; otherwise collectives are implicit
  and the step has no named axis.
  """

  per_device_metrics = False  # metrics come back as global scalars

  def __init__(
    self,
    devices: Sequence[jax.Device] | None = None,
    *,
    grad_allreduce: str = "xla",
    mesh: Mapping[str, int] | None = None,
  ):
    devices = list(devices) if devices is not None else jax.devices()
    self.mesh = sharding_lib.make_mesh(mesh or {"data": -1}, devices)
    self.mesh_shape = dict(self.mesh.shape)
    self.replicated = NamedSharding(self.mesh, P())
    self.data_sharding = NamedSharding(self.mesh, sharding_lib.batch_spec())
    self.steps_sharding = NamedSharding(
      self.mesh, sharding_lib.batch_spec(1)
    )  # [steps, batch, ...]
    self.num_devices = len(devices)
    self.sync_steps = needs_step_sync(devices)
    self.flat_allreduce = wants_flat_allreduce(grad_allreduce, devices)
    if self.flat_allreduce and (self.mesh_shape["fsdp"] > 1 or self.mesh_shape["tensor"] > 1):
      raise ValueError(
        "config.grad_allreduce='flat' is for data parallelism only; with "
        f"config.mesh={self.mesh_shape} keep grad_allreduce='xla'."
      )
    # Explicit collectives need a named axis inside the step (and BatchNorm).
    self.axis_name = "data" if self.flat_allreduce else None
    self.param_axes: Mapping[tuple[str, ...], tuple] = {}
    self._state_shardings = None

  def set_param_axes(self, param_axes: Mapping[tuple[str, ...], tuple]) -> None:
    """The model's logical parameter axes (research.train.state.param_logical_axes)."""
    self.param_axes, self._state_shardings = dict(param_axes), None

  def abstract_state(self, init_fn: Callable[[], Any]):
    shapes = jax.eval_shape(init_fn)
    if self._state_shardings is None:
      self._state_shardings = sharding_lib.state_shardings(shapes, self.param_axes, self.mesh)
    return jax.tree.map(
      lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
      shapes,
      self._state_shardings,
    )

  def init_state(self, init_fn: Callable[[], Any]):
    # Shapes first, then shardings, then init: params are created directly
    # where they live (split, under fsdp/tensor) instead of on one device.
    shardings = jax.tree.map(lambda s: s.sharding, self.abstract_state(init_fn))
    return jax.jit(init_fn, out_shardings=shardings)()

  def compile(self, train_step: Callable, predict: Callable, *, steps_per_call: int = 1) -> None:
    if self._state_shardings is None:
      raise ValueError("compile() needs the state layout: call init_state or abstract_state first.")
    if self.mesh_shape["fsdp"] > 1 or self.mesh_shape["tensor"] > 1:
      # Activations stay split by batch (the models' logical constraints);
      # a data-only mesh compiles exactly the program it always did.
      train_step = sharding_lib.with_activation_rules(train_step, self.mesh)
      predict = sharding_lib.with_activation_rules(predict, self.mesh)
    self.steps_per_call = check_steps_per_call(steps_per_call)
    self._train_step = self._jit_step(train_step, self.data_sharding)
    if steps_per_call > 1:
      self._train_steps = self._jit_step(scan_steps(train_step), self.steps_sharding)
    self._predict = jax.jit(
      predict,
      in_shardings=(self._state_shardings, self.data_sharding),
      out_shardings=self.data_sharding,
    )

  def _jit_step(self, step: Callable, batch_sharding: NamedSharding):
    if self.axis_name is not None:
      # Each device sees its slice of the batch and the whole state; the step
      # averages across 'data' itself, so its outputs are replicated (P()).
      # check_vma=False: with it, autodiff would psum the gradient of the
      # replicated params leaf by leaf (the transpose of their implicit
      # broadcast), which is exactly the per-leaf all-reduce this avoids; the
      # step then has pmap's semantics, which the agreement tests pin down.
      step = jax.shard_map(
        step,
        mesh=self.mesh,
        in_specs=(P(), batch_sharding.spec),
        out_specs=(P(), P()),
        check_vma=False,
      )
    return jax.jit(
      step,
      in_shardings=(self._state_shardings, batch_sharding),
      out_shardings=(self._state_shardings, self.replicated),
      donate_argnums=(0,),
    )

  def put_batch(self, batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    """Per-process host batch [local_batch, ...] -> global array sharded on 'data'."""
    return {
      k: jax.make_array_from_process_local_data(self.data_sharding, np.asarray(v))
      for k, v in batch.items()
    }

  def put_batches(self, batches: Sequence[dict[str, np.ndarray]]) -> dict[str, jax.Array]:
    """n per-process host batches -> global arrays [n, batch, ...] sharded on the batch axis."""
    return {
      k: jax.make_array_from_process_local_data(
        self.steps_sharding, np.stack([np.asarray(b[k]) for b in batches])
      )
      for k in batches[0]
    }

  def predict(self, state, batch):
    return self.dispatch(self._predict, state, batch)

  def flatten_batch(self, batch):
    return batch

  def canonical(self, state):
    return state

  def from_canonical(self, state):
    if self._state_shardings is None:
      return jax.device_put(state, self.replicated)
    return jax.device_put(state, self._state_shardings)

  def scalar_metrics(self, metrics) -> dict[str, float]:
    return {k: float(v) for k, v in jax.device_get(metrics).items()}


class PmapBackend(OneInFlight):
  """`jax.pmap` over this process's devices; state replicated with a leading device axis."""

  axis_name = PMAP_AXIS
  per_device_metrics = True  # metrics come back with a leading device axis

  def __init__(
    self,
    devices: Sequence[jax.Device] | None = None,
    *,
    grad_allreduce: str = "xla",
    mesh: Mapping[str, int] | None = None,
  ):
    mesh = dict(mesh or {})
    if mesh.get("fsdp", 1) != 1 or mesh.get("tensor", 1) != 1:
      raise ValueError(
        f"parallel='pmap' is data parallelism only (config.mesh={mesh}); use "
        "parallel='jit' for fsdp or tensor parallelism."
      )
    if jax.process_count() > 1:
      raise ValueError(
        "parallel='pmap' is single-process here; use parallel='jit' for "
        "multi-process runs (the Mesh backend handles jax.distributed)."
      )
    self.devices = list(devices) if devices is not None else jax.local_devices()
    self.num_devices = len(self.devices)
    self.sync_steps = needs_step_sync(self.devices)
    self.flat_allreduce = wants_flat_allreduce(grad_allreduce, self.devices)
    # Since JAX 0.8 pmap runs on shard_map: its inputs are arrays whose leading
    # axis is sharded one slice per device (this replaces the deprecated
    # device_put_sharded / device_put_replicated).
    self._stacked = NamedSharding(Mesh(np.asarray(self.devices), (PMAP_AXIS,)), P(PMAP_AXIS))

  def set_param_axes(self, param_axes) -> None:
    """pmap replicates every leaf: logical axes do not apply."""

  def abstract_state(self, init_fn: Callable[[], Any]):
    sharding = jax.sharding.SingleDeviceSharding(self.devices[0])
    return jax.tree.map(
      lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), jax.eval_shape(init_fn)
    )

  def init_state(self, init_fn: Callable[[], Any]):
    return self.from_canonical(jax.jit(init_fn)())

  def compile(self, train_step: Callable, predict: Callable, *, steps_per_call: int = 1) -> None:
    self.steps_per_call = check_steps_per_call(steps_per_call)
    self._train_step = jax.pmap(
      train_step, axis_name=PMAP_AXIS, devices=self.devices, donate_argnums=(0,)
    )
    if steps_per_call > 1:
      self._train_steps = jax.pmap(
        scan_steps(train_step), axis_name=PMAP_AXIS, devices=self.devices, donate_argnums=(0,)
      )
    self._predict = jax.pmap(predict, axis_name=PMAP_AXIS, devices=self.devices)

  def _split(self, x: np.ndarray) -> np.ndarray:
    if x.shape[0] % self.num_devices:
      raise ValueError(
        f"Batch of {x.shape[0]} does not split over {self.num_devices} devices; "
        "make the batch size a multiple of the device count."
      )
    return x.reshape((self.num_devices, x.shape[0] // self.num_devices) + x.shape[1:])

  def put_batch(self, batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    return {k: jax.device_put(self._split(np.asarray(v)), self._stacked) for k, v in batch.items()}

  def put_batches(self, batches: Sequence[dict[str, np.ndarray]]) -> dict[str, jax.Array]:
    """n host batches -> [devices, n, per_device, ...] (each device scans its own n slices)."""
    return {
      k: jax.device_put(
        np.stack([self._split(np.asarray(b[k])) for b in batches], axis=1), self._stacked
      )
      for k in batches[0]
    }

  def predict(self, state, batch):
    out = self.dispatch(self._predict, state, batch)
    return jax.tree.map(lambda y: y.reshape((-1,) + y.shape[2:]), out)

  def flatten_batch(self, batch):
    """[devices, per_device, ...] -> [batch, ...], matching `predict`'s outputs."""
    return jax.tree.map(lambda y: y.reshape((-1,) + y.shape[2:]), batch)

  def canonical(self, state):
    return jax.tree.map(lambda x: x[0], state)

  def from_canonical(self, state):
    n = self.num_devices
    return jax.tree.map(
      lambda x: jax.device_put(
        np.broadcast_to(np.asarray(x)[None], (n,) + np.shape(x)), self._stacked
      ),
      state,
    )

  def scalar_metrics(self, metrics) -> dict[str, float]:
    return {k: float(v[0]) for k, v in jax.device_get(metrics).items()}


def make_backend(
  name: str,
  devices: Sequence[jax.Device] | None = None,
  *,
  grad_allreduce: str = "xla",
  mesh: Mapping[str, int] | None = None,
):
  if name == "jit":
    return JitBackend(devices, grad_allreduce=grad_allreduce, mesh=mesh)
  if name == "pmap":
    return PmapBackend(devices, grad_allreduce=grad_allreduce, mesh=mesh)
  raise ValueError(f"Unknown parallel backend {name!r}; valid: {', '.join(BACKENDS)}.")
