"""Early stopping: the state object on synthetic metric sequences, config checks,
and a tiny run that stops, keeps its best checkpoint and resumes its patience."""

import json

import pytest

from research.core import config as config_lib
from research.train import early_stopping, loop


def _feed(stopper, values, every=10):
  """Feeds one evaluation per value at steps every, 2*every, ...; returns the stop step."""
  for i, v in enumerate(values, 1):
    stopper.update(i * every, {stopper.metric: v})
    if stopper.stopped:
      return stopper.stopped_step
  return None


def test_stops_after_patience_evaluations_without_improvement():
  s = early_stopping.EarlyStopping("val/loss", "min", patience=3, min_delta=0.01)
  # Best 0.5 at step 30; 0.495 is not better by more than 0.01; three such evaluations.
  assert _feed(s, [1.0, 0.8, 0.5, 0.495, 0.6, 0.499, 0.3]) == 60
  assert (s.best, s.best_step, s.bad_evals) == (0.5, 30, 3)
  assert s.reason == ("val/loss did not improve by 0.01 for 3 evaluations; best 0.5 at step 30")


def test_an_improvement_resets_the_count_and_max_mode():
  s = early_stopping.EarlyStopping("val/accuracy", "max", patience=2)
  assert _feed(s, [0.5, 0.5, 0.6, 0.6, 0.61, 0.61, 0.55]) == 70
  assert s.best_step == 50
  # Other evals' metrics (without the watched one) do not count as evaluations.
  t = early_stopping.EarlyStopping("val/accuracy", "max", patience=1)
  t.update(10, {"val/accuracy": 0.5})
  t.update(20, {"test/accuracy": 0.1})
  assert not t.stopped
  t.update(30, {"val/accuracy": float("nan")})  # NaN never improves
  assert t.stopped_step == 30


def test_state_round_trip_resumes_the_same_count():
  values = [1.0, 0.9, 0.95, 0.97, 0.96, 0.99]
  whole = early_stopping.EarlyStopping("val/loss", "min", patience=3)
  expected = _feed(whole, values)
  first = early_stopping.EarlyStopping("val/loss", "min", patience=3)
  _feed(first, values[:3])  # "killed" after the third evaluation
  saved = json.loads(json.dumps(first.state()))  # as checkpoint meta stores it
  second = early_stopping.EarlyStopping("val/loss", "min", patience=3).restore(saved)
  for i, v in enumerate(values[3:], 4):
    second.update(i * 10, {"val/loss": v})
    if second.stopped:
      break
  assert expected == second.stopped_step == 50
  assert second.state() == whole.state()


def test_on_eval_stop_ends_like_early_stopping():
  s = early_stopping.EarlyStopping(None)

  def prune(step, metrics):
    if step == 20:
      raise early_stopping.Stop("pruned")

  assert not early_stopping.after_eval(s, 10, {"val/loss": 1.0}, prune)
  assert not s.stopped
  early_stopping.after_eval(s, 20, {"val/loss": 1.0}, prune)
  assert (s.stopped_step, s.reason) == (20, "pruned")


def _config(**es):
  c = config_lib.load("experiments/vision/digits.py:mlp,smoke=True")
  with c.unlocked():
    c.total_steps = 60
    c.evals.val = config_lib.eval_config("classification", "train", every_steps=10, topk=(2,))
    c.ckpt.every_steps, c.ckpt.best_metric, c.ckpt.best_mode = 10, "val/loss", "min"
    c.progress = False
    c.early_stopping.update(es)
  return c


@pytest.mark.parametrize(
  "es, message",
  [
    (dict(metric="test/loss"), "is a test metric"),
    (dict(metric="nope/loss"), "must be '<eval>/<metric>'"),
    (dict(metric="val/loss", patience=0), "patience must be an integer >= 1"),
    (dict(metric="val/loss", mode="max"), "make them agree"),
  ],
)
def test_config_checks(es, message):
  with pytest.raises(ValueError, match=message):
    config_lib.validate(_config(**es))
  c = _config(metric="val/loss")
  with c.unlocked():
    c.ckpt.best_metric = None
  with pytest.raises(ValueError, match="needs config.ckpt.best_metric"):
    config_lib.validate(c)


class _Killed(Exception):
  pass


@pytest.mark.slow  # two tiny runs and a resume: ~30 s on 2 shared cores
def test_run_stops_keeps_best_and_resume_keeps_patience(tmp_path):
  # min_delta larger than any change: only the first evaluation (step 10)
  # counts as an improvement, so patience 3 stops the 60-step run at step 40.
  es = dict(metric="val/loss", mode="min", patience=3, min_delta=100.0)
  whole = loop.run(_config(**es), str(tmp_path / "whole"))
  summary = json.loads((tmp_path / "whole" / "summary.json").read_text())
  assert whole["step"] == summary["step"] == 40
  assert summary["checkpoint"].startswith("best by val/loss")  # the tools' default
  reason = summary["stopped_early"]
  assert reason.startswith("val/loss did not improve by 100 for 3 evaluations; best ")
  assert reason.endswith(" at step 10")
  assert "Stopped early" in (tmp_path / "whole" / "report.md").read_text()

  # Killed at the evaluation of step 30, after step 20's checkpoint (one bad
  # evaluation counted); a resume that forgot the count would run to step 60.
  def kill(step, metrics):
    if step == 30:
      raise _Killed()

  with pytest.raises(_Killed):
    loop.run(_config(**es), str(tmp_path / "killed"), on_eval=kill)
  resumed = loop.run(_config(**es), str(tmp_path / "killed"))
  assert resumed["step"] == 40
  assert resumed["params_fingerprint"] == whole["params_fingerprint"]
