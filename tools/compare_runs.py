"""One markdown table of several finished workdirs and their same-run baselines.

  python -m tools.compare_runs --workdirs=runs/ml_gmf,runs/ml_mlp,runs/ml_neumf,runs/ml_neumf_pretrained \
      --metrics=hr@10,ndcg@10 [--split=test] [--output=runs/ncf_comparison.md]
  python -m tools.compare_runs --workdirs=runs/credit_logreg,runs/credit_mlp   # every common metric

Rows: each baseline once (baselines.json; a baseline scored in several runs of
one split gives the same numbers, so the first run's are shown), then one row
per run (its summary.json: final metrics and train time). The published
references of every run's config that name a shown metric, published for that run's data,
are listed below.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from absl import flags

from research.apps import cli
from research.outputs import report

_WORKDIRS = flags.DEFINE_list("workdirs", None, "Finished tools.train workdirs, in row order.")
_SPLIT = flags.DEFINE_string("split", "test", "Split of metrics given without one.")
_METRICS = flags.DEFINE_list(
  "metrics",
  None,
  "Metrics: 'hr@10' (of --split) or full keys 'test/hr@10'. Default: every "
  "'<split>/<metric>' number all runs have.",
)
_OUTPUT = flags.DEFINE_string("output", None, "Also write the table to this markdown file.")
flags.mark_flag_as_required("workdirs")


def _load(path: str) -> Any:
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def _fmt(value: Any) -> str:
  return f"{value:.4f}" if isinstance(value, (int, float)) else "—"


def _default_metrics(summaries: Sequence[dict], split: str) -> list[str]:
  """'<split>/<metric>' numbers every run has (no per-class keys or counts)."""
  common = None
  for s in summaries:
    keys = {
      k
      for k, v in s.items()
      if k.startswith(f"{split}/")
      and k.count("/") == 1
      and isinstance(v, (int, float))
      and "num_examples" not in k
    }
    common = keys if common is None else common & keys
  return sorted(common or ())


def comparison(
  workdirs: Sequence[str], metrics: Sequence[str] | None = None, split: str = "test"
) -> str:
  """The markdown text: one row per baseline (first seen), then one per run."""
  summaries, configs = [], []
  for w in workdirs:
    summary = _load(os.path.join(w, "summary.json"))
    if summary is None:
      raise FileNotFoundError(f"{w} has no summary.json: is it a finished tools.train workdir?")
    summaries.append(summary)
    configs.append(_load(os.path.join(w, "config.json")) or {})
  keys = (
    [m if "/" in m else f"{split}/{m}" for m in metrics]
    if metrics
    else _default_metrics(summaries, split)
  )
  lines = ["| run | " + " | ".join(keys) + " | train time |", "|---|" + "---:|" * (len(keys) + 1)]
  seen = set()
  for w in workdirs:
    for name, values in (_load(os.path.join(w, "baselines.json")) or {}).items():
      if name not in seen:
        seen.add(name)
        lines.append(
          f"| {name} (baseline, same split) | "
          + " | ".join(_fmt(values.get(k)) for k in keys)
          + " | — |"
        )
  refs = []
  for w, summary, config in zip(workdirs, summaries, configs):
    label = config.get("experiment", os.path.basename(os.path.normpath(w)))
    lines.append(
      f"| {label} | "
      + " | ".join(_fmt(summary.get(k)) for k in keys)
      + f" | {summary.get('train_seconds', 0):.0f} s |"
    )
    for r in config.get("references", []):
      # Only numbers published for this run's data (research.outputs.report).
      if r.get("metric") in keys and report.reference_applies(r, config.get("data")):
        refs.append(f"- {label}: published {r['metric']} = {r['value']} ({r.get('source', '')})")
  return "\n".join(lines + ([""] + refs if refs else [])) + "\n"


def main(argv):
  del argv
  text = comparison(_WORKDIRS.value, _METRICS.value, _SPLIT.value)
  print(text, end="")
  if _OUTPUT.value:
    from research.outputs import writer

    writer.atomic_write(_OUTPUT.value, text)


if __name__ == "__main__":
  cli.run(main)
