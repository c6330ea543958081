"""tools.benchmark's measurement runs end to end and reports what it measured.

Only the plumbing is tested (the numbers are timings, which a unit test must
not judge): every field is present, positive where it is a time or a rate,
and 'grad_allreduce' says which gradient all-reduce the step used.
"""

import math

import jax
import pytest

from research.core import config as config_lib
from research.train import benchmark


def test_peak_flops_table_memory_stats_and_flop_count():
  """The pieces around the timed loop, without a training step (fast tier)."""
  assert benchmark.chip_peak_flops("NVIDIA H100 80GB HBM3", "bfloat16") == 989e12
  assert benchmark.chip_peak_flops("TPU v5 lite", "float32") == 197e12
  assert benchmark.chip_peak_flops("cpu", "float32") is None
  assert benchmark.peak_bytes_in_use(jax.devices("cpu")[0]) is None  # CPU keeps no stats
  x = jax.numpy.ones((8, 8))
  flops = benchmark._flops(jax.jit(lambda a: a @ a).lower(x).compile())
  assert flops is None or flops == pytest.approx(2 * 8**3)
  assert benchmark.measure_matmul_peak(n=32, repeats=2) > 0


def _run(**overrides):
  config = config_lib.load("vision/digits:cnn,smoke=True", overrides)
  return benchmark.benchmark(config, steps=2, warmup=1, rounds=1)


@pytest.mark.slow
def test_benchmark_reports_every_field():
  result = _run()
  assert result["devices"] == jax.device_count() and result["parallel"] == "jit"
  assert result["grad_allreduce"] == "xla" and result["steps_per_call"] == 1
  for key in (
    "examples_per_sec",
    "examples_per_sec_resident",
    "step_ms",
    "compile_s",
    "peak_flops",
  ):
    assert result[key] > 0 and math.isfinite(result[key]), key
  assert result["flops_per_step"] is None or result["flops_per_step"] > 0
  assert math.isfinite(result["input_overhead"])


@pytest.mark.slow
def test_benchmark_runs_the_flat_allreduce_step():
  assert _run(grad_allreduce="flat")["grad_allreduce"] == "flat"


@pytest.mark.slow
def test_benchmark_times_steps_per_call():
  result = _run(steps_per_call=3)
  assert result["steps_per_call"] == 3
  assert result["step_ms"] > 0 and result["flops_per_step"] > 0
