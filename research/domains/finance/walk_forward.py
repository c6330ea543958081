"""Walk-forward (expanding-window) evaluation through the one training loop.

For a config whose data set has walk-forward folds (options `num_folds`,
`fold`; e.g. 'eu_stock_markets'), `run` trains fold k with `loop.run` into
`<workdir>/fold_<k>/` (every day before fold k's block trains, the block is
evaluated), then joins the out-of-sample forecasts of all folds, in day
order, and backtests the whole evaluation period once per model: the trained
model (its 'market_risk' evaluator's saved forecasts) and every baseline
(their `forecasts.npz`). Kupiec and Christoffersen need the full hit
sequence, which is why the folds are joined before testing rather than
averaged. Writes `<workdir>/backtest.json`, `<workdir>/report.md` and
`<workdir>/plots/`.
"""

from __future__ import annotations

import json
import logging
import os

import numpy as np

from research.core import config as config_lib
from research.metrics import market
from research.outputs import plots, report, writer
from research.train import loop

log = logging.getLogger(__name__)
BACKTEST_FILE = "backtest.json"
_COLUMNS = (
  "days",
  "exceedances",
  "exceedance_rate",
  "kupiec_lr",
  "kupiec_p",
  "christoffersen_lr",
  "christoffersen_p",
  "qlike",
  "vol_mse",
  "direction_accuracy",
  "mean_var",
)


def fold_config(config, fold: int):
  """A copy of `config` for walk-forward fold `fold`, validated."""
  c = config_lib.ConfigDict(config.to_dict())
  c.data.options.fold = fold
  c.experiment = f"{config.experiment} [fold {fold}]"
  c.lock()
  config_lib.validate(c)
  return c


def _market_eval(config) -> tuple[str, float]:
  # The backtest is of the evaluated period, not of the validation days the
  # checkpoint was chosen on.
  names = [
    (n, float(e.get("level", 0.99)))
    for n, e in config.evals.items()
    if e.type == "market_risk" and e.split != "validation"
  ]
  if not names:
    raise ValueError(
      "Walk-forward backtests need a 'market_risk' eval in config.evals; found "
      f"{[e.type for e in config.evals.values()]}."
    )
  return names[0]


def join_forecasts(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
  """Concatenates per-fold forecasts; checks the days are increasing without
  overlap across folds (each day forecast once, strictly after the previous)."""
  joined = {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}
  days = joined["day"]
  if np.any(np.diff(days) <= 0):
    raise ValueError(
      "Walk-forward folds overlap or are out of order: the evaluation days "
      "are not strictly increasing."
    )
  return joined


def run(config, workdir: str) -> dict[str, dict[str, float]]:
  """Trains every fold and writes the joint backtest; returns {model: metrics}."""
  if "num_folds" not in config.data.options:
    raise ValueError(
      f"Data set {config.data.name!r} has no walk-forward folds (config.data.options.num_folds)."
    )
  eval_name, level = _market_eval(config)
  num_folds = int(config.data.options.num_folds)
  per_model: dict[str, list] = {}
  train_seconds = 0.0
  for fold in range(num_folds):
    fold_dir = os.path.join(workdir, f"fold_{fold}")
    summary = loop.run(fold_config(config, fold), fold_dir)
    train_seconds += float(summary.get("train_seconds", 0.0))
    per_model.setdefault(config.model.name, []).append(
      writer.load_artifact(fold_dir, f"{eval_name}/forecasts")
    )
    for name in config.baselines:
      with np.load(os.path.join(fold_dir, "baselines", name, "forecasts.npz")) as data:
        per_model.setdefault(name, []).append({k: data[k] for k in data.files})
  results, joined = {}, {}
  for name, parts in per_model.items():
    f = joined[name] = join_forecasts(parts)
    results[name] = market.backtest(
      f["target"], f["var"], vol=f["vol"], mean=f["mean"], level=level
    )
  writer.atomic_write(
    os.path.join(workdir, BACKTEST_FILE),
    json.dumps(
      dict(results=results, train_seconds=train_seconds, num_folds=num_folds, level=level), indent=2
    ),
  )
  paths = [
    plots.plot_forecasts(
      f,
      os.path.join(workdir, plots.PLOTS_DIR, f"{name}_var.png"),
      title=f"{config.experiment}: {name}, walk-forward VaR",
    )
    for name, f in joined.items()
  ]
  _write_report(workdir, config, results, num_folds, level, train_seconds, paths)
  return results


def _write_report(workdir, config, results, num_folds, level, train_seconds, paths):
  model = config.model.name
  rows = []
  for name, r in results.items():
    verdict = "not rejected" if r["kupiec_p"] >= 0.05 else "rejected"
    label = f"**{name}** (trained)" if name == model else name
    cells = [
      str(int(r[k])) if k in ("days", "exceedances") else report.fmt(r.get(k)) for k in _COLUMNS
    ]
    rows.append([label] + cells + [verdict])
  days = int(next(iter(results.values()))["days"])
  lines = [
    f"# {config.experiment}: walk-forward backtest",
    "",
    f"{num_folds} expanding-window folds, every fold refitted; {days} out-of-sample "
    f"days; VaR at {level:.0%}; expected exceedance rate {1 - level:.2%}. Each forecast "
    "uses returns before its day only. Kupiec (unconditional coverage) and "
    "Christoffersen (independence) p-values: a model is rejected at 5% when p < 0.05.",
    "",
    "## Backtest (all folds joined)",
    "",
  ]
  lines += report.markdown_table(
    ["Model"] + list(_COLUMNS) + ["Kupiec at 5%"], rows, "l" + "r" * len(_COLUMNS) + "l"
  )
  lines += [
    "",
    f"Training time of the learned model over all folds: {train_seconds:.1f} s.",
    "",
    "Per-fold runs (each with its own report.md): "
    + ", ".join(f"[fold_{k}](fold_{k}/report.md)" for k in range(num_folds)),
    "",
    "## Plots",
    "",
  ]
  lines += [f"![{os.path.basename(p)}]({os.path.relpath(p, workdir)})" for p in paths] + [""]
  writer.atomic_write(os.path.join(workdir, report.REPORT_FILE), "\n".join(lines))
