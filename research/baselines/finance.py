"""Finance-risk baselines, scored in the same run on the same split as the model.

Credit scoring (format 'tabular' data sets; raw rows from `ctx.data.raw`):

* 'scorecard': the classic scorecard. Weight-of-evidence binning of every
  feature with optbinning's `BinningProcess` (optimal binning, fitted on the
  training split only), scikit-learn `LogisticRegression` on the WoE
  features, and the points table scaled with points-to-double-the-odds
  (PDO) written to `<output_dir>/points_table.csv`.
* 'lightgbm': gradient-boosted trees (LightGBM, native missing values and
  categorical columns), early-stopped on the validation split. LightGBM rather
  than scikit-learn's HistGradientBoosting because it is what credit teams
  benchmark against and is already a declared dependency (pyproject.toml).
* 'logreg_sklearn': scikit-learn logistic regression on the run's own fitted
  preprocessing (one-hot categoricals): the textbook reference for the
  in-loop 'logreg' variant.

All three report the metrics of `research.metrics.credit.credit_report` under
the names the 'credit' evaluator uses, so they line up in the report table.

Market risk (the 'eu_stock_markets' windows; `.returns` and `.days`):

* 'historical_simulation': VaR = minus the empirical 1% quantile of the
  previous `lookback` daily returns; volatility = their standard deviation.
* 'garch': GARCH(1,1) with a constant mean and Student-t errors (`arch`),
  fitted on every return before the split's first day, then filtered forward
  with fixed parameters: each day's forecast uses returns up to the day before.

Both report `research.metrics.market.backtest` under the 'market_risk'
evaluator's names and save their forecasts to `<output_dir>/forecasts.npz`.

optbinning, lightgbm, arch and scikit-learn are imported inside the functions
that use them (pandas lazily), so importing `research.baselines`, which every
training run does, loads none of them.
"""

from __future__ import annotations

import inspect
import logging
import os
from typing import TYPE_CHECKING, Literal

import numpy as np

from research.baselines.base import BaselineContext, register
from research.core import lazy
from research.metrics import credit, market

with lazy.imports():
  import pandas as pd

if TYPE_CHECKING:
  import lightgbm

log = logging.getLogger(__name__)

# The innovation distributions `arch.arch_model(dist=...)` accepts.
GarchDist = Literal[
  "normal", "gaussian", "t", "studentst", "skewstudent", "skewt", "ged", "generalized error"
]

_HEADLINE = (
  "roc_auc",
  "gini",
  "ks",
  "brier",
  "log_loss",
  "ece",
  "psi",
  "accuracy",
  "dp_difference",
  "eo_difference",
  "di_ratio",
)


def _tables(ctx: BaselineContext):
  """(train TableSource, eval TableSource) of a tabular run."""
  if ctx.config.data.format != "tabular":
    raise ValueError(
      f"Credit baselines need config.data.format='tabular', got {ctx.config.data.format!r}."
    )
  return ctx.data.raw(ctx.config.data.train_split), ctx.data.raw(ctx.split)


def _score(ctx, train, evaluated, p_train, p_eval, cutoff) -> dict[str, float]:
  groups = None
  if evaluated.schema.sensitive:
    groups = ctx.data.preprocessor.transform(evaluated.frame)["group"]
  scalars, _ = credit.credit_report(
    evaluated.schema.labels(evaluated.frame),
    p_eval,
    reference_scores=p_train,
    cutoff=cutoff,
    groups=groups,
  )
  return {k: v for k, v in scalars.items() if k in _HEADLINE}


@register("scorecard")
def scorecard(
  ctx: BaselineContext,
  *,
  pdo: float = 20.0,
  odds: float = 50.0,
  points: float = 600.0,
  cutoff: float = 0.5,
  max_n_bins: int = 6,
  C: float = 1.0,
) -> dict[str, float]:
  """WoE binning + logistic regression + PDO points table (see module docstring)."""
  from optbinning import BinningProcess, Scorecard
  from sklearn.linear_model import LogisticRegression

  train, evaluated = _tables(ctx)
  schema = train.schema

  def features(frame):
    x = frame[list(schema.features)].copy()
    for col in schema.numeric:
      x[col] = pd.to_numeric(x[col], errors="coerce")
    for col in schema.categorical:
      x[col] = x[col].astype("string").astype(object).where(x[col].notna(), np.nan)
    return x

  binning = BinningProcess(
    list(schema.features), categorical_variables=list(schema.categorical), max_n_bins=max_n_bins
  )
  card = Scorecard(
    binning_process=binning,
    estimator=LogisticRegression(C=C, max_iter=1000),
    scaling_method="pdo_odds",
    scaling_method_params={"pdo": pdo, "odds": odds, "scorecard_points": points},
  )
  y_train = schema.labels(train.frame)
  card.fit(features(train.frame), y_train)
  out = ctx.makedirs()
  table = card.table(style="detailed")
  table.to_csv(os.path.join(out, "points_table.csv"), index=False)
  p_train = card.predict_proba(features(train.frame))[:, 1]
  p_eval = card.predict_proba(features(evaluated.frame))[:, 1]
  scores = card.score(features(evaluated.frame))
  pd.DataFrame({"points": scores, "p_bad": p_eval, "label": schema.labels(evaluated.frame)}).to_csv(
    os.path.join(out, f"{ctx.split}_scores.csv"), index=False
  )
  with open(os.path.join(out, "scaling.txt"), "w") as f:
    f.write(
      f"PDO scaling: {points:g} points at good:bad odds {odds:g}:1, {pdo:g} points to "
      f"double the odds. Higher points = lower risk.\n"
    )
  return _score(ctx, train, evaluated, p_train, p_eval, cutoff)


def _lgb_frame(frame, schema, categories=None):
  x = frame[list(schema.features)].copy()
  for col in schema.numeric:
    x[col] = pd.to_numeric(x[col], errors="coerce")
  cats = {}
  for col in schema.categorical:
    values = x[col].astype("string")
    known = categories[col] if categories else sorted(values.dropna().unique().tolist())
    x[col] = pd.Categorical(values, categories=known)  # unseen values become missing
    cats[col] = known
  return x, cats


def default_threads() -> int:
  """LightGBM's thread count when the config does not set `n_jobs`.

  LightGBM (OpenMP) otherwise starts one thread per logical CPU of the
  machine, ignoring the CPUs this process may use, and its docs advise the
  number of real cores, not hyper-threads. On a shared 2-core machine two
  threads made the credit baseline take 533 s where one thread takes 33 s
  with the identical result. So: the CPUs this process may use
  (`os.sched_getaffinity`), halved for hyper-threads, 1 on <= 2 of them, and
  at most 8 (the credit tables have at most ~10k rows; more threads only add
  synchronisation).
  """
  try:
    cpus = len(os.sched_getaffinity(0))
  except AttributeError:  # macOS, Windows
    cpus = os.cpu_count() or 1
  return 1 if cpus <= 2 else min(cpus // 2, 8)


def _lgb_p1(model: lightgbm.LGBMClassifier, x: pd.DataFrame) -> np.ndarray:
  """P(y=1) per row `[n]` from a fitted LGBMClassifier.

  `predict_proba` is typed to also return a list of sparse matrices (only for
  `pred_contrib=True` on sparse input); on a data frame it is `[n, 2]` dense.
  """
  return np.asarray(model.predict_proba(x))[:, 1]


def _fit_kwargs(fit, x_val, y_val) -> dict:
  """The validation set the way this LightGBM version wants it: `eval_X`/`eval_y`
  since 4.7 (where `eval_set` warns that it is deprecated), else `eval_set`."""
  if "eval_X" in inspect.signature(fit).parameters:
    return dict(eval_X=(x_val,), eval_y=(y_val,))
  return dict(eval_set=[(x_val, y_val)])


@register("lightgbm")
def lightgbm_baseline(
  ctx: BaselineContext,
  *,
  num_leaves=(4, 8, 16),
  learning_rate: float = 0.03,
  n_estimators: int = 3000,
  min_child_samples: int = 20,
  subsample: float = 0.8,
  colsample_bytree: float = 0.7,
  reg_lambda: float = 1.0,
  early_stopping_rounds: int = 200,
  cutoff: float = 0.5,
  seed: int | None = None,
  n_jobs: int | None = None,
) -> dict[str, float]:
  """LightGBM classifier: early-stopped on the validation split's AUC, and
  `num_leaves` (an int or a tuple to choose from) chosen by the same
  validation AUC, so the test split is never used to tune the baseline.
  `n_jobs`: LightGBM threads; None = `default_threads()`."""
  import lightgbm as lgb
  from sklearn.metrics import roc_auc_score

  train, evaluated = _tables(ctx)
  schema = train.schema
  validation = ctx.data.raw("validation")
  x_train, cats = _lgb_frame(train.frame, schema)
  x_val, _ = _lgb_frame(validation.frame, schema, cats)
  x_eval, _ = _lgb_frame(evaluated.frame, schema, cats)
  y_train, y_val = schema.labels(train.frame), schema.labels(validation.frame)
  best = None
  for leaves in num_leaves if isinstance(num_leaves, (tuple, list)) else (num_leaves,):
    model = lgb.LGBMClassifier(
      num_leaves=int(leaves),
      learning_rate=learning_rate,
      n_estimators=n_estimators,
      min_child_samples=min_child_samples,
      subsample=subsample,
      subsample_freq=1,
      colsample_bytree=colsample_bytree,
      reg_lambda=reg_lambda,
      n_jobs=default_threads() if n_jobs is None else int(n_jobs),
      verbose=-1,
      random_state=ctx.config.seed if seed is None else seed,
    )
    model.fit(
      x_train,
      y_train,
      **_fit_kwargs(model.fit, x_val, y_val),
      eval_metric="auc",
      callbacks=[lgb.early_stopping(early_stopping_rounds, verbose=False)],
    )
    val_auc = roc_auc_score(y_val, _lgb_p1(model, x_val))
    if best is None or val_auc > best[0]:
      best = (val_auc, int(leaves), model)
  if best is None:
    raise ValueError("lightgbm: num_leaves is empty; give an int or a tuple of ints.")
  val_auc, leaves, model = best
  p_train = _lgb_p1(model, x_train)
  p_eval = _lgb_p1(model, x_eval)
  out = ctx.makedirs()
  importance = pd.DataFrame(
    {"feature": list(schema.features), "gain": model.booster_.feature_importance("gain")}
  )
  importance.sort_values("gain", ascending=False).to_csv(
    os.path.join(out, "feature_importance.csv"), index=False
  )
  with open(os.path.join(out, "selection.txt"), "w") as f:
    f.write(
      f"num_leaves={leaves} (validation AUC {val_auc:.4f}), best_iteration="
      f"{model.best_iteration_ or n_estimators}\n"
    )
  return _score(ctx, train, evaluated, p_train, p_eval, cutoff)


@register("logreg_sklearn")
def logreg_sklearn(
  ctx: BaselineContext, *, C: float = 1.0, cutoff: float = 0.5
) -> dict[str, float]:
  """scikit-learn LogisticRegression on the run's preprocessing (categoricals one-hot)."""
  from sklearn.linear_model import LogisticRegression

  train, evaluated = _tables(ctx)
  pp = ctx.data.preprocessor

  def design(frame):
    enc = pp.transform(frame)
    onehot = [np.eye(n)[enc["categorical"][:, j]] for j, n in enumerate(pp.cardinalities)]
    return np.concatenate([enc["numeric"]] + onehot, axis=1)

  model = LogisticRegression(C=C, max_iter=2000)
  model.fit(design(train.frame), train.schema.labels(train.frame))
  return _score(
    ctx,
    train,
    evaluated,
    model.predict_proba(design(train.frame))[:, 1],
    model.predict_proba(design(evaluated.frame))[:, 1],
    cutoff,
  )


# --- market risk -------------------------------------------------------------------


def _series(ctx: BaselineContext):
  source = ctx.data.raw(ctx.split)
  if not hasattr(source, "returns") or not hasattr(source, "days"):
    raise ValueError(
      f"Market-risk baselines need a price-window data set (e.g. "
      f"'eu_stock_markets'); {ctx.config.data.name!r} has no .returns/.days."
    )
  days = np.asarray(source.days)
  if np.any(np.diff(days) != 1):
    raise ValueError("Market-risk baselines need the split's days to be contiguous.")
  return np.asarray(source.returns, np.float64), days


def _finish(ctx, returns, days, mean, vol, var, level) -> dict[str, float]:
  out = ctx.makedirs()
  np.savez(
    os.path.join(out, "forecasts.npz"), day=days, target=returns[days], mean=mean, vol=vol, var=var
  )
  return market.backtest(returns[days], var, vol=vol, mean=mean, level=level)


@register("historical_simulation")
def historical_simulation(
  ctx: BaselineContext, *, lookback: int = 250, level: float = 0.99
) -> dict[str, float]:
  """Rolling-window empirical quantile of the previous `lookback` returns."""
  returns, days = _series(ctx)
  if days[0] < lookback:
    raise ValueError(
      f"historical_simulation: the first forecast day {days[0]} has fewer than "
      f"lookback={lookback} past returns; lower lookback."
    )
  windows = np.stack([returns[t - lookback : t] for t in days])  # strictly before day t
  var = -np.quantile(windows, 1 - level, axis=1)
  return _finish(ctx, returns, days, windows.mean(axis=1), windows.std(axis=1), var, level)


@register("garch")
def garch(ctx: BaselineContext, *, dist: GarchDist = "t", level: float = 0.99) -> dict[str, float]:
  """GARCH(1,1), constant mean, fitted before the split and filtered forward."""
  from arch import arch_model

  returns, days = _series(ctx)
  first, last = int(days[0]), int(days[-1])
  model = arch_model(returns[: last + 1], mean="Constant", vol="GARCH", p=1, q=1, dist=dist)
  fit = model.fit(last_obs=first, disp="off")  # estimation uses days < first only
  forecast = fit.forecast(horizon=1, start=first - 1, reindex=False)
  # Row i is the forecast made at day first - 1 + i for day first + i.
  mean = forecast.mean.to_numpy()[: len(days), 0]
  vol = np.sqrt(forecast.variance.to_numpy()[: len(days), 0])
  dist_params = fit.params[model.distribution.parameter_names()].to_numpy()
  z = float(model.distribution.ppf(1 - level, dist_params))
  var = -(mean + vol * z)
  return _finish(ctx, returns, days, mean, vol, var, level)
