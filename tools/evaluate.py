"""Evaluate a trained run's best (or latest) checkpoint.

python -m tools.evaluate --workdir=runs/fm_cnn [--split=test] [--checkpoint=best|latest|STEP]
"""

import json

from absl import flags

from research.apps import cli
from research.apps.cli import quiet_logs
from research.core import distributed
from research.platforms import xla_flags
from research.train import evaluate

xla_flags.apply()  # XLA reads its flags once, when JAX starts a backend

_WORKDIR = flags.DEFINE_string("workdir", None, "A workdir written by tools.train.")
_SPLIT = flags.DEFINE_string("split", None, "Data split to evaluate (default: the run's evals).")
_WHICH = flags.DEFINE_string("checkpoint", "best", "'best', 'latest' or a step number.")
flags.mark_flag_as_required("workdir")


def main(argv):
  quiet_logs()
  del argv
  distributed.initialize()
  results = evaluate.evaluate(_WORKDIR.value, split=_SPLIT.value, which=_WHICH.value)
  print(
    json.dumps(
      {k: v for k, v in results.items() if "/" not in k.split("/", 1)[-1]}, indent=2, sort_keys=True
    )
  )


if __name__ == "__main__":
  cli.run(main)
