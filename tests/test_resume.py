"""A run killed at any point (kill -9 or SIGTERM) and rerun ends bitwise identical.

The runs go through the real command line (`python -m tools.train`) in
subprocesses with 8 fake devices, dropout and random-crop augmentation on, so
the restored RNG, optimizer state and data-iterator position all matter.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from research.train import evaluate

# Kills and reruns real training processes: 20-35 s each.
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Long enough that the interrupt lands mid-run even now that a digits step takes ~3 ms.
STEPS, EVERY = 1500, 50
ARGS = [
  "--config=experiments/vision/digits.py:mlp,smoke=True",
  f"--config.total_steps={STEPS}",
  f"--config.ckpt.every_steps={EVERY}",
  "--config.log_every_steps=10",
  "--config.evals.test.every_steps=500",
  "--config.ckpt.keep=2",
]


def _command(workdir):
  return [sys.executable, "-m", "tools.train", *ARGS, f"--workdir={workdir}"]


def _env():
  env = dict(os.environ)
  env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
  env["JAX_PLATFORMS"] = "cpu"
  return env


def _train(workdir):
  result = subprocess.run(
    _command(workdir), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600
  )
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads((workdir / "summary.json").read_text())


def _finished_steps(workdir):
  folder = workdir / "checkpoints"
  if not folder.exists():
    return []
  return sorted(int(d) for d in os.listdir(folder) if d.isdigit())


def _start_and_interrupt(workdir, sig, after_step):
  """Starts training, waits for a finished checkpoint >= after_step, sends `sig`."""
  proc = subprocess.Popen(
    _command(workdir),
    cwd=ROOT,
    env=_env(),
    stdout=subprocess.DEVNULL,
    stderr=subprocess.PIPE,
    text=True,
  )
  deadline = time.time() + 300
  while time.time() < deadline and proc.poll() is None:
    if any(s >= after_step for s in _finished_steps(workdir)):
      break
    time.sleep(0.05)
  assert proc.poll() is None, (
    "run finished before it could be interrupted: " + proc.stderr.read()[-2000:]
  )
  proc.send_signal(sig)
  _, stderr = proc.communicate(timeout=120)
  return proc.returncode, stderr


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("uninterrupted")
  return workdir, _train(workdir)


def test_kill_9_then_rerun_is_bitwise_identical(reference, tmp_path):
  _, expected = reference
  code, _ = _start_and_interrupt(tmp_path, signal.SIGKILL, after_step=2 * EVERY)
  assert code == -signal.SIGKILL
  assert not (tmp_path / "summary.json").exists()
  interrupted_at = max(_finished_steps(tmp_path))
  assert interrupted_at < STEPS
  resumed = _train(tmp_path)
  assert resumed["step"] == STEPS
  assert resumed["params_fingerprint"] == expected["params_fingerprint"]
  assert resumed["test/accuracy"] == expected["test/accuracy"]
  # metrics.jsonl holds each logged step once, even though steps after the
  # last checkpoint ran twice.
  steps = [
    json.loads(line)["step"]
    for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
    if "train/loss" in line
  ]
  assert steps == sorted(set(steps)) and steps[-1] == STEPS


def test_sigterm_saves_and_exits_then_resumes_identically(reference, tmp_path):
  _, expected = reference
  code, stderr = _start_and_interrupt(tmp_path, signal.SIGTERM, after_step=EVERY)
  assert code == 143, stderr[-2000:]
  assert "Rerun the same command to resume" in stderr
  resumed = _train(tmp_path)
  assert resumed["params_fingerprint"] == expected["params_fingerprint"]


def test_workdir_contents_and_evaluate_tool(reference):
  workdir, summary = reference
  for name in (
    "config.json",
    "metrics.jsonl",
    "summary.json",
    "report.md",
    "plots/loss.png",
    "plots/accuracy.png",
    "plots/test_confusion_matrix.png",
  ):
    assert (workdir / name).stat().st_size > 0, name
  config = json.loads((workdir / "config.json").read_text())
  assert config["total_steps"] == STEPS and config["ckpt"]["every_steps"] == EVERY
  assert summary["step"] == STEPS and summary["train_seconds"] > 0
  assert "0.9700" in (workdir / "report.md").read_text()  # the published reference is shown
  kept = _finished_steps(workdir)
  assert STEPS in kept and len(kept) <= 3  # last 2 plus the best by test/accuracy
  latest = evaluate.evaluate(str(workdir), split="test", which="latest")
  assert latest["step"] == STEPS
  assert latest["test/accuracy"] == pytest.approx(summary["test/accuracy"], abs=1e-12)
  best = evaluate.evaluate(str(workdir), split="test", which="best")
  assert best["test/accuracy"] >= latest["test/accuracy"] - 1e-12
