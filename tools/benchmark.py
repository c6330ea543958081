"""Benchmark an experiment's train step; prints one JSON line.

python -m tools.benchmark --config=experiments/vision/fashion_mnist.py:cnn [--steps=100]
"""

import json

from absl import flags
from ml_collections import config_flags

from research.apps import cli
from research.apps.cli import quiet_logs
from research.core import config as config_lib
from research.platforms import xla_flags
from research.train import benchmark

xla_flags.apply()  # XLA reads its flags once, when JAX starts a backend

_CONFIG = config_flags.DEFINE_config_file(
  "config", None, "Experiment: path.py:arg", lock_config=True
)
_STEPS = flags.DEFINE_integer("steps", 50, "Timed steps per measurement.")
flags.mark_flags_as_required(["config"])


def main(argv):
  quiet_logs()
  del argv
  config = config_lib.finalize_flag(_CONFIG.value)  # also sets host devices
  print(json.dumps(benchmark.benchmark(config, steps=_STEPS.value)), flush=True)


if __name__ == "__main__":
  cli.run(main)
