"""Multi-process start-up through JAX's own runtime (`jax.distributed`).

On TPU pods and on SLURM/Open MPI GPU clusters `jax.distributed.initialize()`
discovers the coordinator, process count and id from the environment by
itself. Elsewhere (e.g. two local processes in a test) set
`JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES` and `JAX_PROCESS_ID`. Where
nothing in the environment says "multi-process" but JAX can discover the job
itself (a Cloud TPU VM slice, whose workers it finds through the VM metadata
server), set `RESEARCH_DISTRIBUTED=auto` to call `jax.distributed.initialize()`
with no arguments.
Nothing here schedules work: that is the cluster's job.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils

_ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
_CLUSTER_HINTS = (
  "SLURM_JOB_ID",
  "OMPI_COMM_WORLD_SIZE",
  "TPU_WORKER_HOSTNAMES",
  "MEGASCALE_COORDINATOR_ADDRESS",
)


def initialize() -> None:
  """Initializes jax.distributed when the environment describes a multi-process job."""
  if any(k in os.environ for k in _ENV):
    missing = [k for k in _ENV if k not in os.environ]
    if missing:
      raise ValueError(f"Multi-process run needs all of {_ENV}; missing {missing}.")
    if (
      jax.config.values["jax_platforms"] in (None, "", "cpu")
      and os.environ.get("JAX_PLATFORMS", "cpu") == "cpu"
    ):
      # CPU processes need an explicit collectives backend to talk to each other.
      jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
      coordinator_address=os.environ["JAX_COORDINATOR_ADDRESS"],
      num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
      process_id=int(os.environ["JAX_PROCESS_ID"]),
    )
  elif (
    any(k in os.environ for k in _CLUSTER_HINTS) or os.environ.get("RESEARCH_DISTRIBUTED") == "auto"
  ):
    jax.distributed.initialize()


def to_host(x: Any) -> np.ndarray:
  """A jax array (possibly sharded over devices or hosts) as one numpy array."""
  if isinstance(x, jax.Array) and not x.is_fully_addressable:
    if x.is_fully_replicated:
      return np.asarray(x.addressable_data(0))
    # Only reached in multi-host runs where the compiler left a reduction
    # sharded; every host gets the global value.
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(x)
