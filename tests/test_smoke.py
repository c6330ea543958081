"""research.core.smoke.shrink: the tiny mode every experiment shares."""

import pytest

from research.core import smoke
from research.core.config import base_config, eval_config, load
from tests.test_experiments import EXPERIMENTS, OWN_DATA, SEPARATE


def _config(**schedule):
  c = base_config()
  c.model.update(dict(name="mlp", hidden=(256, 128)))
  c.total_epochs = 30
  c.schedule.update(schedule)
  c.evals.test = eval_config("classification", "test", every_epochs=2)
  c.evals.val = eval_config("classification", "validation", every_steps=500)
  c.ckpt.every_epochs = 1
  return c


def test_shrink_makes_a_two_step_run_that_evaluates_and_checkpoints_at_the_end():
  c = _config(warmup_epochs=1)
  smoke.shrink(c, model=dict(hidden=(16,)), eval_batch_size=32)
  assert c.model.to_dict() == dict(name="mlp", hidden=(16,))
  assert (c.batch_size, c.eval_batch_size) == (16, 32)
  assert (c.total_steps, c.total_epochs) == (2, None)
  assert (c.ckpt.every_steps, c.ckpt.every_epochs) == (1, None)
  assert c.log_every_steps == 1
  for ev in c.evals.values():  # once, at the end
    assert (ev.every_steps, ev.every_epochs) == (None, None)
  assert (c.schedule.warmup_steps, c.schedule.warmup_epochs) == (None, None)


@pytest.mark.parametrize(("warmup", "expected"), [(dict(warmup_steps=100), 1), (dict(), None)])
def test_shrink_keeps_a_warmup_in_steps_as_one_step(warmup, expected):
  c = _config(**warmup)
  smoke.shrink(c, steps=3)
  assert c.schedule.warmup_steps == expected and c.total_steps == 3


def test_shrink_refuses_a_model_field_the_model_does_not_have():
  with pytest.raises(KeyError, match="'mlp' has no field 'hiden'"):
    smoke.shrink(_config(), model=dict(hiden=(16,)))


@pytest.mark.parametrize(("experiment", "variant"), EXPERIMENTS + SEPARATE + OWN_DATA)
def test_every_experiments_tiny_mode_is_a_two_step_run(experiment, variant):
  big = load(f"{experiment}:{variant}")
  tiny = load(f"{experiment}:{variant},smoke=True")
  assert (tiny.total_steps, tiny.total_epochs, tiny.batch_size) == (2, None, 16)
  assert (tiny.ckpt.every_steps, tiny.log_every_steps) == (1, 1)
  assert tiny.schedule.warmup_epochs is None and tiny.schedule.warmup_steps in (None, 1)
  assert tiny.model.keys() == big.model.keys()  # shrunk, not reshaped
  for name, ev in tiny.evals.items():
    if name != "val_sampled":  # shakespeare_char selects on it every step
      assert (ev.every_steps, ev.every_epochs) == (None, None), name
