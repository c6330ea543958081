"""Walk-forward training and backtest: one `loop.run` per fold, one joint backtest.

  python -m tools.walk_forward --config=experiments/finance_risk/market_risk.py:lstm \
      --workdir=runs/market_lstm

Writes <workdir>/fold_<k>/ (a normal workdir per fold), <workdir>/backtest.json
and <workdir>/report.md (the backtest table of the model and the baselines).
"""

import json

from absl import app, flags
from ml_collections import config_flags

from research.apps import cli
from research.apps.cli import quiet_logs
from research.core import config as config_lib
from research.domains.finance import walk_forward
from research.platforms import xla_flags

xla_flags.apply()

_CONFIG = config_flags.DEFINE_config_file(
  "config", None, "Experiment: path.py:arg", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for the folds and the backtest.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  quiet_logs()
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  config = config_lib.finalize_flag(_CONFIG.value)  # also sets host devices
  results = walk_forward.run(config, _WORKDIR.value)
  print(json.dumps(results, indent=2))


if __name__ == "__main__":
  cli.run(main)
