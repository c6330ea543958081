"""Benchmark an experiment's train step; prints one JSON line.

  python -m tools.benchmark --config=experiments/vision/fashion_mnist.py:cnn [--steps=100]
"""
import json

from absl import app, flags
from ml_collections import config_flags

from research import config as config_lib
from research.train import benchmark

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment: path.py:arg", lock_config=True)
_STEPS = flags.DEFINE_integer("steps", 50, "Timed steps per measurement.")
flags.mark_flags_as_required(["config"])


def main(argv):
  del argv
  path = config_flags.get_config_filename(flags.FLAGS["config"])
  config = config_lib.finalize(_CONFIG.value, path, None)
  print(json.dumps(benchmark.benchmark(config, steps=_STEPS.value)), flush=True)


if __name__ == "__main__":
  app.run(main)
