"""The experiment catalogue: every `experiment:variant`, its data, model,
selection metric and the published references it reproduces.

  python -m tools.experiments            # a markdown table
  python -m tools.experiments --json     # one JSON list (research/apps/catalogue.py's entries)
"""

from __future__ import annotations

import json

from absl import flags

from research.apps import catalogue, cli
from research.apps.cli import quiet_logs

_JSON = flags.DEFINE_bool("json", False, "Print JSON instead of a markdown table.")


def main(argv):
  del argv
  quiet_logs()
  rows = catalogue.entries()
  if _JSON.value:
    print(json.dumps(rows, indent=2))
  else:
    print(catalogue.markdown(rows), end="")


if __name__ == "__main__":
  cli.run(main)
