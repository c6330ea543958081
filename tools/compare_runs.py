"""One markdown table of several finished workdirs (e.g. the four NCF variants).

  python -m tools.compare_runs --workdirs=runs/ml_gmf,runs/ml_mlp,runs/ml_neumf,runs/ml_neumf_pretrained \
      --metrics=test/hr@10,test/ndcg@10 [--out=runs/ncf_comparison.md]

Each row is a run's summary.json (its final metrics and train time); the
baselines of the first run (baselines.json, same split) come first, and the
references of every run (its config's published numbers) are listed below.
"""
import json
import os

from absl import app, flags

_WORKDIRS = flags.DEFINE_list("workdirs", None, "Finished workdirs, in row order.")
_METRICS = flags.DEFINE_list("metrics", None, "Metric keys, e.g. test/hr@10,test/ndcg@10.")
_OUT = flags.DEFINE_string("out", None, "Also write the table to this markdown file.")
flags.mark_flags_as_required(["workdirs", "metrics"])


def _load(path):
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def comparison(workdirs, metrics) -> str:
  """The markdown text: one row per baseline of the first run, then per run."""
  lines = ["| run | " + " | ".join(metrics) + " | train time |",
           "|---|" + "---:|" * (len(metrics) + 1)]
  fmt = lambda v: f"{v:.4f}" if isinstance(v, (int, float)) else "—"
  for name, values in (_load(os.path.join(workdirs[0], "baselines.json")) or {}).items():
    lines.append(f"| {name} (baseline, same split) | "
                 + " | ".join(fmt(values.get(m)) for m in metrics) + " | — |")
  refs = []
  for w in workdirs:
    summary = _load(os.path.join(w, "summary.json"))
    if summary is None:
      raise FileNotFoundError(f"{w} has no summary.json: is it a finished tools.train workdir?")
    config = _load(os.path.join(w, "config.json")) or {}
    label = config.get("experiment", os.path.basename(w))
    lines.append(f"| {label} | " + " | ".join(fmt(summary.get(m)) for m in metrics)
                 + f" | {summary.get('train_seconds', 0):.0f} s |")
    for r in config.get("references", []):
      if r.get("metric") in metrics:
        refs.append(f"- {label}: published {r['metric']} = {r['value']} ({r.get('source', '')})")
  return "\n".join(lines + ([""] + refs if refs else [])) + "\n"


def main(argv):
  del argv
  text = comparison(_WORKDIRS.value, _METRICS.value)
  print(text, end="")
  if _OUT.value:
    with open(_OUT.value, "w") as f:
      f.write(text)


if __name__ == "__main__":
  app.run(main)
