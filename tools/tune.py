"""Hyperparameter search with optuna: each trial an ordinary run, scored on validation.

  python -m tools.tune --config=experiments/vision/mnist1d.py:cnn --workdir=runs/tune_m1d \
      --trials=12 [--sampler=tpe|random|grid] [--pruner=median|halving|none] \
      [--space=space.py | --space.optimizer.lr=log:1e-4:1e-1 ...] [--prune_after=2] \
      [--config.<key>=...]

Trial n trains in `<workdir>/trials/<n>/` and is scored on the config's
validation metric (a test metric is refused). The study is
`<workdir>/study.db`: rerunning the command resumes the search until
`--trials` trials have finished, several processes may run it at once, and a
trial whose process died is retried by resuming its run. At the end the best
trial's checkpoint is evaluated once on the test split and
`<workdir>/report.md` written. The search itself is research/apps/tune.py.

The search space is {dotted config key: spec} (research/apps/search_space.py):
the experiment module's `search_space(variant)`, replaced by --space=file.py,
with --space.<key>=<spec> flags added on top.
"""

import sys

from absl import flags
from ml_collections import config_flags

from research.apps import cli, tune
from research.apps.cli import quiet_logs
from research.core import config as config_lib
from research.platforms import xla_flags

xla_flags.apply()  # XLA reads its flags once, when JAX starts a backend

_CONFIG = config_flags.DEFINE_config_file(
  "config", None, "Experiment: path.py:arg", lock_config=True
)
_WORKDIR = flags.DEFINE_string(
  "workdir", None, "Search directory: study.db, trials/<n>/, report.md."
)
_TRIALS = flags.DEFINE_integer("trials", 12, "Finished trials (complete, pruned or NaN) to reach.")
_SAMPLER = flags.DEFINE_enum("sampler", "tpe", ["tpe", "random", "grid"], "optuna sampler.")
_PRUNER = flags.DEFINE_enum(
  "pruner",
  "median",
  ["median", "halving", "none"],
  "Stops bad trials from their intermediate validation evaluations.",
)
_SPACE = flags.DEFINE_string(
  "space",
  None,
  "A .py file with search_space(variant) or SEARCH_SPACE; "
  "default: the experiment's own. Add keys with --space.<key>=<spec>.",
)
_PRUNE_AFTER = flags.DEFINE_integer(
  "prune_after",
  2,
  "Evaluations a trial runs before the pruner may stop it (the first ones are noisy).",
)
_GRID_POINTS = flags.DEFINE_integer("grid_points", 3, "Values per range for --sampler=grid.")
_SEED = flags.DEFINE_integer("seed", 0, "Sampler seed.")
_HEARTBEAT = flags.DEFINE_integer(
  "heartbeat_seconds",
  10,
  "A running trial's heartbeat; one silent for 3x this is taken as "
  "dead, failed and retried (resuming its workdir).",
)
flags.mark_flags_as_required(["config", "workdir"])


def split_space_args(argv: list[str]) -> tuple[dict[str, str], list[str]]:
  """Pulls the `--space.<key>=<spec>` flags out of argv (absl cannot declare them)."""
  space, rest = {}, []
  for arg in argv:
    if arg.startswith("--space."):
      key, sep, value = arg[len("--space.") :].partition("=")
      if not sep:
        cli.fail(
          f"{arg}: write --space.<config key>=<spec>, e.g. --space.optimizer.lr=log:1e-4:1e-1"
        )
      space[key] = value
    else:
      rest.append(arg)
  return space, rest


_SPACE_FLAGS: dict[str, str] = {}  # filled from argv when run as a program


def main(argv):
  quiet_logs()
  if len(argv) > 1:
    raise cli.UserError(f"Unexpected arguments: {argv[1:]}")
  config = config_lib.finalize_flag(_CONFIG.value)  # also sets host devices
  path, _, arg = config_flags.get_config_filename(flags.FLAGS["config"]).partition(":")
  space = tune.resolve_space(config, path, arg, space_file=_SPACE.value, extra=_SPACE_FLAGS)
  options = tune.Options(
    trials=_TRIALS.value,
    sampler=_SAMPLER.value,
    pruner=_PRUNER.value,
    prune_after=_PRUNE_AFTER.value,
    grid_points=_GRID_POINTS.value,
    seed=_SEED.value,
    heartbeat_seconds=_HEARTBEAT.value,
  )
  overrides = [a for a in sys.argv[1:] if a.startswith("--config.")]
  result = tune.run(config, path, arg or None, _WORKDIR.value, space, options, overrides)
  print(tune.summary_line(result), flush=True)


if __name__ == "__main__":
  _space_flags, sys.argv[:] = split_space_args(sys.argv)
  _SPACE_FLAGS.update(_space_flags)
  cli.run(main)
