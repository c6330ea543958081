"""The DCGAN experiment end to end (slow tier): a tiny classifier, then the tiny GAN
through the shared loop (FID evals, baselines, sample grids per evaluation), exact
resume after kill -9, and the GAN step under the jit mesh and pmap."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from research.core import config as config_lib
from research.train import builder
from tests.test_experiments import write_idx_dir

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env(data_dir):
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu", RESEARCH_DATA_DIR=str(data_dir))
  env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
  return env


def _train_cmd(config, workdir, *overrides):
  return [sys.executable, "-m", "tools.train", f"--config={config}", f"--workdir={workdir}"] + [
    f"--config.{o}" for o in overrides
  ]


def _run(cmd, data_dir):
  result = subprocess.run(
    cmd, cwd=ROOT, env=_env(data_dir), capture_output=True, text=True, timeout=900
  )
  assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  """A tiny Fashion-MNIST copy and a 2-step classifier trained on it."""
  root = tmp_path_factory.mktemp("gan")
  data = root / "data"
  write_idx_dir(data / "fashion_mnist", n_train=96, n_test=40)
  classifier = root / "classifier"
  _run(_train_cmd("experiments/vision/fashion_mnist.py:cnn,smoke=True", classifier), data)
  return root, data, classifier


GAN = "experiments/vision/fashion_mnist_gan.py:dcgan,smoke=True,classifier={}"


def test_tiny_gan_reports_fid_baselines_and_sample_grids(setup):
  root, data, classifier = setup
  workdir = root / "gan"
  # Four steps with a periodic val evaluation at step 2 before the final one.
  _run(
    _train_cmd(GAN.format(classifier), workdir, "total_steps=4", "evals.val.every_steps=2"), data
  )
  summary = json.loads((workdir / "summary.json").read_text())
  assert summary["step"] == 4 and summary["checkpoint"].startswith("best by val/fid")
  for split in ("val", "test"):
    assert np.isfinite(summary[f"{split}/fid"]) and summary[f"{split}/fid"] >= 0
    assert 0 <= summary[f"{split}/precision"] <= 1 and 0 <= summary[f"{split}/recall"] <= 1
    assert summary[f"{split}/num_samples"] == 32
  baselines = json.loads((workdir / "baselines.json").read_text())
  assert set(baselines) == {"untrained_generator", "training_data"}
  # Real training images are at least as close to the test images as an untrained generator.
  assert baselines["training_data"]["test/fid"] <= baselines["untrained_generator"]["test/fid"]
  # A grid per periodic evaluation (step 2), and the reported checkpoint's at the end.
  assert (workdir / "plots" / "val_samples_step2.png").exists()
  assert (workdir / "plots" / "test_samples.png").exists()
  report = (workdir / "report.md").read_text()
  assert "| untrained_generator |" in report and "plots/test_samples.png" in report


def test_missing_classifier_is_one_clear_line(setup, tmp_path):
  _, data, _ = setup
  result = subprocess.run(
    _train_cmd(GAN.format(tmp_path / "nothing"), tmp_path / "gan"),
    cwd=ROOT,
    env=_env(data),
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert result.returncode != 0
  assert "holds no trained run; train it first with `python -m tools.train" in result.stderr
  assert _finished_steps(tmp_path / "gan") == []  # stopped before training


def _finished_steps(workdir):
  folder = workdir / "checkpoints"
  return sorted(int(d) for d in os.listdir(folder) if d.isdigit()) if folder.exists() else []


def test_kill_9_then_rerun_is_bitwise_identical(setup):
  root, data, classifier = setup
  steps = (
    "total_steps=400",
    "ckpt.every_steps=20",
    "evals.val.every_steps=200",
    "log_every_steps=10",
  )
  reference = root / "reference"
  _run(_train_cmd(GAN.format(classifier), reference, *steps), data)
  killed = root / "killed"
  proc = subprocess.Popen(
    _train_cmd(GAN.format(classifier), killed, *steps),
    cwd=ROOT,
    env=_env(data),
    stdout=subprocess.DEVNULL,
    stderr=subprocess.PIPE,
    text=True,
  )
  deadline = time.time() + 600
  while time.time() < deadline and proc.poll() is None:
    if any(s >= 60 for s in _finished_steps(killed)):
      break
    time.sleep(0.05)
  assert proc.poll() is None, "finished before the kill: " + proc.stderr.read()[-2000:]
  proc.send_signal(signal.SIGKILL)
  proc.communicate(timeout=120)
  assert proc.returncode == -signal.SIGKILL and max(_finished_steps(killed)) < 400
  _run(_train_cmd(GAN.format(classifier), killed, *steps), data)
  expected = json.loads((reference / "summary.json").read_text())
  resumed = json.loads((killed / "summary.json").read_text())
  assert resumed["params_fingerprint"] == expected["params_fingerprint"]
  for key in ("val/fid", "test/fid", "test/precision", "test/recall"):
    assert resumed[key] == expected[key], key
  assert (killed / "plots" / "val_samples_step200.png").exists()


def _config(parallel):
  c = config_lib.base_config()
  c.data.name = "synthetic"
  c.data.options = config_lib.ConfigDict(
    dict(features={"image": ((28, 28, 1), "uint8"), "label": ((), "int32", 10)}, num_examples=64)
  )
  c.data.pp_train = c.data.pp_eval = "value_range(-1, 1)"
  c.task = config_lib.ConfigDict(dict(name="gan"))
  c.model = config_lib.ConfigDict(
    dict(name="dcgan", latent_dim=4, generator_features=(8, 4), discriminator_features=(4, 8))
  )
  c.batch_size, c.eval_batch_size, c.total_steps = 16, 16, 3
  c.optimizer.name, c.optimizer.lr = "adam", 2e-4
  c.optimizer.groups = config_lib.ConfigDict(
    dict(generator=dict(b1=0.5), discriminator=dict(lr=1e-3, b1=0.5))
  )
  c.parallel = parallel
  return config_lib.finalize(c, "tests/gan_parallel", None)


def _train(parallel, devices, steps=3):
  run = builder.build(_config(parallel), devices=devices)
  state = run.backend.init_state(run.init_fn)
  builder.compile_steps(run)
  it = builder.train_iterator(run)
  losses = []
  for _ in range(steps):
    state, metrics = run.backend.train_step(state, run.backend.put_batch(next(it)))
    losses.append(run.backend.scalar_metrics(metrics)["loss"])
  return jax.device_get(run.backend.canonical(state)), losses


def test_gan_step_under_the_jit_mesh_and_pmap():
  devices = jax.devices()
  assert len(devices) == 8
  single, single_losses = _train("jit", devices[:1])
  mesh, mesh_losses = _train("jit", devices)
  # The jit mesh draws one global noise batch: the same update as one device.
  np.testing.assert_allclose(mesh_losses, single_losses, rtol=1e-5)
  for a, b in ((mesh.params, single.params), (mesh.model_state, single.model_state)):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6), a, b)
  # pmap draws each device's noise from its own key (fold_in of the device index), so
  # it is another (equally valid) sample: it trains, both players move.
  pmapped, pmap_losses = _train("pmap", devices)
  assert np.all(np.isfinite(pmap_losses))
  init = jax.device_get(builder.build(_config("jit"), devices=devices[:1]).init_fn())
  for player in ("generator", "discriminator"):
    moved = jax.tree.map(
      lambda a, b: np.abs(a - b).max(), pmapped.params[player], init.params[player]
    )
    assert max(jax.tree.leaves(moved)) > 0, player
