"""PNG plots of a run: learning curves and confusion matrices.

Uses `matplotlib.figure.Figure` directly (Agg canvas), never pyplot: no global
figure registry to leak, no display needed, safe next to other code that uses
pyplot with another backend.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from research.outputs import writer

PLOTS_DIR = "plots"
# Beyond this many classes the per-cell numbers are unreadable.
_MAX_ANNOTATED_CLASSES = 30


def _new_figure(size: tuple[float, float]) -> Figure:
  fig = Figure(figsize=size, layout="constrained")
  FigureCanvasAgg(fig)
  return fig


def _series(records: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
  """(steps, values) of the records that hold a finite value for `key`."""
  pts = [
    (r["step"], r[key])
    for r in records
    if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])
  ]
  if not pts:
    return np.zeros(0), np.zeros(0)
  steps, values = zip(*pts)
  return np.asarray(steps), np.asarray(values, np.float64)


def _plot_keys(records: list[dict], keys: list[str], path: str, ylabel: str) -> str:
  fig = _new_figure((7, 4.5))
  ax = fig.add_subplot()
  all_values = []
  for key in keys:
    steps, values = _series(records, key)
    # Sparse (eval) series get markers so a single point is still visible.
    marker = "o" if len(steps) < 50 else None
    ax.plot(steps, values, label=key, marker=marker, markersize=3)
    all_values.append(values)
  values = np.concatenate(all_values)
  # Log scale only when it helps: positive values spanning >2 decades.
  if len(values) and values.min() > 0 and values.max() / values.min() > 100:
    ax.set_yscale("log")
  ax.set_xlabel("step")
  ax.set_ylabel(ylabel)
  ax.grid(True, alpha=0.3)
  ax.legend()
  fig.savefig(path, dpi=100)
  return path


def plot_curves(workdir: str) -> list[str]:
  """Writes plots/loss.png and plots/accuracy.png from workdir/metrics.jsonl.

  loss.png: 'loss' and every '*/loss' key (train and eval) vs step.
  accuracy.png: every key ending in 'accuracy' vs step.
  A plot whose keys never hold a finite value is skipped.

  Returns:
    The paths written.
  """
  records = writer.read_metrics(workdir)
  keys = sorted({k for r in records for k in r if k not in ("step", "time")})
  groups = {
    "loss": [k for k in keys if k == "loss" or k.endswith("/loss")],
    "accuracy": [k for k in keys if k.endswith("accuracy")],
  }
  written = []
  for name, group in groups.items():
    group = [k for k in group if len(_series(records, k)[0])]
    if not group:
      continue
    os.makedirs(os.path.join(workdir, PLOTS_DIR), exist_ok=True)
    path = os.path.join(workdir, PLOTS_DIR, f"{name}.png")
    written.append(_plot_keys(records, group, path, name))
  return written


def plot_confusion_matrix(
  cm: np.ndarray, class_names: Sequence[str] | None, path: str, title: str = "Confusion matrix"
) -> str:
  """Confusion matrix [C, C] (rows = true, cols = predicted) as a PNG at `path`.

  Colour is the row-normalised fraction (per-class recall on the diagonal), so
  rare classes are as visible as common ones; cells are annotated with raw
  counts when C <= 30. `class_names=None` labels classes '0'..'C-1'.
  """
  cm = np.asarray(cm)
  n = cm.shape[0]
  if class_names is None:
    class_names = [str(i) for i in range(n)]
  if cm.shape != (n, n) or len(class_names) != n:
    raise ValueError(f"cm {cm.shape} and {len(class_names)} class_names do not match.")
  row_sums = cm.sum(axis=1, keepdims=True)
  frac = np.divide(cm, row_sums, out=np.zeros(cm.shape, np.float64), where=row_sums != 0)

  side = min(max(4.0, 0.45 * n + 2.5), 30.0)
  fig = _new_figure((side + 1.0, side))
  ax = fig.add_subplot()
  im = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
  fig.colorbar(im, ax=ax, label="fraction of true class")
  ax.set_title(title)
  ax.set_xlabel("predicted")
  ax.set_ylabel("true")
  ax.set_xticks(range(n), [str(c) for c in class_names], rotation=90 if n > 10 else 0)
  ax.set_yticks(range(n), [str(c) for c in class_names])
  if n <= _MAX_ANNOTATED_CLASSES:
    for i in range(n):
      for j in range(n):
        ax.text(
          j,
          i,
          str(int(cm[i, j])),
          ha="center",
          va="center",
          fontsize=8,
          color="white" if frac[i, j] > 0.5 else "black",
        )
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=100)
  return path


# --- plots of evaluator artifacts, keyed by artifact kind ---------------------------
# An evaluator artifact '<split>/<kind>' is drawn by ARTIFACT_PLOTS[kind] (when
# registered) into plots/<split>_<kind>.png: fn(value, path, title=..., class_names=...).


def _save(fig: Figure, path: str) -> str:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=100)
  return path


def plot_roc_curve(value, path: str, title: str = "ROC curve", **_) -> str:
  """value: {'fpr': [k], 'tpr': [k], 'auc': []}."""
  fig = _new_figure((5, 5))
  ax = fig.add_subplot()
  ax.plot(value["fpr"], value["tpr"], label=f"AUC {float(value['auc']):.4f}")
  ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="chance")
  ax.set_xlabel("false positive rate")
  ax.set_ylabel("true positive rate")
  ax.set_title(title)
  ax.legend(loc="lower right")
  ax.grid(True, alpha=0.3)
  return _save(fig, path)


def plot_ks_curve(value, path: str, title: str = "KS curve", **_) -> str:
  """value: {'score': [k], 'cum_bad': [k], 'cum_good': [k], 'ks': []}."""
  fig = _new_figure((6, 4.5))
  ax = fig.add_subplot()
  ax.plot(value["score"], value["cum_bad"], label="bads (cumulative)")
  ax.plot(value["score"], value["cum_good"], label="goods (cumulative)")
  gap = np.asarray(value["cum_bad"]) - np.asarray(value["cum_good"])
  i = int(np.argmax(np.abs(gap)))
  ax.vlines(
    value["score"][i],
    value["cum_good"][i],
    value["cum_bad"][i],
    colors="k",
    label=f"KS {float(value['ks']):.4f}",
  )
  ax.set_xlabel("score p(bad)")
  ax.set_ylabel("cumulative share")
  ax.set_title(title)
  ax.legend()
  ax.grid(True, alpha=0.3)
  return _save(fig, path)


def plot_calibration(value, path: str, title: str = "Calibration", **_) -> str:
  """value: {'mean_score': [bins], 'observed_rate': [bins], 'count': [bins]}."""
  fig = _new_figure((5, 5))
  ax = fig.add_subplot()
  used = np.asarray(value["count"]) > 0
  ax.plot(
    np.asarray(value["mean_score"])[used],
    np.asarray(value["observed_rate"])[used],
    "o-",
    label="model",
  )
  ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="perfect calibration")
  ax.set_xlabel("mean predicted p(bad)")
  ax.set_ylabel("observed bad rate")
  ax.set_title(title)
  ax.legend()
  ax.grid(True, alpha=0.3)
  return _save(fig, path)


def plot_score_distribution(value, path: str, title: str = "Score distribution", **_) -> str:
  """value: {'scores': [n], 'labels': [n], optional 'reference': [m] (training scores)}."""
  fig = _new_figure((6, 4.5))
  ax = fig.add_subplot()
  scores, labels = np.asarray(value["scores"]), np.asarray(value["labels"])
  bins = np.linspace(0, 1, 41).tolist()
  ax.hist(scores[labels == 0], bins, alpha=0.5, density=True, label="goods")
  ax.hist(scores[labels == 1], bins, alpha=0.5, density=True, label="bads")
  if "reference" in value:
    ax.hist(
      np.asarray(value["reference"]),
      bins,
      histtype="step",
      density=True,
      color="k",
      label="training (all)",
    )
  ax.set_xlabel("score p(bad)")
  ax.set_ylabel("density")
  ax.set_title(title)
  ax.legend()
  return _save(fig, path)


def plot_feature_importance(value, path: str, title: str = "Feature importance", **_) -> str:
  """value: {'names': [F], 'importance': [F]} (bars sorted by importance)."""
  names, imp = list(value["names"]), np.asarray(value["importance"], np.float64)
  order = np.argsort(imp)
  fig = _new_figure((6, 0.3 * len(names) + 1.5))
  ax = fig.add_subplot()
  ax.barh([names[i] for i in order], imp[order])
  ax.set_xlabel("mean |integrated gradient| (log-odds)")
  ax.set_title(title)
  return _save(fig, path)


def plot_forecasts(value, path: str, title: str = "VaR backtest", **_) -> str:
  """value: {'day': [n], 'target': [n], 'var': [n], 'vol': [n]}: returns, -VaR, exceedances."""
  day, y, var = (np.asarray(value[k]) for k in ("day", "target", "var"))
  fig = _new_figure((9, 4.5))
  ax = fig.add_subplot()
  ax.plot(day, y, lw=0.6, color="0.5", label="return (%)")
  ax.plot(day, -var, color="r", lw=1.0, label="-VaR 99%")
  if "vol" in value:
    ax.plot(day, -np.asarray(value["vol"]), color="b", lw=0.6, alpha=0.6, label="-volatility")
  hits = y < -var
  ax.plot(day[hits], y[hits], "kx", label=f"exceedances ({int(hits.sum())})")
  ax.set_xlabel("day")
  ax.set_ylabel("percent")
  ax.set_title(title)
  ax.legend(fontsize=8)
  return _save(fig, path)


def plot_image_grid(value, path: str, title: str = "Samples", **_) -> str:
  """value: images [n, H, W, C] (uint8, or floats in [0, 1]; C = 1 or 3) as a
  near-square grid with a one-pixel gap, drawn at native resolution x4."""
  images = np.asarray(value)
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f"Image grid needs images [n, H, W, 1 or 3], got shape {images.shape}.")
  if images.dtype != np.uint8:
    images = (np.clip(images.astype(np.float64), 0.0, 1.0) * 255).round().astype(np.uint8)
  n, h, w, c = images.shape
  cols = max(1, math.ceil(math.sqrt(n)))
  rows = max(1, math.ceil(n / cols))
  canvas = np.full((rows * (h + 1) + 1, cols * (w + 1) + 1, c), 255, np.uint8)
  for i in range(n):
    r, q = divmod(i, cols)
    canvas[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + q * (w + 1) : 1 + q * (w + 1) + w] = images[i]
  # Four screen pixels per image pixel, and wide enough for the title.
  width = max(canvas.shape[1] * 4 / 100, 5.0)
  fig = _new_figure((width, width * canvas.shape[0] / canvas.shape[1] + 0.4))
  ax = fig.add_subplot()
  ax.imshow(canvas[..., 0] if c == 1 else canvas, cmap="gray" if c == 1 else None, vmin=0, vmax=255)
  ax.set_axis_off()
  ax.set_title(title, fontsize=9)
  return _save(fig, path)


def _confusion(value, path: str, title: str = "Confusion matrix", class_names=None, **_) -> str:
  names = class_names if class_names is not None and len(class_names) == len(value) else None
  return plot_confusion_matrix(np.asarray(value), names, path, title=title)


ARTIFACT_PLOTS = {
  "confusion_matrix": _confusion,
  "roc_curve": plot_roc_curve,
  "ks_curve": plot_ks_curve,
  "calibration": plot_calibration,
  "score_distribution": plot_score_distribution,
  "feature_importance": plot_feature_importance,
  "forecasts": plot_forecasts,
  "samples": plot_image_grid,
}

# Artifact kinds also drawn at every periodic evaluation, into
# plots/<split>_<kind>_step<N>.png (how generated samples change in training).
PER_EVALUATION_PLOTS = ("samples",)


def plot_eval_artifacts(workdir: str, artifacts, *, experiment: str, step: int) -> list[str]:
  """Draws the artifacts of one periodic evaluation whose kind is in
  PER_EVALUATION_PLOTS into plots/<split>_<kind>_step<step>.png; returns the paths."""
  paths = []
  for key, value in artifacts.items():
    split, _, kind = key.partition("/")
    if kind not in PER_EVALUATION_PLOTS:
      continue
    path = os.path.join(workdir, PLOTS_DIR, f"{split}_{kind}_step{step}.png")
    paths.append(ARTIFACT_PLOTS[kind](value, path, title=f"{experiment} {split} (step {step})"))
  return paths


def plot_artifacts(
  workdir: str, artifacts, *, experiment: str, step: int, class_names=None
) -> list[str]:
  """Draws every artifact '<split>/<kind>' whose kind is in ARTIFACT_PLOTS into
  plots/<split>_<kind>.png; returns the paths. `class_names`: {split: names}."""
  paths = []
  for key, value in artifacts.items():
    split, _, kind = key.partition("/")
    fn = ARTIFACT_PLOTS.get(kind)
    if fn is None:
      continue
    path = os.path.join(workdir, PLOTS_DIR, f"{split}_{kind}.png")
    paths.append(
      fn(
        value,
        path,
        title=f"{experiment} {split} (step {step})",
        class_names=(class_names or {}).get(split),
      )
    )
  return paths
