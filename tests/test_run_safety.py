"""Runs that could be damaged or lost: two runs in one workdir, a config changed
on resume, a bad override on a finished workdir, damaged checkpoints, a NaN
while a save is in flight, stale metrics after a restart from scratch.

Tiny digits runs (a few steps, a checkpoint every step), in process unless the
command line itself is under test.
"""

import errno
import glob
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from research.core import config as config_lib
from research.outputs import writer as writer_lib
from research.train import checkpoint as ckpt_lib
from research.train import config_pin, evaluate, loop, workdir_lock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = "vision/digits:mlp,smoke=True"
STEPS = 3
OVERRIDES = {
  "total_steps": STEPS,
  "ckpt.every_steps": 1,
  "ckpt.keep": 2,
  "log_every_steps": 1,
  "progress": False,
}


def _config(**overrides):
  return config_lib.load(SPEC, dict(OVERRIDES, **overrides))


def _steps(workdir):
  return sorted(int(p) for p in os.listdir(os.path.join(workdir, "checkpoints")) if p.isdigit())


def _python(args, timeout=300):
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=1")
  return subprocess.run(
    [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
  )


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  """A finished run with checkpoints at steps 2 and 3, and its summary."""
  workdir = tmp_path_factory.mktemp("finished")
  summary = loop.run(_config(), str(workdir))
  assert _steps(workdir) == [2, 3]
  return workdir, summary


@pytest.fixture
def copy_of(finished, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(finished[0], workdir)
  return workdir


# --- One run per workdir -------------------------------------------------------------------


def test_second_run_in_a_held_workdir_is_refused_naming_the_holder(tmp_path):
  holder = workdir_lock.WorkdirLock(str(tmp_path)).acquire()
  try:
    with pytest.raises(
      workdir_lock.WorkdirLockedError,
      match=rf"in use by pid {os.getpid()} on {socket.gethostname()}, running "
      r"since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d",
    ):
      loop.run(_config(), str(tmp_path))
    assert not (tmp_path / "config.json").exists()  # refused before writing anything
  finally:
    holder.release()


def test_lock_held_by_another_process_then_taken_over_once_it_dies(tmp_path, caplog):
  code = (
    "import sys, time; from research.train.workdir_lock import WorkdirLock; "
    f"WorkdirLock({str(tmp_path)!r}).acquire(); print('held', flush=True); time.sleep(120)"
  )
  env = dict(os.environ, PYTHONPATH=ROOT)
  proc = subprocess.Popen(
    [sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
  )
  try:
    assert proc.stdout.readline().strip() == "held"
    with pytest.raises(workdir_lock.WorkdirLockedError, match=rf"in use by pid {proc.pid} on "):
      workdir_lock.WorkdirLock(str(tmp_path)).acquire()
  finally:
    proc.kill()  # like kill -9: the holder cannot clean up
    proc.wait()
  with caplog.at_level(logging.WARNING, logger=workdir_lock.__name__):
    lock = workdir_lock.WorkdirLock(str(tmp_path)).acquire()
  lock.release()
  assert f"taking over the lock left by pid {proc.pid}" in caplog.text
  assert (tmp_path / workdir_lock.LOCK_FILE).read_text() == ""  # released cleanly


def test_without_flock_the_recorded_pid_decides(tmp_path, monkeypatch):
  def no_flock(fd, op):
    raise OSError(errno.ENOLCK, "No locks available")

  monkeypatch.setattr(workdir_lock.fcntl, "flock", no_flock)
  path = tmp_path / workdir_lock.LOCK_FILE
  dead = subprocess.Popen([sys.executable, "-c", "pass"])
  dead.wait()
  path.write_text(json.dumps(dict(pid=dead.pid, host=socket.gethostname(), since=time.time())))
  workdir_lock.WorkdirLock(str(tmp_path)).acquire()  # stale: taken over
  assert json.loads(path.read_text())["pid"] == os.getpid()
  path.write_text(json.dumps(dict(pid=os.getppid(), host=socket.gethostname(), since=0)))
  with pytest.raises(workdir_lock.WorkdirLockedError, match=rf"pid {os.getppid()}"):
    workdir_lock.WorkdirLock(str(tmp_path)).acquire()  # alive on this host: refused


# --- The config a workdir was started with -------------------------------------------------


@pytest.mark.slow
def test_resume_with_a_changed_config_is_refused_and_config_json_kept(copy_of):
  before = (copy_of / "config.json").read_bytes()
  with pytest.raises(config_pin.ConfigChangedError) as e:
    loop.run(_config(**{"optimizer.lr": 0.5, "total_steps": 4}), str(copy_of))
  message = str(e.value)
  assert "optimizer.lr: 0.002 -> 0.5" in message and "total_steps: 3 -> 4" in message
  assert "--allow_config_change=optimizer.lr,total_steps" in message
  assert (copy_of / "config.json").read_bytes() == before
  assert not (copy_of / config_pin.CHANGES_FILE).exists()
  assert (copy_of / workdir_lock.LOCK_FILE).read_text() == ""  # released on the way out
  # Exempt keys (display only) pass without asking.
  assert config_pin.check(str(copy_of), _config(progress=True)) == {}
  with pytest.raises(ValueError, match="names 'optimizer.learning_rate', which is not a config"):
    config_pin.check(str(copy_of), _config(), allow=("optimizer.learning_rate",))


@pytest.mark.slow
def test_allowed_config_change_through_the_command_line_is_recorded(copy_of):
  out = _python(
    [
      "-m",
      "tools.train",
      "--config=experiments/vision/digits.py:mlp,smoke=True",
      "--config.total_steps=4",
      "--config.ckpt.keep=2",
      "--config.progress=False",
      "--config.optimizer.lr=0.001",
      "--allow_config_change=optimizer.lr,total_steps",
      f"--workdir={copy_of}",
    ]
  )
  assert out.returncode == 0, out.stderr[-3000:]
  config = json.loads((copy_of / "config.json").read_text())
  assert config["optimizer"]["lr"] == 0.001 and config["total_steps"] == 4
  [change] = config_pin.read_changes(str(copy_of))
  assert change["step"] == STEPS  # took effect where the run resumed
  assert change["changes"] == {
    "optimizer.lr": {"old": 0.002, "new": 0.001},
    "total_steps": {"old": STEPS, "new": 4},
  }
  assert json.loads((copy_of / "summary.json").read_text())["step"] == 4


def test_bad_batch_sizes_fail_when_the_config_loads():
  for key in ("batch_size", "eval_batch_size"):
    with pytest.raises(ValueError, match=f"config.{key} must be an integer >= 1, got 0"):
      _config(**{key: 0})


def test_a_run_that_fails_to_build_leaves_a_finished_workdir_evaluable(copy_of, finished):
  before = (copy_of / "config.json").read_bytes()
  zero = _config()
  zero.batch_size = 0  # as --config.batch_size=0 would set it, past the check at load time
  with pytest.raises(ValueError, match="config.batch_size must be an integer >= 1"):
    loop.run(zero, str(copy_of), allow_config_change=("batch_size",))
  # Valid on its own, but not a multiple of the 8 test devices: builder.build refuses it.
  with pytest.raises(ValueError, match="batch_size=12 must be a multiple of the 8 devices"):
    loop.run(_config(batch_size=12), str(copy_of), allow_config_change=("batch_size",))
  assert (copy_of / "config.json").read_bytes() == before
  result = evaluate.evaluate(str(copy_of), split="test", which="latest")
  assert result["step"] == STEPS
  assert result["test/accuracy"] == pytest.approx(finished[1]["test/accuracy"], abs=1e-12)


# --- Damaged checkpoints -------------------------------------------------------------------


def _damage(workdir, kind, step=STEPS):
  """Damages checkpoint `step` the way a full disk, a bad copy or a crash would;
  returns the name the warning must give."""
  folder = os.path.join(workdir, "checkpoints", str(step))
  if kind in ("zeroed", "truncated"):
    # The array data files: per process, and (once orbax merged them) at the top.
    for path in glob.glob(f"{folder}/state/d/*") + glob.glob(f"{folder}/state/ocdbt.*/d/*"):
      size = os.path.getsize(path)
      if kind == "zeroed":
        with open(path, "r+b") as f:
          f.write(b"\0" * size)
      else:
        os.truncate(path, size // 2)
    return "array "
  if kind == "empty_manifest":
    open(f"{folder}/state/manifest.ocdbt", "wb").close()
    return "manifest.ocdbt"
  if kind == "missing_metadata":
    os.remove(f"{folder}/state/_METADATA")
    return "state"
  if kind == "no_items":
    for item in ("state", "data", "meta"):
      shutil.rmtree(f"{folder}/{item}")
    return "state"
  raise ValueError(kind)


DAMAGES = ["zeroed", "truncated", "empty_manifest", "missing_metadata", "no_items"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", DAMAGES)
def test_training_resumes_from_the_step_before_a_damaged_one(copy_of, finished, kind, caplog):
  named = _damage(copy_of, kind)
  with caplog.at_level(logging.WARNING, logger=ckpt_lib.__name__):
    result = loop.run(_config(), str(copy_of))
  warnings = [r.getMessage() for r in caplog.records if r.name == ckpt_lib.__name__]
  assert len(warnings) == 1, warnings
  assert f"Checkpoint step {STEPS} in " in warnings[0] and "is unreadable" in warnings[0]
  assert named in warnings[0] and "Moved it to" in warnings[0]
  assert (copy_of / "checkpoints" / "corrupt" / str(STEPS)).is_dir()
  # Resumed from step 2 and redid step 3: bitwise the same run.
  assert result["step"] == STEPS
  assert result["params_fingerprint"] == finished[1]["params_fingerprint"]
  assert _steps(copy_of) == [2, 3]


@pytest.mark.parametrize("kind", ["zeroed", "missing_metadata"])
@pytest.mark.parametrize("which", ["best", "latest"])
def test_evaluate_falls_back_and_leaves_the_workdir_alone(copy_of, kind, which, caplog):
  _damage(copy_of, kind)
  with caplog.at_level(logging.WARNING, logger=ckpt_lib.__name__):
    result = evaluate.evaluate(str(copy_of), split="test", which=which)
  assert result["step"] == STEPS - 1
  assert f"Checkpoint step {STEPS} in " in caplog.text
  assert _steps(copy_of) == [2, 3] and not (copy_of / "checkpoints" / "corrupt").exists()
  with pytest.raises(ckpt_lib.NoGoodCheckpointError, match=f"step.s. {STEPS} failed to read"):
    evaluate.evaluate(str(copy_of), split="test", which=str(STEPS))  # asked for by number


def test_when_no_checkpoint_reads_training_stops_with_a_clear_error(copy_of):
  _damage(copy_of, "zeroed", step=2)
  _damage(copy_of, "empty_manifest", step=3)
  with pytest.raises(
    ckpt_lib.NoGoodCheckpointError,
    match=r"step\(s\) 3, 2 failed to read.*rerun the same command to train "
    "from scratch",
  ):
    loop.run(_config(), str(copy_of))
  assert sorted(os.listdir(copy_of / "checkpoints" / "corrupt")) == ["2", "3"]


def test_reading_a_checkpoint_logs_no_orbax_metadata_warning(finished, caplog):
  with caplog.at_level(logging.WARNING):
    raw = ckpt_lib.Checkpointer(str(finished[0] / "checkpoints")).restore_raw(STEPS)
  assert int(raw["step"]) == STEPS
  assert "does not exist" not in caplog.text, caplog.text


# --- Errors while a save is in flight; metrics of a restart --------------------------------


@pytest.mark.slow
def test_nan_names_a_checkpoint_that_exists_and_nothing_buries_it(tmp_path):
  # lr 5e17: step 1's update is finite, step 2's parameter norm overflows
  # while step 1's save is still being written.
  out = _python(
    [
      "-m",
      "tools.train",
      "--config=experiments/vision/digits.py:mlp,smoke=True",
      "--config.total_steps=6",
      "--config.optimizer.lr=5.2e17",
      "--config.progress=False",
      f"--workdir={tmp_path}",
    ]
  )
  assert out.returncode != 0
  last = out.stderr.strip().splitlines()[-1]
  assert last.startswith("research.train.loop.NonFiniteError: Non-finite"), out.stderr[-3000:]
  named = int(last.split("the last good checkpoint is step ")[1].split()[0])
  assert named in _steps(tmp_path)
  assert not glob.glob(str(tmp_path / "checkpoints" / "*tmp*"))  # the save finished
  assert "Traceback" not in out.stderr.split("NonFiniteError")[-1]
  assert out.stderr.count("Traceback") == 1, out.stderr[-3000:]


@pytest.mark.slow
def test_a_restart_from_scratch_drops_the_metrics_of_the_killed_run(tmp_path):
  # A run killed before its first checkpoint left metrics but no checkpoint.
  with open(tmp_path / writer_lib.METRICS_FILE, "w") as f:
    for step in (1, 2, 3):
      f.write(json.dumps({"step": step, "time": 0.0, "train/loss": 99.0}) + "\n")
  loop.run(_config(), str(tmp_path))
  records = writer_lib.read_metrics(str(tmp_path))
  train = [r["step"] for r in records if "train/loss" in r]
  assert train == [1, 2, 3]
  assert all(r["train/loss"] != 99.0 for r in records if "train/loss" in r)


def test_keys_added_by_newer_code_at_their_default_do_not_block_a_resume(copy_of):
  """A workdir written before config.mesh / precision / early_stopping existed
  resumes: its config.json lacks them, and their defaults are what it ran."""
  path = copy_of / "config.json"
  old = json.loads(path.read_text())
  for key in ("mesh", "precision", "remat", "early_stopping"):
    old.pop(key, None)
  path.write_text(json.dumps(old))
  changes = config_pin.check(str(copy_of), _config())
  assert {"precision", "remat"} <= set(changes) and changes["precision"][1] == "float32"
  with pytest.raises(config_pin.ConfigChangedError, match="precision"):
    config_pin.check(str(copy_of), _config(precision="bfloat16"))  # not the old behaviour
