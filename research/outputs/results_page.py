"""A results page (markdown) generated from finished workdirs.

  page(["runs/digits_cnn", "runs/m1d_cnn"], title="Vision")

One row per (run, published reference): the run's value, the published value
and its source, the difference and the verdict of
`research.outputs.report.compare_to_references` (a reference published for
other data than the run's is shown, not judged), then the facts of the run
that make the number reproducible: which checkpoint the metrics are of, train
time, devices, precision and mesh, and the git commit of the code. Extra
metrics (`metrics=`) add rows without a published value; a run with no
reference at all gets one row for the test value of its selection metric.
Below the table: the same-run baselines of every shown metric (baselines.json).

Everything comes from the files a run writes (summary.json, config.json,
baselines.json); nothing here trains or evaluates. Numbers a run did not
record print as "—", a commit it did not record as "unknown".
"""

from __future__ import annotations

import glob
import json
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from research.outputs import report

# A page may end with text kept by hand (numbers that were not rerun); a
# regenerated page keeps everything from this line on.
KEEP_MARKER = "<!-- kept by hand below this line: tools.results does not regenerate it -->"
COLUMNS = (
  "experiment",
  "metric",
  "this run",
  "published",
  "source",
  "delta",
  "verdict",
  "checkpoint",
  "train time",
  "devices",
  "precision / mesh",
  "commit",
)


def _load(path: str) -> Any:
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def expand(patterns: Sequence[str]) -> list[str]:
  """Workdirs from names and globs, in the given order (a glob's matches sorted);
  a glob matching nothing or a directory without summary.json is an error."""
  out = []
  for pattern in patterns:
    matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
    matches = [m for m in matches if os.path.isdir(m)]
    if not matches:
      raise FileNotFoundError(f"--workdirs: {pattern!r} matches no directory.")
    out += [m for m in matches if m not in out]
  for w in out:
    if not os.path.exists(os.path.join(w, "summary.json")):
      raise FileNotFoundError(f"{w} has no summary.json: is it a finished tools.train workdir?")
  return out


def _test_metric(summary: Mapping[str, Any], config: Mapping[str, Any]) -> str | None:
  """The test counterpart of the selection metric ('val/auc' -> 'test/auc'), else
  the first test metric the run has."""
  best = (config.get("ckpt") or {}).get("best_metric") or ""
  if "/" in best:
    candidate = "test/" + best.split("/", 1)[1]
    if candidate in summary:
      return candidate
  tests = sorted(
    k
    for k, v in summary.items()
    if k.startswith("test/")
    and k.count("/") == 1
    and isinstance(v, (int, float))
    and "num_examples" not in k
  )
  return tests[0] if tests else None


def _duration(seconds: Any) -> str:
  if not isinstance(seconds, (int, float)):
    return "—"
  return f"{seconds:.1f} s" if seconds < 100 else f"{seconds:.0f} s"


def _checkpoint(summary: Mapping[str, Any]) -> str:
  if "checkpoint_step" not in summary:  # a run older than final_eval's record
    return f"not recorded (trained to step {summary.get('step', '?')})"
  return f"step {summary['checkpoint_step']}: {summary.get('checkpoint', '')}"


def _devices(summary: Mapping[str, Any]) -> str:
  count = summary.get("devices", summary.get("device_count"))
  kind = summary.get("device_kind", "")
  if count is None and not kind:
    return "—"
  return f"{count if count is not None else '?'} x {kind or '?'}"


def _commit(summary: Mapping[str, Any]) -> str:
  commit = str(summary.get("commit") or "unknown")
  # 12 hex digits name a commit unambiguously in practice; keep '-dirty'.
  sha, sep, rest = commit.partition("-")
  return commit if commit == "unknown" else sha[:12] + sep + rest


def _label(experiment: str) -> str:
  """'ncf:neumf_pretrained,gmf=/tmp/runs/ml_gmf' -> '...,gmf=ml_gmf': a path given
  as a variant argument shortened to its last part, to keep the column narrow."""
  return re.sub(r"=(/[^,]*)", lambda m: "=" + os.path.basename(m.group(1).rstrip("/")), experiment)


def rows(workdirs: Sequence[str], metrics: Sequence[str] = ()) -> list[dict]:
  """One dict per table row, with the COLUMNS as keys (numbers unformatted).

  Rows per run: one per published reference of a shown metric (a reference
  published for other data is shown with verdict 'other data: <its data>' and
  no delta), then one per entry of `metrics` the run has and no reference
  names; a run without references first shows the test counterpart of its
  selection metric.
  """
  out = []
  for w in workdirs:
    summary = _load(os.path.join(w, "summary.json"))
    if summary is None:
      raise FileNotFoundError(f"{w} has no summary.json: is it a finished tools.train workdir?")
    config = _load(os.path.join(w, "config.json")) or {}
    facts = {
      "experiment": _label(config.get("experiment") or os.path.basename(os.path.normpath(w))),
      "checkpoint": _checkpoint(summary),
      "train time": _duration(summary.get("train_seconds")),
      "devices": _devices(summary),
      "precision / mesh": " / ".join(str(summary[k]) for k in ("precision", "mesh") if k in summary)
      or "—",
      "commit": _commit(summary),
      "workdir": w,
    }
    data = config.get("data") if isinstance(config.get("data"), dict) else None
    compared = report.compare_to_references(summary, config.get("references") or (), data)
    for r in compared:
      if r["verdict"] == "other data":
        r["verdict"], r["difference"] = f"other data: {r['data']}", None
    extra = [] if compared else [_test_metric(summary, config)]
    extra += [m for m in metrics if m in summary]
    for m in dict.fromkeys(extra):
      if m not in {r["metric"] for r in compared}:
        compared.append(
          {
            "metric": m,
            "this_run": summary.get(m),
            "published": None,
            "source": "",
            "difference": None,
            "verdict": "no published reference",
          }
        )
    for r in compared:
      out.append(
        {
          **facts,
          "metric": r["metric"],
          "this run": r["this_run"],
          "published": r["published"],
          "source": r["source"],
          "delta": r["difference"],
          "verdict": r["verdict"],
        }
      )
  return out


def _baseline_lines(workdirs: Sequence[str], table_rows: Sequence[dict]) -> list[str]:
  """Same-run baselines (baselines.json) on the metrics of each run's rows; a
  baseline that scored the same in several runs (same split) is one row."""
  found: dict[tuple, list[str]] = {}
  for w in workdirs:
    baselines = _load(os.path.join(w, "baselines.json")) or {}
    mine = [r for r in table_rows if r["workdir"] == w and r["metric"]]
    for name, values in baselines.items():
      for metric in dict.fromkeys(r["metric"] for r in mine):
        if isinstance(values.get(metric), (int, float)):
          found.setdefault((name, metric, values[metric]), []).append(mine[0]["experiment"])
  if not found:
    return []
  fmt = report.fmt
  body = [
    [name, metric, fmt(value), ", ".join(runs)] for (name, metric, value), runs in found.items()
  ]
  return ["", "Baselines scored in the same runs, on the same split:", ""] + report.markdown_table(
    ["baseline", "metric", "value", "in the runs of"], body, "llrl"
  )


def page(
  workdirs: Sequence[str],
  *,
  title: str,
  command: str = "",
  note: str = "",
  metrics: Sequence[str] = (),
) -> str:
  """The markdown page: header (how it was made, which commits), table, baselines."""
  table_rows = rows(workdirs, metrics)
  fmt = report.fmt
  body = [
    [
      r["experiment"],
      r["metric"] or "—",
      fmt(r["this run"]),
      fmt(r["published"]),
      report.link(r["source"]) if r["source"] else "—",
      fmt(r["delta"], signed=True) if r["delta"] is not None else "—",
      r["verdict"],
      r["checkpoint"],
      r["train time"],
      r["devices"],
      r["precision / mesh"],
      r["commit"],
    ]
    for r in table_rows
  ]
  commits = sorted({r["commit"] for r in table_rows})
  lines = [
    f"# {title}",
    "",
    "_Generated by `tools.results` from the runs' summary.json, config.json and "
    "baselines.json; do not edit the table by hand._",
    "",
  ]
  if command:
    lines += ["```bash", command, "```", ""]
  lines += [f"Code: commit {', '.join(commits)}.", ""]
  if note:
    lines += [note, ""]
  lines += report.markdown_table(COLUMNS, body, "llrrllllrlll")
  lines += _baseline_lines(workdirs, table_rows)
  return "\n".join(lines) + "\n"


def kept_tail(path: str) -> str:
  """The hand-kept end of an existing page (from KEEP_MARKER on), or ''."""
  if not os.path.exists(path):
    return ""
  with open(path) as f:
    text = f.read()
  at = text.find(KEEP_MARKER)
  return text[at:] if at >= 0 else ""
