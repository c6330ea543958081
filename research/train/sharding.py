"""The named device mesh and where each leaf of the train state lives on it.

Mesh axes (config.mesh = dict(data=-1, fsdp=1, tensor=1); -1 takes the
devices the other axes leave):

  data    the batch is split over it; the state is replicated.
  fsdp    the batch is split over it too, and every large state leaf
          (parameters and the optimizer's moments alike) is split on one of
          its axes (ZeRO-3 / FSDP): a device holds 1/fsdp of it, and XLA
          gathers a parameter where the step needs it whole.
  tensor  Megatron-style tensor parallelism: attention heads, the MLP hidden
          axis and embedding-table rows are split over it; every device of a
          tensor group sees the same slice of the batch.

Models never name mesh axes. Parameters carry logical axis names
(`nn.with_logical_partitioning`: 'embed', 'heads', 'kv', 'mlp', 'vocab'), and
`LOGICAL_RULES` maps them to mesh axes (MaxText / flax lm1b habit), so changing
the parallelism is a config change. A model without names runs replicated on
'tensor' (convolutional and small models), still data-parallel and FSDP.

FSDP here does not need names: it splits the largest axis of each leaf of at
least `FSDP_MIN_SIZE` elements that divides evenly and that tensor parallelism
left free (big_vision's 'fsdp' rule). Optimizer moments are matched to their
parameter by path, so they are split exactly like it.

`data=-1` with fsdp=tensor=1 is a 1-D data-parallel mesh: today's behaviour.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from research.train.state import path_names

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")  # the batch dimension is split over both
# Logical parameter axis -> mesh axis (None: never split by name).
LOGICAL_RULES: dict[str, str | None] = {
  "heads": "tensor",
  "mlp": "tensor",
  "vocab": "tensor",
  "embed": None,
  "kv": None,
}
# Logical activation axis -> mesh axes, for `nn.with_logical_constraint` in the
# models (the residual stream [batch, length, embed]): batch split like the
# input batch, the rest whole (Megatron keeps the residual stream replicated
# across 'tensor').
ACTIVATION_RULES = (
  ("batch", BATCH_AXES),
  ("length", None),
  ("embed", None),
  ("heads", "tensor"),
  ("mlp", "tensor"),
  ("vocab", "tensor"),
  ("kv", None),
)
# Smaller leaves stay whole: splitting them saves little memory and costs a
# collective each.
FSDP_MIN_SIZE = 2**12


def check_mesh_config(mesh_config: Mapping[str, int]) -> None:
  """What can be checked before the devices are known (at config load)."""
  unknown = sorted(set(mesh_config) - set(MESH_AXES))
  if unknown:
    raise ValueError(f"config.mesh has unknown axes {unknown}; valid: {', '.join(MESH_AXES)}.")
  sizes = [mesh_config.get(a, 1) for a in MESH_AXES]
  if any(not isinstance(n, int) or n == 0 or n < -1 for n in sizes) or sizes.count(-1) > 1:
    raise ValueError(
      f"config.mesh={dict(mesh_config)}: each axis is a positive size, and at "
      "most one is -1 (the devices the others leave)."
    )


def mesh_shape(mesh_config: Mapping[str, int], num_devices: int) -> dict[str, int]:
  """config.mesh -> {'data': d, 'fsdp': f, 'tensor': t} with d * f * t == num_devices."""
  check_mesh_config(mesh_config)
  sizes = {a: int(mesh_config.get(a, 1)) for a in MESH_AXES}
  free = [a for a, n in sizes.items() if n == -1]
  fixed = math.prod(n for n in sizes.values() if n != -1)
  if free:
    if num_devices % fixed:
      raise ValueError(
        f"config.mesh={sizes}: {num_devices} devices do not split into "
        f"{fixed} x the rest; make the fixed axes divide the device count."
      )
    sizes[free[0]] = num_devices // fixed
  elif fixed != num_devices:
    raise ValueError(
      f"config.mesh={sizes} needs {fixed} devices, but the run has {num_devices}; "
      "set one axis to -1 or make the product equal the device count."
    )
  return sizes


def make_mesh(mesh_config: Mapping[str, int], devices: Sequence[jax.Device]) -> Mesh:
  """A Mesh over `devices` with axes MESH_AXES, shaped by config.mesh."""
  shape = mesh_shape(mesh_config, len(devices))
  devices = list(devices)
  # Topology-aware placement (ICI rings on TPU, NVLink islands on GPU); on CPU
  # it is the devices in order.
  from jax.experimental import mesh_utils

  grid = mesh_utils.create_device_mesh(
    tuple(shape.values()), devices=devices, allow_split_physical_axes=True
  )
  return Mesh(grid, MESH_AXES)


def with_activation_rules(fn, mesh: Mesh):
  """`fn` traced with the models' activation constraints on (research.models.
  partitioning.constrain; no-ops otherwise): activations stay split by batch
  under FSDP instead of following the split parameters."""
  from research.models import partitioning

  def constrained(*args, **kwargs):
    with partitioning.activation_sharding(mesh, ACTIVATION_RULES):
      return fn(*args, **kwargs)

  return constrained


def batch_spec(leading: int = 0) -> P:
  """PartitionSpec of a batch [batch, ...] (after `leading` unsplit axes, e.g. steps)."""
  return P(*([None] * leading), BATCH_AXES)


def leaf_spec(
  shape: Sequence[int], logical: Sequence[str | None] | None, mesh_sizes: Mapping[str, int]
) -> P:
  """The PartitionSpec of one state leaf.

  logical: the leaf's logical axis names (its parameter's), or None. An axis
  goes to the mesh axis its name maps to when that mesh axis is larger than 1
  and divides it; then FSDP takes the largest remaining axis it divides.
  """
  spec: list[str | None] = [None] * len(shape)
  if logical is not None and len(logical) == len(shape):
    for i, name in enumerate(logical):
      axis = LOGICAL_RULES.get(name) if name else None
      if axis and mesh_sizes[axis] > 1 and shape[i] % mesh_sizes[axis] == 0 and axis not in spec:
        spec[i] = axis
  fsdp = mesh_sizes["fsdp"]
  if fsdp > 1 and math.prod(shape) >= FSDP_MIN_SIZE:
    free = [i for i in range(len(shape)) if spec[i] is None and shape[i] % fsdp == 0]
    if free:
      spec[max(free, key=lambda i: (shape[i], -i))] = "fsdp"
  while spec and spec[-1] is None:
    spec.pop()
  return P(*spec)


def state_shardings(
  abstract_state: Any, param_axes: Mapping[tuple[str, ...], tuple], mesh: Mesh
) -> Any:
  """NamedSharding for every leaf of the (abstract) train state.

  A leaf whose path ends with a parameter's path and has its shape (the
  parameter itself, or an optimizer moment of it) takes that parameter's
  logical axes; the rest (step, rng, counters, BatchNorm statistics) have
  none, and are split only by FSDP when large.
  """
  sizes = dict(mesh.shape)
  flat, treedef = jax.tree_util.tree_flatten_with_path(abstract_state)

  def logical(path) -> tuple | None:
    names = path_names(path)
    for start in range(len(names)):
      if names[start:] in param_axes:
        return param_axes[names[start:]]
    return None

  specs = [
    NamedSharding(mesh, leaf_spec(np.shape(leaf), logical(path), sizes)) for path, leaf in flat
  ]
  return jax.tree_util.tree_unflatten(treedef, specs)


def bytes_per_device(state: Any) -> dict[str, int]:
  """{'total': bytes of the global state, 'per_device': the most any one device holds}.

  From each array's `addressable_shards` (this process's devices), so it is
  what really sits in device memory, replicated leaves counted on every device.
  """
  total = 0
  per_device: dict[jax.Device, int] = {}
  for leaf in jax.tree.leaves(state):
    if not isinstance(leaf, jax.Array):
      continue
    total += leaf.size * leaf.dtype.itemsize
    for shard in leaf.addressable_shards:
      per_device[shard.device] = (
        per_device.get(shard.device, 0) + shard.data.size * shard.data.dtype.itemsize
      )
  return {"total": total, "per_device": max(per_device.values(), default=0)}
