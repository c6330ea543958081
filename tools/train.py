"""Train (or resume) an experiment.

  python -m tools.train --config=experiments/vision/fashion_mnist.py:cnn --workdir=runs/fm_cnn \
      [--config.batch_size=256 ...]

Rerunning the same command with the same --workdir resumes from the last checkpoint.
"""

from absl import app, flags
from ml_collections import config_flags

from research.apps import cli
from research.apps.cli import quiet_logs
from research.core import config as config_lib
from research.core import distributed
from research.platforms import xla_flags
from research.train import loop

xla_flags.apply()  # XLA reads its flags once, when JAX starts a backend

_CONFIG = config_flags.DEFINE_config_file(
  "config", None, "Experiment: path.py:arg", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (config, metrics, checkpoints).")
_ALLOW_CHANGE = flags.DEFINE_list(
  "allow_config_change",
  [],
  "Config keys (dotted, e.g. optimizer.lr) a resume may change from "
  "the workdir's config.json; recorded in config_changes.jsonl. Other changes are refused.",
)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  quiet_logs()
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  distributed.initialize()
  config = config_lib.finalize_flag(_CONFIG.value)  # also sets host devices
  loop.run(config, _WORKDIR.value, allow_config_change=_ALLOW_CHANGE.value)
  cli.print_closing_line(_WORKDIR.value, config)


if __name__ == "__main__":
  cli.run(main)
