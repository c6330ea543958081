"""XLA flags this codebase sets, in one place; `apply()` runs before JAX starts a backend.

XLA reads `XLA_FLAGS` once, when the first backend is created, so the entry
points (tools/train.py, tools/evaluate.py, tools/benchmark.py,
tools/compare_torch_cnn.py) call `apply()` first thing, before anything
imports and uses JAX.

Flags (CPU only; set only when this process can only run on CPU, so GPU / TPU
runs are untouched):

  --xla_cpu_experimental_ynn_fusion_type=-individual_convolution
      jaxlib 0.10 sends every convolution to YNNPACK. For the weight gradient
      of a convolution (a "convolution" whose window is the whole image and
      whose contraction runs over the batch) YNNPACK is slower than XLA's
      Eigen convolution (docs/performance_cpu.md, "CPU kernels"); forward and
      input-gradient convolutions run the same either way. This takes
      convolutions out of YNNPACK (dots stay).

  --xla_force_host_platform_device_count=N
      only through `set_host_devices(config.cpu_host_devices)` (an
      experiment's choice): N host devices, one data-parallel slice of the
      batch per core; see the comment at HOST_DEVICES_FLAG below.

What was tried and is not set (measured on the 2-core CPU, 'cnn', batch 128):
`--xla_cpu_use_thunk_runtime=false` (slower), `--xla_cpu_multi_thread_eigen=false`,
`--xla_cpu_use_xnnpack`, `--xla_cpu_experimental_xnn_fusion_type=...`,
`--xla_cpu_use_onednn`, `--xla_cpu_experimental_onednn_custom_call` (no
measurable change). For gpt_cpu's small matmuls (768x128 @ 128x384, one core's
worth of throughput on one device) YNNPACK without dots / eltwise / reduce fusions, XNNPACK
or oneDNN dot fusions and `--xla_cpu_enable_concurrency_optimized_scheduler`
changed nothing measurable either.

An unknown flag name or value makes XLA abort at start-up, so flags are tied to
the jaxlib range in pyproject.toml. Set RESEARCH_XLA_FLAGS=0 to set nothing; a
flag already present in XLA_FLAGS is never overridden.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys

CPU_FLAGS = ("--xla_cpu_experimental_ynn_fusion_type=-individual_convolution",)
# Host "devices" (config.cpu_host_devices, default 1): with 2 on the 2-core
# machine the data-parallel step runs one half-batch per core, which XLA's
# intra-op threading alone does not achieve for small ops (a 768x128 @
# 128x384 matmul runs on one core where PyTorch's uses both; figures in
# docs/performance_cpu.md). Not the default: steps of a few ms lose more to the
# per-step cross-device sync than they gain. Who gains, measured:
# docs/performance_cpu.md, "Host devices".
#
# Several in-process CPU devices need research.platforms.cpu.needs_step_sync:
# with async dispatch, queued steps can starve XLA CPU's client thread pool and
# abort in the all-reduce rendezvous ("Expected 2 threads to join the
# rendezvous, but only 1 of them arrived"; movielens_rating:mf did every run).
# The backends wait for each step before dispatching the next; that docstring
# has the thread dump. Neither more pool threads (PJRT_NPROC=3 made gpt_cpu
# abort too; 4 let mf finish but slowed gpt_cpu by oversubscribing the 2
# cores) nor JAX_CPU_ENABLE_ASYNC_DISPATCH=false fixed it.
HOST_DEVICES_FLAG = "--xla_force_host_platform_device_count"


# Modules whose presence means JAX may pick an accelerator when JAX_PLATFORMS is unset.
_ACCELERATOR_MODULES = (
  "jax_plugins",
  "jax_cuda12_plugin",
  "jax_cuda13_plugin",
  "jax_rocm60_plugin",
  "jax_rocm7_plugin",
  "libtpu",
)


def _cpu_only() -> bool:
  """True when JAX can only use the CPU in this process."""
  platforms = os.environ.get("JAX_PLATFORMS", os.environ.get("JAX_PLATFORM_NAME", ""))
  if platforms.strip():
    return {p.strip().lower() for p in platforms.split(",") if p.strip()} == {"cpu"}
  return not any(importlib.util.find_spec(m) is not None for m in _ACCELERATOR_MODULES)


def _backend_started() -> bool:
  bridge = sys.modules.get("jax._src.xla_bridge")
  return bool(bridge is not None and getattr(bridge, "_backends", None))


def _add_flags(flags: tuple[str, ...], caller: str) -> list[str]:
  """Appends to XLA_FLAGS each flag whose name it does not already set; returns those added.

  Nothing under RESEARCH_XLA_FLAGS=0, off CPU-only processes, or once JAX has
  started its backend (XLA would not read them any more; warns then).
  """
  if os.environ.get("RESEARCH_XLA_FLAGS", "1") == "0" or not _cpu_only():
    return []
  current_flags = os.environ.get("XLA_FLAGS", "").split()
  present = {f.split("=", 1)[0] for f in current_flags}
  added = [f for f in flags if f.split("=", 1)[0] not in present]
  if not added:
    return []
  if _backend_started():
    logging.warning("%s called after JAX started its backend; XLA flags not changed.", caller)
    return []
  os.environ["XLA_FLAGS"] = " ".join(current_flags + added)
  return added


def apply() -> list[str]:
  """Adds this codebase's flags to XLA_FLAGS; returns the flags added.

  Call before JAX creates its backend (first thing in an entry point). Adds
  nothing when RESEARCH_XLA_FLAGS=0, off CPU-only processes, or for a flag
  whose name XLA_FLAGS already sets.
  """
  return _add_flags(CPU_FLAGS, "research.platforms.xla_flags.apply()")


def set_host_devices(count: int) -> bool:
  """Asks for `count` XLA host devices (config.cpu_host_devices); True if set.

  Call after the config is loaded and before JAX creates its backend. Does
  nothing for count 1, off CPU-only processes, under RESEARCH_XLA_FLAGS=0, or
  when XLA_FLAGS already names the device count (the user's choice wins).
  """
  return count > 1 and bool(
    _add_flags((f"{HOST_DEVICES_FLAG}={count}",), f"config.cpu_host_devices={count}")
  )


def current() -> str:
  """XLA_FLAGS as this process will use it (for logging with benchmark numbers)."""
  return os.environ.get("XLA_FLAGS", "")
