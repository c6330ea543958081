"""research.platforms.xla_flags: the CPU flags and config.cpu_host_devices reach XLA before JAX starts."""

import os
import subprocess
import sys

import pytest

from research.core import config as config_lib

_PROBE = (
  "from research.platforms import xla_flags; xla_flags.apply(); "
  "print(xla_flags.set_host_devices({count})); import jax; print(jax.device_count())"
)


def _probe(count: int, xla_flags: str = "") -> list[str]:
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=xla_flags)
  env.pop("RESEARCH_XLA_FLAGS", None)
  out = subprocess.run(
    [sys.executable, "-c", _PROBE.format(count=count)],
    env=env,
    capture_output=True,
    text=True,
    timeout=120,
    check=True,
  )
  return out.stdout.split()


def test_cpu_host_devices_sets_the_device_count():
  assert _probe(2) == ["True", "2"]
  assert _probe(1) == ["False", "1"]


def test_an_explicit_xla_flags_device_count_wins():
  assert _probe(2, "--xla_force_host_platform_device_count=3") == ["False", "3"]


def test_flags_are_left_alone_once_jax_started_or_when_turned_off(monkeypatch, caplog):
  """In-process: this test process's backend is up, so XLA would not read new flags."""
  import jax

  from research.platforms import xla_flags

  jax.devices()
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")
  monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/nowhere")
  monkeypatch.delenv("RESEARCH_XLA_FLAGS", raising=False)
  assert xla_flags.apply() == [] and "after JAX started its backend" in caplog.text
  assert xla_flags.set_host_devices(1) is False  # 1 device: nothing to ask for
  monkeypatch.setenv("RESEARCH_XLA_FLAGS", "0")
  assert xla_flags.set_host_devices(4) is False
  assert xla_flags.current() == "--xla_dump_to=/nowhere"


@pytest.mark.parametrize("bad", [0, -1])
def test_bad_cpu_host_devices_is_refused(bad):
  c = config_lib.base_config()
  c.data.name = "digits"
  c.model = config_lib.ConfigDict(dict(name="mlp", num_classes=10))
  c.total_steps = 1
  c.cpu_host_devices = bad
  with pytest.raises(ValueError, match="cpu_host_devices"):
    config_lib.finalize(c, "tests/xla", None)
