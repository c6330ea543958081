"""Measures the training step the way the loop runs it.

Numbers (one JSON object):
  examples_per_sec  global examples per second, fed by the real input pipeline
  step_ms           median wall time of one step, batch already on device, synchronised per
                    call (a call runs config.steps_per_call steps; its time / steps)
  compile_s         lowering + XLA compilation of the train step (of all steps of one call)
  flops_per_step    XLA's cost analysis of the compiled step (forward + backward + update),
                    per device (the partitioned program one device runs)
  peak_flops        the device's peak FLOP/s at the run's precision from `CHIP_PEAK_FLOPS`
                    (bf16, or what float32 matmuls run as), or on an unknown chip (and CPU)
                    a large float32 matmul measured here, in this run (`peak_source` says which)
  mfu               flops_per_step / device-resident step time / peak_flops (per device)
  mesh, precision   the device mesh and the compute precision the step ran with
  state_bytes_per_device  parameters + optimizer state held by one device (the most loaded)
  peak_bytes_per_device   the allocator's peak on device 0 where the backend reports memory
                    stats (GPU/TPU; None on CPU)
  input_overhead    (step time fed by the pipeline) / (step time with the batch on device) - 1

Throughputs are medians over `rounds` alternating (resident, fed) rounds of `steps` steps.
"""

from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp

from research.train import builder, sharding
from research.train import precision as precision_lib

# Dense peak FLOP/s per chip from the vendors' data sheets, by a substring of
# `device.device_kind`: bfloat16, and float32 matmuls as XLA runs them by
# default (TF32 tensor cores on NVIDIA Ampere and later; bf16 passes on TPU).
CHIP_PEAK_FLOPS = {
  "H200": {"bfloat16": 989e12, "float32": 494e12},
  "H100": {"bfloat16": 989e12, "float32": 494e12},
  "A100": {"bfloat16": 312e12, "float32": 156e12},
  "TPU v5p": {"bfloat16": 459e12, "float32": 459e12},
  "TPU v5 lite": {"bfloat16": 197e12, "float32": 197e12},
  "TPU v5e": {"bfloat16": 197e12, "float32": 197e12},
  "TPU v4": {"bfloat16": 275e12, "float32": 275e12},
}


def chip_peak_flops(device_kind: str, precision: str) -> float | None:
  """The table's peak for this chip and precision, or None for an unknown chip."""
  for name, peaks in CHIP_PEAK_FLOPS.items():
    if name.lower() in device_kind.lower():
      return peaks[precision]
  return None


def peak_bytes_in_use(device) -> int | None:
  """The allocator's peak on `device`, where the backend keeps memory stats
  (GPU/TPU; CPU devices return None)."""
  stats = device.memory_stats()
  return int(stats["peak_bytes_in_use"]) if stats and "peak_bytes_in_use" in stats else None


def measure_matmul_peak(n: int = 2048, repeats: int = 10) -> float:
  """Achieved FLOP/s of an n x n float32 matmul on the default device."""
  a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
  f = jax.jit(lambda x: x @ x)
  f(a).block_until_ready()
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    f(a).block_until_ready()
    times.append(time.perf_counter() - t)
  return 2 * n**3 / min(times)


def _flops(compiled) -> float | None:
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  return float(cost["flops"]) if cost and "flops" in cost else None


def benchmark(config, *, steps: int = 50, warmup: int = 5, rounds: int = 5) -> dict[str, float]:
  run = builder.build(config)
  backend = run.backend
  builder.compile_steps(run)
  state = backend.init_state(run.init_fn)
  it = builder.train_iterator(run)
  # One call runs config.steps_per_call steps, as in the loop; times are per step.
  per_call = backend.steps_per_call
  if per_call > 1:
    feed = lambda: backend.put_batches([next(it) for _ in range(per_call)])
    lower = backend.lower_train_steps
  else:
    feed = lambda: backend.put_batch(next(it))
    lower = backend.lower_train_step
  calls = max(1, -(-steps // per_call))
  batch = feed()

  t0 = time.perf_counter()
  compiled = lower(state, batch).compile()
  compile_s = time.perf_counter() - t0
  # FLOPs of one step (XLA's cost analysis counts a loop body once, so a
  # multi-step call's own count is not n steps' worth).
  if per_call > 1:
    compiled_one = backend.lower_train_step(state, backend.put_batch(next(it))).compile()
  else:
    compiled_one = compiled
  flops = _flops(compiled_one)

  for _ in range(warmup):
    state, metrics = backend.dispatch(compiled, state, batch)
  jax.block_until_ready(metrics)

  # Latency per step, batch on device, synchronised each call.
  times = []
  for _ in range(calls):
    t = time.perf_counter()
    state, metrics = backend.dispatch(compiled, state, batch)
    jax.block_until_ready(metrics)
    times.append((time.perf_counter() - t) / per_call)
  step_s = statistics.median(times)

  # Throughput with the batch on device (the ideal input pipeline) and fed by
  # the real pipeline exactly as the loop feeds it, measured in alternating
  # rounds and compared by medians: on a shared machine a single sequential
  # pair of timings mostly measures whatever else ran meanwhile (one such pair
  # gave input_overhead -0.24, the next +0.83, for the same code).
  def resident_round():
    nonlocal state
    t = time.perf_counter()
    for _ in range(calls):
      state, metrics = backend.dispatch(compiled, state, batch)
    jax.block_until_ready(metrics)
    return (time.perf_counter() - t) / (calls * per_call)

  def fed_round():
    nonlocal state
    t = time.perf_counter()
    for _ in range(calls):
      state, metrics = backend.dispatch(compiled, state, feed())
    jax.block_until_ready(metrics)
    return (time.perf_counter() - t) / (calls * per_call)

  for _ in range(warmup):
    next(it)
  resident, fed = [], []
  for _ in range(rounds):
    resident.append(resident_round())
    fed.append(fed_round())
  resident_s, fed_s = statistics.median(resident), statistics.median(fed)

  precision = precision_lib.resolve(config.precision)
  device = jax.devices()[0]
  peak = chip_peak_flops(device.device_kind, precision)
  peak_source = "table" if peak else "measured_fp32_matmul"
  peak = peak or measure_matmul_peak()
  mesh = getattr(backend, "mesh_shape", {"data": backend.num_devices})
  result = dict(
    experiment=config.experiment,
    device_kind=device.device_kind,
    devices=backend.num_devices,
    parallel=config.parallel,
    mesh=mesh,
    precision=precision,
    remat=config.remat,
    state_bytes_per_device=sharding.bytes_per_device(state)["per_device"],
    peak_bytes_per_device=peak_bytes_in_use(device),
    grad_allreduce="flat" if backend.flat_allreduce else "xla",
    steps_per_call=per_call,
    global_batch=config.batch_size,
    examples_per_sec=config.batch_size / fed_s,
    examples_per_sec_resident=config.batch_size / resident_s,
    step_ms=step_s * 1e3,
    compile_s=compile_s,
    flops_per_step=flops,
    peak_flops=peak,
    peak_source=peak_source,
    mfu=(flops / resident_s / peak) if flops else None,
    input_overhead=fed_s / resident_s - 1.0,
  )
  return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in result.items()}
