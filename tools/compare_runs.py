"""One side-by-side table of several runs of one experiment and their same-run baselines.

  python -m tools.compare_runs --workdirs=runs/credit_logreg,runs/credit_scorecard,runs/credit_mlp,runs/credit_ft_transformer \
      --split=test --output=runs/credit_comparison.md

Each run contributes its trained model (summary.json) and, once, each of its
baselines (baselines.json; a baseline scored in several runs on the same split
gives the same numbers, the first run's are shown). Train time is the model's.
"""
import json
import os

from absl import app, flags

from research.outputs import report, writer

_WORKDIRS = flags.DEFINE_list("workdirs", None, "Workdirs written by tools.train.")
_SPLIT = flags.DEFINE_string("split", "test", "Split whose metrics are compared.")
_METRICS = flags.DEFINE_list("metrics", ["roc_auc", "gini", "ks", "brier", "log_loss", "ece",
                                         "psi", "accuracy", "dp_difference", "eo_difference",
                                         "di_ratio"], "Metric names (without the split).")
_OUTPUT = flags.DEFINE_string("output", None, "Markdown file to write (also printed).")
flags.mark_flag_as_required("workdirs")


def comparison(workdirs, split, metrics) -> list[str]:
  rows, seen = [], set()
  for workdir in workdirs:
    with open(os.path.join(workdir, "summary.json")) as f:
      summary = json.load(f)
    config = writer.read_config(workdir)
    name = f"{config['experiment']} ({config['model']['name']})"
    rows.append([f"**{name}**"] + [report._fmt(summary.get(f"{split}/{m}")) for m in metrics]
                + [f"{summary.get('train_seconds', float('nan')):.1f} s"])
    path = os.path.join(workdir, "baselines.json")
    if os.path.exists(path):
      with open(path) as f:
        for base, values in json.load(f).items():
          if base not in seen:
            seen.add(base)
            rows.append([f"{base} (baseline)"] + [report._fmt(values.get(f"{split}/{m}"))
                                                  for m in metrics]
                        + [f"{values.get('seconds', float('nan')):.1f} s"])
  return report._table(["Model"] + [f"{split}/{m}" for m in metrics] + ["Time"], rows,
                       "l" + "r" * (len(metrics) + 1))


def main(argv):
  del argv
  lines = comparison(_WORKDIRS.value, _SPLIT.value, _METRICS.value)
  text = "\n".join(lines) + "\n"
  print(text)
  if _OUTPUT.value:
    writer.atomic_write(_OUTPUT.value, text)


if __name__ == "__main__":
  app.run(main)
