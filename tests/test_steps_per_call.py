"""config.steps_per_call: n steps in one compiled call give the run n single steps give.

The loop runs `steps_per_call` steps per dispatch (a `lax.scan` over n stacked
batches) when the call starts on a multiple of n and no log, evaluation or
checkpoint falls inside it; otherwise single steps. Logged metrics, evaluation
steps, checkpoints, the data position and the final weights must be those of
the one-step-per-call run, on one device and on several (jit and pmap), and a
run resumed from a step that is not a multiple of n must continue exactly.
"""

import json

import jax
import numpy as np
import pytest

from research.core import config as config_lib
from research.train import checkpoint as ckpt_lib
from research.train import loop, parallel

# Each case trains the same run twice (chunked and step by step): 10-15 s each.
pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
  "step, total, per_call, events, expected",
  [
    (0, 20, 1, [5], 1),  # steps_per_call=1: always one
    (0, 20, 4, [4, 8], 4),  # events on the call boundary are fine
    (4, 20, 4, [6], 1),  # step 6's event falls inside 5..8
    (6, 20, 4, [6], 1),  # not aligned: single steps up to 8
    (8, 20, 4, [6], 4),  # 9..12 holds no multiple of 6
    (16, 18, 4, [], 1),  # 17..20 would pass the end
    (12, 20, 4, [0, 4], 4),  # 0 = never
  ],
)
def test_steps_this_call(step, total, per_call, events, expected):
  assert loop._steps_this_call(step, total, per_call, events) == expected


def _config(steps_per_call, *, total=22, parallel="jit", grad_allreduce="xla"):
  # With 4 steps per call: steps 1-4, 9-12 and 13-16 run as calls of 4; the
  # evaluation at 6 (inside 5-8), 18 (inside 17-20) and the end (21, 22) make
  # single steps. Dropout and random crops make the RNG and data position
  # matter. A constant learning rate, so a run stopped early (total=5)
  # and rerun to 13 follows the same schedule.
  c = config_lib.load(
    "experiments/vision/digits.py:mlp,smoke=True",
    {
      "total_steps": total,
      "log_every_steps": 4,
      "evals.test.every_steps": 6,
      "ckpt.every_steps": 8,
      "schedule.name": "constant",
      "ckpt.async_save": False,
      "progress": False,
      "steps_per_call": steps_per_call,
      "parallel": parallel,
      "grad_allreduce": grad_allreduce,
    },
  )
  return c


def _metrics(workdir):
  lines = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  train = {m["step"]: m["train/loss"] for m in lines if "train/loss" in m}
  evals = {m["step"]: m["test/accuracy"] for m in lines if "test/accuracy" in m}
  return train, evals


def _params(workdir):
  """The final checkpoint's params, as host arrays in tree order."""
  ckpt = ckpt_lib.Checkpointer(str(workdir / "checkpoints"))
  try:
    return [np.asarray(x) for x in jax.tree.leaves(ckpt.restore_raw(ckpt.latest_step())["params"])]
  finally:
    ckpt.close()


def _run(tmp_path, name, config, devices):
  workdir = tmp_path / name
  result = loop.run(config, str(workdir), devices=devices)
  return workdir, result


@pytest.fixture
def calls(monkeypatch):
  """Counts the loop's multi-step calls and the steps they ran."""
  seen = []
  original = parallel.OneInFlight.train_steps

  def counting(self, state, batches):
    seen.append(jax.tree.leaves(batches)[0].shape[1 if self.per_device_metrics else 0])
    return original(self, state, batches)

  monkeypatch.setattr(parallel.OneInFlight, "train_steps", counting)
  return seen


@pytest.mark.parametrize(
  "parallel, num_devices, grad_allreduce",
  [("jit", 1, "xla"), ("jit", 2, "flat"), ("pmap", 2, "xla")],
)
def test_chunked_run_equals_single_steps(tmp_path, calls, parallel, num_devices, grad_allreduce):
  devices = jax.devices()[:num_devices]
  ref, ref_result = _run(
    tmp_path, "single", _config(1, parallel=parallel, grad_allreduce=grad_allreduce), devices
  )
  assert calls == []
  got, result = _run(
    tmp_path, "chunked", _config(4, parallel=parallel, grad_allreduce=grad_allreduce), devices
  )
  assert calls == [4, 4, 4]
  (train_ref, eval_ref), (train, evals) = _metrics(ref), _metrics(got)
  assert sorted(train) == sorted(train_ref) == [4, 8, 12, 16, 20, 22]
  assert sorted(evals) == sorted(eval_ref) == [6, 12, 18, 22]
  np.testing.assert_allclose(
    [train[s] for s in sorted(train)], [train_ref[s] for s in sorted(train)], rtol=1e-5
  )
  assert evals == pytest.approx(eval_ref, abs=1e-6)
  assert result["step"] == ref_result["step"] == 22
  assert sorted(p.name for p in (got / "checkpoints").iterdir() if p.name.isdigit()) == sorted(
    p.name for p in (ref / "checkpoints").iterdir() if p.name.isdigit()
  )
  for a, b in zip(_params(got), _params(ref)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_chunked_run_resumes_from_an_unaligned_step(tmp_path, calls):
  devices = jax.devices()[:1]
  ref, _ = _run(tmp_path, "ref", _config(4), devices)
  # Stop at step 6 (its final checkpoint, not a multiple of 4), then rerun to 22:
  # single steps 7 and 8, then calls of 4 again.
  workdir = tmp_path / "resumed"
  loop.run(_config(4, total=6), str(workdir), devices=devices)
  del calls[:]
  result = loop.run(_config(4), str(workdir), devices=devices, allow_config_change=("total_steps",))
  assert calls == [4, 4]
  assert result["step"] == 22
  (train_ref, eval_ref), (train, evals) = _metrics(ref), _metrics(workdir)
  assert sorted(train) == sorted([*train_ref, 6])  # + the stopped run's last step
  # A log averages the steps since the previous one, so step 8's differs (7-8
  # after the stop at 6, 5-8 in the reference); the others cover the same steps.
  same = [4, 12, 16, 20, 22]
  np.testing.assert_allclose([train[s] for s in same], [train_ref[s] for s in same], rtol=1e-5)
  assert evals == pytest.approx(eval_ref, abs=1e-6)
  for a, b in zip(_params(workdir), _params(ref)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_steps_per_call_must_be_a_positive_integer():
  with pytest.raises(ValueError, match="config.steps_per_call must be an integer >= 1"):
    _config(0)


def test_convolutional_model_on_cpu_is_warned_about(caplog):
  from research.train import builder

  cnn = builder.build(
    config_lib.load("experiments/vision/digits.py:cnn,smoke=True", {"steps_per_call": 2}),
    devices=jax.devices()[:1],
  )
  with caplog.at_level("WARNING", logger="research.train.builder"):
    builder.compile_steps(cnn)
  assert "steps_per_call=2 with a convolutional model on CPU" in caplog.text
  mlp = builder.build(_config(2), devices=jax.devices()[:1])
  assert not builder.warn_if_scanned_steps_are_slow(mlp)
