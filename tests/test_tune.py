"""The search (research/apps/tune.py, run as tools.tune): search spaces, the scoring
metric, and a 4-trial search that is killed with SIGKILL mid-trial and resumed to
exactly 4 complete trials."""

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from research.apps import search_space, tune
from research.core import config as config_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A digits MLP of 30 steps with a "val" eval (on the train split: the
# mechanics are under test here, not the data protocol).
TINY = textwrap.dedent("""
    from experiments.vision import digits
    from research.core.config import ConfigDict, eval_config


    def get_config(arg=None):
      c = digits.get_config("mlp,smoke=True")
      c.total_steps = 30
      c.evals.val = eval_config("classification", "train", every_steps=10, topk=(2,))
      c.ckpt.every_steps, c.ckpt.best_metric, c.ckpt.best_mode = 10, "val/accuracy", "max"
      c.baselines = ConfigDict()
      c.progress = False
      return c


    def search_space(variant):
      return {"optimizer.lr": ("log", 1e-4, 1e-1), "model.dropout": ("choice", 0.0, 0.1)}
""")


def test_specs_parse_check_and_grid():
  assert search_space.parse("log:1e-4:1e-1") == ("log", 1e-4, 0.1)
  assert search_space.parse("int:1:4") == ("int", 1, 4)
  assert search_space.parse("choice:(64,)|(64,64)|relu") == ("choice", (64,), (64, 64), "relu")
  with pytest.raises(ValueError, match="must be one of log:LO:HI"):
    search_space.parse("uniform:0:1")
  config = config_lib.load("experiments/vision/digits.py:mlp,smoke=True")
  space = search_space.check(
    {"optimizer.lr": "log:1e-4:1e-1", "model.hidden": ("choice", (16,), (32, 16))}, config
  )
  assert space["model.hidden"] == ("choice", (16,), (32, 16))
  with pytest.raises(ValueError, match="'optimizer.lrate' is not a config key"):
    search_space.check({"optimizer.lrate": "log:1e-4:1e-1"}, config)
  with pytest.raises(ValueError, match="LO < HI"):
    search_space.check({"optimizer.lr": ("log", 0.0, 1.0)}, config)
  assert search_space.grid_values(("log", 1e-3, 1e-1), 3) == pytest.approx([1e-3, 1e-2, 1e-1])
  assert search_space.grid_values(("int", 1, 2), 3) == [1, 2]
  encoded = search_space.encode((32, 16))
  assert isinstance(encoded, str) and search_space.decode(encoded) == (32, 16)
  assert search_space.contains(("log", 1e-4, 1e-1), 2e-3)
  assert not search_space.contains(("choice", (16,)), (32,))


def test_scoring_metric_refuses_test_metrics():
  config = config_lib.load("experiments/vision/digits.py:mlp,smoke=True")
  with config.unlocked():
    config.ckpt.best_metric = "test/accuracy"
  with pytest.raises(ValueError, match="refuses to select on the test metric 'test/accuracy'"):
    search_space.scoring_metric(config)
  with config.unlocked():
    config.evals.val = config_lib.eval_config("classification", "train", every_steps=1)
    config.ckpt.best_metric, config.ckpt.best_mode = "val/loss", "min"
  assert search_space.scoring_metric(config) == ("val/loss", "min")
  with config.unlocked():
    config.ckpt.best_metric = None
  with pytest.raises(ValueError, match="set one to a validation metric"):
    search_space.scoring_metric(config)


def _env():
  return dict(
    os.environ,
    XLA_FLAGS="--xla_force_host_platform_device_count=1",
    JAX_PLATFORMS="cpu",
    PYTHONPATH=ROOT,
  )


def _tune(tmp_path, workdir):
  return [
    sys.executable,
    "-m",
    "tools.tune",
    f"--config={tmp_path / 'tiny.py'}",
    f"--workdir={workdir}",
    "--trials=4",
    "--pruner=none",
    "--heartbeat_seconds=1",
  ]


def _saved_steps(trial_dir):
  folder = trial_dir / "checkpoints"
  return [d for d in os.listdir(folder) if d.isdigit()] if folder.exists() else []


@pytest.mark.slow  # 4 tiny runs, one killed and resumed: ~60 s on 2 shared cores
def test_search_killed_mid_trial_resumes_to_exactly_n_trials(tmp_path):
  import optuna

  (tmp_path / "tiny.py").write_text(TINY)
  workdir = tmp_path / "search"
  proc = subprocess.Popen(
    _tune(tmp_path, workdir),
    cwd=ROOT,
    env=_env(),
    stdout=subprocess.DEVNULL,
    stderr=subprocess.PIPE,
    text=True,
  )
  deadline = time.time() + 300
  while (
    time.time() < deadline and proc.poll() is None and not _saved_steps(workdir / "trials" / "1")
  ):
    time.sleep(0.05)
  assert proc.poll() is None, "search ended before the kill: " + proc.stderr.read()[-2000:]
  proc.kill()  # SIGKILL in trial 1, after its first checkpoint
  proc.wait(timeout=60)
  time.sleep(3.5)  # optuna's grace period (3 heartbeats): trial 1 is now stale
  result = subprocess.run(
    _tune(tmp_path, workdir), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600
  )
  assert result.returncode == 0, result.stderr[-3000:]

  study = optuna.load_study(study_name="tune", storage=f"sqlite:///{workdir / 'study.db'}")
  trials = study.get_trials()
  numbers = [t.number for t in trials]
  assert len(numbers) == len(set(numbers))
  complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
  assert len(complete) == 4
  # The killed trial failed; its parameters ran once more, resuming its run.
  (dead,) = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
  assert dead.number == 1
  (retry,) = [t for t in complete if t.user_attrs.get("resumed") == "trials/1"]
  assert retry.params == dead.params
  assert sorted(os.listdir(workdir / "trials")) == sorted(str(t.number) for t in complete)
  assert complete[0].user_attrs.get("hand_set")  # trial 0 = the config's own values
  for t in complete:  # each value is its run's validation metric, as summary.json reports it
    summary = json.loads((workdir / "trials" / str(t.number) / "summary.json").read_text())
    assert t.value == summary["val/accuracy"] and summary["step"] == 30

  best = max(complete, key=lambda t: t.value)
  tested = json.loads((workdir / "best_test.json").read_text())
  assert tested["trial"] == study.best_trial.number == best.number
  assert 0.0 <= tested["metrics"]["test/accuracy"] <= 1.0
  report = (workdir / "report.md").read_text()
  assert f"Trial {best.number}: val/accuracy = {best.value:.4f}" in report
  assert "resumed trials/1" in report and (workdir / "optimization_history.png").exists()


@pytest.mark.parametrize(
  "spec", ["experiments/vision/mnist1d.py:cnn", "experiments/finance_risk/credit_scoring.py:mlp"]
)
def test_declared_search_spaces_name_config_keys(spec):
  path, _, arg = spec.partition(":")
  config = config_lib.load(spec)
  space = tune.resolve_space(config, path, arg)
  assert space == search_space.check(
    search_space.from_module(config_lib.import_experiment(path), arg), config
  )
  assert "optimizer.lr" in space


def test_resolve_space_file_variant_and_extra_keys(tmp_path):
  (tmp_path / "space.py").write_text(
    "def search_space(variant):\n"
    "  return {'optimizer.lr': ('log', 1e-4, 1e-2)} if variant == 'mlp' else {}\n"
  )
  path = "experiments/vision/digits.py"
  config = config_lib.load(f"{path}:mlp,smoke=True")
  space = tune.resolve_space(
    config,
    path,
    "mlp,smoke=True",  # the variant is the first bare word
    space_file=str(tmp_path / "space.py"),
    extra={"optimizer.b1": "float:0.8:0.95"},  # as --space.optimizer.b1=float:0.8:0.95
  )
  assert space == {"optimizer.lr": ("log", 1e-4, 1e-2), "optimizer.b1": ("float", 0.8, 0.95)}
  with pytest.raises(ValueError, match="'optimizer.beta1' is not a config key"):
    tune.resolve_space(config, path, "mlp", extra={"optimizer.beta1": "float:0.8:0.95"})
