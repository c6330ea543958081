"""Two local processes on JAX's own multi-process runtime (jax.distributed, CPU + gloo).

Each process has 2 fake CPU devices, so the Mesh spans 4 devices in 2
processes: each process reads its own shard of the data, the step's
collectives cross the process boundary, orbax writes one checkpoint together,
and evaluation still counts every test example exactly once.
"""

import json
import os
import socket
import subprocess
import sys

import pytest

# Two Python processes per test, each starting JAX and training: ~30 s each.
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _launch(workdir, port, extra=()):
  procs = []
  for pid in range(2):
    env = dict(
      os.environ,
      XLA_FLAGS="--xla_force_host_platform_device_count=2",
      JAX_PLATFORMS="cpu",
      JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
      JAX_NUM_PROCESSES="2",
      JAX_PROCESS_ID=str(pid),
    )
    cmd = [
      sys.executable,
      "-m",
      "tools.train",
      "--config=experiments/vision/digits.py:mlp,smoke=True",
      "--config.total_steps=6",
      "--config.ckpt.every_steps=3",
      f"--workdir={workdir}",
      *extra,
    ]
    procs.append(
      subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
      )
    )
  outputs = [p.communicate(timeout=300)[0] for p in procs]
  return [p.returncode for p in procs], outputs


def test_two_processes_train_checkpoint_and_evaluate(tmp_path):
  codes, outputs = _launch(tmp_path, _free_port())
  assert codes == [0, 0], "\n---\n".join(o[-3000:] for o in outputs)
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert summary["step"] == 6 and summary["processes"] == 2 and summary["devices"] == 4
  assert summary["test/num_examples"] == 360  # digits test split, each example once
  assert sorted(os.listdir(tmp_path / "checkpoints"))[:2] == ["3", "6"]
  # Resuming a finished run in the same workdir is a no-op that still agrees.
  codes, outputs = _launch(tmp_path, _free_port())
  assert codes == [0, 0], "\n---\n".join(o[-3000:] for o in outputs)
  again = json.loads((tmp_path / "summary.json").read_text())
  assert again["params_fingerprint"] == summary["params_fingerprint"]


def test_two_processes_flat_allreduce_and_steps_per_call(tmp_path):
  """grad_allreduce='flat' (the step under shard_map, one raveled pmean) also
  runs with its collective crossing the process boundary, here 3 steps per
  call (each process stacks its own shard of 3 batches: steps 1-3 and 4-6)."""
  codes, outputs = _launch(
    tmp_path,
    _free_port(),
    extra=(
      "--config.grad_allreduce=flat",
      "--config.steps_per_call=3",
      "--config.log_every_steps=3",
    ),
  )
  assert codes == [0, 0], "\n---\n".join(o[-3000:] for o in outputs)
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert summary["step"] == 6 and summary["devices"] == 4
  assert 0.0 < summary["test/loss"] < 10.0
  logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [m["step"] for m in logged if "train/loss" in m] == [3, 6]
  assert summary["test/num_examples"] == 360


def test_checkpoint_saved_under_fsdp8_resumes_in_two_processes_on_another_mesh(tmp_path):
  """A run trained under mesh fsdp=8 in one process (8 devices) is read back by
  two processes of 2 devices each under data=2,fsdp=2: the checkpoint holds
  global arrays, orbax reshards them to the reader's mesh, and the restored
  parameters are bit-identical (same params fingerprint)."""
  common = [
    "--config=experiments/vision/digits.py:mlp,smoke=True",
    "--config.total_steps=3",
    "--config.ckpt.every_steps=3",
    f"--workdir={tmp_path}",
  ]
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
  one = subprocess.run(
    [sys.executable, "-m", "tools.train", *common, "--config.mesh.data=1", "--config.mesh.fsdp=8"],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert one.returncode == 0, one.stdout[-2000:] + one.stderr[-2000:]
  first = json.loads((tmp_path / "summary.json").read_text())
  assert first["mesh"] == "data=1,fsdp=8,tensor=1"
  port, procs = _free_port(), []
  for pid in range(2):
    env = dict(
      os.environ,
      XLA_FLAGS="--xla_force_host_platform_device_count=2",
      JAX_PLATFORMS="cpu",
      JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
      JAX_NUM_PROCESSES="2",
      JAX_PROCESS_ID=str(pid),
    )
    procs.append(
      subprocess.Popen(
        [
          sys.executable,
          "-m",
          "tools.train",
          *common,
          "--config.mesh.data=2",
          "--config.mesh.fsdp=2",
          "--allow_config_change=mesh",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
      )
    )
  outputs = [p.communicate(timeout=300)[0] for p in procs]
  assert [p.returncode for p in procs] == [0, 0], "\n---\n".join(o[-3000:] for o in outputs)
  again = json.loads((tmp_path / "summary.json").read_text())
  assert again["processes"] == 2 and again["mesh"] == "data=2,fsdp=2,tensor=1"
  assert again["params_fingerprint"] == first["params_fingerprint"]
