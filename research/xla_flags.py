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
      whose contraction runs over the batch) YNNPACK is ~2x slower than XLA's
      Eigen convolution: conv2 of the 'cnn' model (batch 128, 14x14x32 ->
      64) 38 ms vs 18 ms; forward and input-gradient convolutions run the same
      either way. This takes convolutions out of YNNPACK (dots stay).

What was tried and is not set (measured on the 2-core CPU, 'cnn', batch 128):
`--xla_cpu_use_thunk_runtime=false` (slower), `--xla_cpu_multi_thread_eigen=false`,
`--xla_cpu_use_xnnpack`, `--xla_cpu_experimental_xnn_fusion_type=...`,
`--xla_cpu_use_onednn`, `--xla_cpu_experimental_onednn_custom_call` (no
measurable change).

An unknown flag name or value makes XLA abort at start-up, so flags are tied to
the jaxlib range in pyproject.toml. Set RESEARCH_XLA_FLAGS=0 to set nothing; a
flag already present in XLA_FLAGS is never overridden.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import sys

CPU_FLAGS = (
    "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution",
)
# Not set: two host "devices" (--xla_force_host_platform_device_count=2). On
# the 2-core machine they made the data-parallel step run one half-batch per
# core (fashion_mnist:cnn 42.3 -> 33.1 ms/step, shakespeare_char:gpt_cpu
# 53.5 -> 36.1), but with jaxlib 0.10.2 some programs deadlock in XLA CPU's
# in-process all-reduce: recommendation/movielens_rating:mf aborts within its
# first two steps every time ("Expected 2 threads to join the rendezvous, but
# only 1 of them arrived"), and movielens_ncf:gmf hung mid-run. It depends on
# size: mf with 32-dim factors trains, with 128 (a ~5 MB gradient all-reduce)
# it aborts, also with 4 devices, with pmap, without this module's flags, with
# JAX_CPU_ENABLE_ASYNC_DISPATCH=false and with gloo CPU collectives. Opt in for
# a model you have checked: XLA_FLAGS=--xla_force_host_platform_device_count=2.


def _cpu_flags() -> tuple[str, ...]:
  return CPU_FLAGS

# Modules whose presence means JAX may pick an accelerator when JAX_PLATFORMS is unset.
_ACCELERATOR_MODULES = ("jax_plugins", "jax_cuda12_plugin", "jax_cuda13_plugin",
                        "jax_rocm60_plugin", "jax_rocm7_plugin", "libtpu")


def _cpu_only() -> bool:
  """True when JAX can only use the CPU in this process."""
  platforms = os.environ.get("JAX_PLATFORMS", os.environ.get("JAX_PLATFORM_NAME", ""))
  if platforms.strip():
    return {p.strip().lower() for p in platforms.split(",") if p.strip()} == {"cpu"}
  return not any(importlib.util.find_spec(m) is not None for m in _ACCELERATOR_MODULES)


def _backend_started() -> bool:
  bridge = sys.modules.get("jax._src.xla_bridge")
  return bool(bridge is not None and getattr(bridge, "_backends", None))


def apply() -> list[str]:
  """Adds this codebase's flags to XLA_FLAGS; returns the flags added.

  Call before JAX creates its backend (first thing in an entry point). Adds
  nothing when RESEARCH_XLA_FLAGS=0, off CPU-only processes, or for a flag
  whose name XLA_FLAGS already sets.
  """
  if os.environ.get("RESEARCH_XLA_FLAGS", "1") == "0" or not _cpu_only():
    return []
  if _backend_started():
    logging.warning("research.xla_flags.apply() called after JAX started its backend; "
                    "XLA flags not changed.")
    return []
  current_flags = os.environ.get("XLA_FLAGS", "").split()
  present = {f.split("=", 1)[0] for f in current_flags}
  added = [f for f in _cpu_flags() if f.split("=", 1)[0] not in present]
  if added:
    os.environ["XLA_FLAGS"] = " ".join(current_flags + added)
  return added


def current() -> str:
  """XLA_FLAGS as this process will use it (for logging with benchmark numbers)."""
  return os.environ.get("XLA_FLAGS", "")
