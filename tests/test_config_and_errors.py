"""Clear errors for bad input: unknown config keys, data set / model / op names, NaN losses."""

import pytest

from research.apps.cli import check_config_overrides
from research.core import config as config_lib
from research.train import durations, loop


def test_parse_arg_variants_and_typed_overrides():
  arg = config_lib.parse_arg("cnn,smoke=True", variants=("mlp", "cnn"), smoke=False)
  assert arg.variant == "cnn" and arg.smoke is True
  assert config_lib.parse_arg(None, variants=("mlp", "cnn"), smoke=False).variant == "mlp"
  with pytest.raises(ValueError, match="Unknown variant 'vit'; valid: mlp, cnn"):
    config_lib.parse_arg("vit", variants=("mlp", "cnn"))
  with pytest.raises(ValueError, match="Unknown config argument 'smok'.*valid: smoke"):
    config_lib.parse_arg("cnn,smok=1", variants=("cnn",), smoke=False)


def test_unknown_override_key_lists_valid_keys():
  with pytest.raises(KeyError, match="valid keys here: .*'lr'"):
    config_lib.load("vision/digits:cnn", {"optimizer.learning_rate": 1.0})
  with pytest.raises(
    SystemExit, match="'learning_rat' is not a key of optimizer. Valid keys there: accum_steps, b1"
  ):
    check_config_overrides(
      ["train", "--config=experiments/vision/digits.py:cnn", "--config.optimizer.learning_rat=0.1"]
    )
  check_config_overrides(
    ["train", "--config=experiments/vision/digits.py:cnn", "--config.optimizer.lr=0.1"]
  )  # a valid key passes


def test_locked_config_rejects_new_keys():
  config = config_lib.load("vision/digits:cnn")
  with pytest.raises(AttributeError):
    config.batchsize = 3


@pytest.mark.parametrize(
  "key,value,message",
  [
    ("data.name", "imagenet21k", "imagenet21k.*digits"),
    ("model.name", "vit_h14", "Unknown model 'vit_h14'"),
    ("optimizer.name", "lion", "Unknown optimizer 'lion'; valid: sgd, momentum, adam, adamw"),
    ("schedule.name", "poly", "Unknown schedule 'poly'"),
    ("data.pp_train", "value_range(0, 1)|solarize", "pp_train.*solarize"),
    ("parallel", "pjit", "Unknown config.parallel 'pjit'"),
    ("ckpt.best_metric", "valid/accuracy", "names eval 'valid'"),
    ("data.validation_fraction", 1.5, "validation_fraction must be in \\(0, 1\\)"),
  ],
)
def test_bad_names_fail_when_the_config_loads(key, value, message):
  with pytest.raises(ValueError, match=message):
    config_lib.load("vision/digits:cnn", {key: value})


@pytest.mark.parametrize(
  "evals,best",
  [
    ({"test": ("classification", "test")}, "test/accuracy"),  # by its name
    ({"holdout": ("classification", "test")}, "holdout/accuracy"),  # by its split
    ({"test_clean": ("classification", "validation")}, "test_clean/accuracy"),
  ],
)
def test_a_best_metric_on_a_test_eval_is_refused_in_one_line(evals, best):
  config = config_lib.load("vision/digits:cnn")
  with config.unlocked():
    for name, (kind, split) in evals.items():
      config.evals[name] = config_lib.eval_config(kind, split)
    config.ckpt.best_metric = best
  with pytest.raises(ValueError, match="select on a validation eval") as e:
    config_lib.validate(config)
  assert "\n" not in str(e.value) and best in str(e.value)


def test_every_experiment_selects_on_its_validation_eval():
  config = config_lib.load("vision/digits:cnn")
  assert config.ckpt.best_metric == "val/accuracy"
  assert config.evals.val.split == "validation" and config.evals.test.split == "test"
  assert config.data.validation_fraction == 0.1


def test_validation_fraction_is_refused_where_the_data_set_has_its_own():
  with pytest.raises(ValueError, match="has its own 'validation' split"):
    config_lib.load("finance_risk/market_risk:lstm", {"data.validation_fraction": 0.1})


def test_unknown_experiment_name():
  with pytest.raises(ValueError, match="No experiment 'vision/imagenet'"):
    config_lib.load("vision/imagenet:cnn")


def test_durations_steps_epochs_and_precedence():
  assert durations.to_steps("total", {"total_steps": 7}, 10) == 7
  assert durations.to_steps("total", {"total_epochs": 2.5}, 10) == 25
  assert durations.to_steps("total", {"total_epochs": 3, "total_steps": 5}, 10) == 5
  assert durations.to_steps("warmup", {}, 10, default=0) == 0
  with pytest.raises(ValueError, match="must be >= 0"):
    durations.to_steps("total", {"total_steps": -1}, 10)


@pytest.mark.slow
def test_nan_loss_stops_with_clear_error_and_keeps_last_good_checkpoint(tmp_path):
  overrides = {"total_steps": 2, "ckpt.every_steps": 1, "log_every_steps": 1}
  good = loop.run(config_lib.load("vision/digits:mlp,smoke=True", overrides), str(tmp_path))
  # Continue the same workdir with a learning rate of 1e30: the first update
  # after the resume (step 3) overflows the parameters.
  overrides.update({"total_steps": 6, "optimizer.lr": 1e30})
  with pytest.raises(
    loop.NonFiniteError,
    match=r"Non-finite train/\w+ \(.*\) at step 3\. "
    r"Stopped without saving; the last good "
    r"checkpoint is step 2 in .*; rerunning resumes",
  ):
    loop.run(
      config_lib.load("vision/digits:mlp,smoke=True", overrides),
      str(tmp_path),
      allow_config_change=("optimizer.lr", "total_steps"),
    )
  steps = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
  assert steps == [1, 2]
  # The kept checkpoint is the good one: it still evaluates to the same params.
  from research.train import evaluate

  assert evaluate.evaluate(str(tmp_path), split="test", which="latest")["step"] == 2
  assert good["step"] == 2


def test_nan_at_the_first_step_says_nothing_was_saved(tmp_path):
  config = config_lib.load(
    "vision/digits:mlp,smoke=True", {"optimizer.lr": 1e30, "total_steps": 3, "log_every_steps": 1}
  )
  with pytest.raises(loop.NonFiniteError, match="at step 1.*no checkpoint had been saved yet"):
    loop.run(config, str(tmp_path))


@pytest.mark.slow
def test_resume_with_an_incompatible_config_names_the_problem(tmp_path):
  loop.run(config_lib.load("vision/digits:mlp,smoke=True"), str(tmp_path))
  changed = config_lib.load(
    "vision/digits:mlp,smoke=True", {"optimizer.name": "sgd", "total_steps": 4}
  )
  with pytest.raises(ValueError, match="does not match the state this config builds"):
    loop.run(changed, str(tmp_path), allow_config_change=("optimizer.name", "total_steps"))
  # A changed config is not damage: the checkpoint stays where it was.
  assert not (tmp_path / "checkpoints" / "corrupt").exists()
