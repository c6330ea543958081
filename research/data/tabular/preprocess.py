"""Preprocessing of a table, fitted on the training split only.

Per numeric column: the training median fills missing values, a 0/1
missing-value indicator is added for columns that had missing values in
training, then either standardisation (training mean / std) or a quantile
transform (training quantiles -> standard normal scores). Per categorical
column: a vocabulary of the training values seen at least `min_count` times;
index 0 is the unknown bucket (unseen or missing values).

Method 'woe' (the scorecard's features) instead replaces every feature,
numeric and categorical, by the weight of evidence of its optimal bin
(optbinning `OptimalBinning`, fitted on the training split with the target):
the encoded 'numeric' array then holds one WoE column per feature and
'categorical' is empty. Bins are stored as numeric split points or category
lists with their WoE (missing and unseen values: their own WoE as optbinning
computes it).

Everything fitted is plain numbers, saved as JSON (`to_json` / `from_json`), so
evaluation and `tools.score` apply exactly the transform the model trained on.

Encoded examples: {'numeric': float32 [F_num], 'categorical': int32 [F_cat],
'label': int32 [], and 'group': int32 [] (sensitive group, -1 = unknown) when
the schema declares a sensitive attribute}.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import stats

from research.core import lazy
from research.data.core import ArraySource
from research.data.tabular.schema import SchemaError, TableSchema, category_string, category_strings

with lazy.imports():
  import pandas as pd

PREPROCESSING_FILE = "preprocessing.json"
NUMERIC_METHODS = ("standardize", "quantile", "woe")
_QUANTILES = 201  # grid of the quantile transform


def check_options(options: Mapping[str, Any]) -> None:
  """Validates `config.data.tabular` (numeric=..., min_count=...)."""
  unknown = sorted(set(options) - {"numeric", "min_count"})
  if unknown:
    raise ValueError(
      f"config.data.tabular has unknown key(s) {unknown}; valid: ['min_count', 'numeric']."
    )
  method = options.get("numeric", "standardize")
  if method not in NUMERIC_METHODS:
    raise ValueError(f"config.data.tabular.numeric={method!r}; valid: {list(NUMERIC_METHODS)}.")


class Preprocessor:
  """Fitted transform from a raw table to model arrays. Build with `fit`."""

  def __init__(self, schema: TableSchema, state: Mapping[str, Any]):
    self.schema = schema
    self.state = dict(state)
    # Keys through the same normaliser as the rows: a workdir fitted before
    # integer codes were normalised (vocabulary '2.0') still matches a '2'.
    self._index = [
      {category_string(v): i + 1 for i, v in reversed(list(enumerate(vocab)))}
      for vocab in state["vocab"]
    ]

  # --- fitting ---------------------------------------------------------------
  @classmethod
  def fit(
    cls,
    frame: pd.DataFrame,
    schema: TableSchema,
    *,
    numeric: str = "standardize",
    min_count: int = 1,
  ) -> Preprocessor:
    """Fits every parameter on `frame` (the training split only)."""
    check_options(dict(numeric=numeric))
    schema.check_frame(frame, where="training split")
    if len(frame) == 0:
      raise ValueError("Cannot fit preprocessing on an empty training split.")
    if numeric == "woe":
      return cls(
        schema,
        dict(
          numeric_method="woe",
          min_count=int(min_count),
          woe=_fit_woe(frame, schema),
          indicators=[],
          vocab=[],
          group_names=schema.groups(frame)[1] if schema.sensitive else [],
        ),
      )
    medians, means, stds, quantiles, indicators = [], [], [], [], []
    for col in schema.numeric:
      x = pd.to_numeric(frame[col], errors="coerce").to_numpy(np.float64)
      missing = np.isnan(x)
      median = float(np.nanmedian(x)) if (~missing).any() else 0.0
      filled = np.where(missing, median, x)
      medians.append(median)
      means.append(float(filled.mean()))
      std = float(filled.std())
      stds.append(std if std > 0 else 1.0)  # a constant column maps to 0, not NaN
      quantiles.append(np.quantile(filled, np.linspace(0, 1, _QUANTILES)).tolist())
      if missing.any():
        indicators.append(col)
    vocab = []
    for col in schema.categorical:
      counts = pd.Series([v for v in category_strings(frame[col]) if v is not None]).value_counts()
      vocab.append(sorted(counts[counts >= min_count].index.tolist()))
    group_names = schema.groups(frame)[1] if schema.sensitive else []
    state = dict(
      group_names=group_names,
      numeric_method=numeric,
      min_count=int(min_count),
      median=medians,
      mean=means,
      std=stds,
      quantiles=quantiles,
      indicators=indicators,
      vocab=vocab,
    )
    return cls(schema, state)

  # --- what the model sees ------------------------------------------------------
  @property
  def cardinalities(self) -> tuple[int, ...]:
    """Embedding table size per categorical column (vocabulary + unknown bucket)."""
    return tuple(len(v) + 1 for v in self.state["vocab"])

  @property
  def numeric_names(self) -> list[str]:
    if self.state["numeric_method"] == "woe":
      return [f"{c}_woe" for c in self.schema.features]
    return list(self.schema.numeric) + [f"{c}_missing" for c in self.state["indicators"]]

  @property
  def feature_names(self) -> list[str]:
    """Names of the model's inputs: numeric (+ indicators), then categorical."""
    if self.state["numeric_method"] == "woe":
      return self.numeric_names
    return self.numeric_names + list(self.schema.categorical)

  def transform(
    self, frame: pd.DataFrame, *, with_label: bool = True, where: str = "table", row_offset: int = 0
  ) -> dict[str, np.ndarray]:
    """{'numeric': float32 [n, F_num], 'categorical': int32 [n, F_cat],
    'label': int32 [n] (with_label), 'group': int32 [n] (sensitive declared)}.

    Raises SchemaError naming the column and row of a value that does not fit.
    """
    self.schema.check_frame(frame, require_target=with_label, where=where, row_offset=row_offset)
    s, n = self.state, len(frame)
    cols = []
    if s["numeric_method"] == "woe":
      cols = [_apply_woe(frame[col], s["woe"][col]) for col in self.schema.features]
    for j, col in enumerate(self.schema.numeric if s["numeric_method"] != "woe" else ()):
      x = pd.to_numeric(frame[col], errors="coerce").to_numpy(np.float64)
      x = np.where(np.isnan(x), s["median"][j], x)
      if s["numeric_method"] == "standardize":
        z = (x - s["mean"][j]) / s["std"][j]
      else:
        grid = np.asarray(s["quantiles"][j])
        # Average of the left and right interpolation handles repeated
        # quantiles (mass points such as 0 debt) symmetrically.
        levels = np.linspace(0, 1, len(grid))
        u = 0.5 * (np.interp(x, grid, levels) + np.interp(-x, -grid[::-1], levels[::-1]))
        z = stats.norm.ppf(np.clip(u, 1e-3, 1 - 1e-3))
      cols.append(z)
    for col in s["indicators"]:
      cols.append(pd.to_numeric(frame[col], errors="coerce").isna().to_numpy(np.float64))
    numeric = (np.stack(cols, axis=1) if cols else np.zeros((n, 0))).astype(np.float32)
    cats = [
      np.asarray([index.get(v, 0) for v in category_strings(frame[col])], np.int32)
      for col, index in zip(self.schema.categorical, self._index)
    ]
    categorical = np.stack(cats, axis=1) if cats else np.zeros((n, 0), np.int32)
    out = {"numeric": numeric, "categorical": categorical}
    if with_label:
      out["label"] = self.schema.labels(frame)
    if self.schema.sensitive:
      out["group"] = self.schema.groups(frame, self.state["group_names"])[0]
    return out

  def row_flags(self, frame: pd.DataFrame) -> dict[str, list[list[str]]]:
    """Per row, which feature columns the transform had to fill in or could not place.

    {'imputed_columns': [[column, ...] per row]: the value was missing and was
    filled (numeric: the training median or the missing-value bin;
    categorical: the unknown bucket or missing bin),
    'unknown_categories': [[column, ...] per row]: a categorical value not in
    the training vocabulary (unseen, or rarer than min_count), encoded as
    unknown}. Columns in schema order.
    """
    n, woe = len(frame), self.state["numeric_method"] == "woe"
    imputed: list[list[str]] = [[] for _ in range(n)]
    unknown: list[list[str]] = [[] for _ in range(n)]
    for col in self.schema.features:
      if col in self.schema.numeric:
        missing = pd.to_numeric(frame[col], errors="coerce").isna().to_numpy()
        for row in np.flatnonzero(missing):
          imputed[row].append(col)
        continue
      known = (
        {category_string(v) for v in self.state["woe"][col]["woe"]}
        if woe
        else self._index[self.schema.categorical.index(col)]
      )
      for i, v in enumerate(category_strings(frame[col])):
        if v is None:
          imputed[i].append(col)
        elif v not in known:
          unknown[i].append(col)
    return {"imputed_columns": imputed, "unknown_categories": unknown}

  def encode_source(self, raw) -> ArraySource:
    """An `ArraySource` of encoded examples from a raw `TableSource` split."""
    arrays = self.transform(raw.frame, where=getattr(raw, "name", "table"))
    source = ArraySource(arrays, num_classes={"label": 2}, name=f"encoded:{raw.name}")
    source.class_names = ["0", f"{self.schema.positive}"]
    source.feature_names = self.feature_names
    if self.schema.sensitive:
      source.group_names = list(self.state["group_names"])
    return source

  # --- persistence ---------------------------------------------------------------
  def to_json(self) -> str:
    return json.dumps(dict(schema=self.schema.to_dict(), state=self.state), indent=1)

  @classmethod
  def from_json(cls, text: str) -> Preprocessor:
    d = json.loads(text)
    return cls(TableSchema.from_dict(d["schema"]), d["state"])

  def save(self, path: str) -> None:
    from research.outputs import writer

    writer.atomic_write(path, self.to_json())

  @classmethod
  def load(cls, path: str) -> Preprocessor:
    with open(path) as f:
      return cls.from_json(f.read())


def _fit_woe(frame: pd.DataFrame, schema: TableSchema) -> dict[str, dict]:
  """Per feature: optbinning's optimal bins and their weight of evidence, as JSON."""
  from optbinning import OptimalBinning

  y = schema.labels(frame)
  out: dict[str, dict] = {}
  for col in schema.features:
    if col in schema.numeric:
      x = pd.to_numeric(frame[col], errors="coerce").to_numpy(np.float64)
      ob = OptimalBinning(name=col, dtype="numerical").fit(x, y)
      splits = [float(v) for v in ob.splits]
      edges = [-np.inf] + splits + [np.inf]
      # One representative value per bin (bins are [s_i, s_{i+1})).
      reps = [(splits[0] - 1.0) if splits else 0.0] + [
        (a + b) / 2 if np.isfinite(b) else a + 1.0 for a, b in itertools.pairwise(edges[1:])
      ]
      bin_woe = [float(v) for v in ob.transform(np.asarray(reps), metric="woe")]
      missing = float(
        ob.transform(np.asarray([np.nan]), metric="woe", metric_missing="empirical")[0]
      )
      out[col] = dict(kind="numeric", splits=splits, woe=bin_woe, missing=missing)
    else:
      x = np.asarray(category_strings(frame[col]), dtype=object)
      x = np.where(pd.isna(x), np.nan, x)
      ob = OptimalBinning(name=col, dtype="categorical").fit(x, y)
      seen = sorted({v for v in x if isinstance(v, str)})
      category_woe = dict(
        zip(seen, (float(v) for v in ob.transform(np.asarray(seen, dtype=object), metric="woe")))
      )
      missing = float(
        ob.transform(np.asarray([np.nan], dtype=object), metric="woe", metric_missing="empirical")[
          0
        ]
      )
      out[col] = dict(kind="categorical", woe=category_woe, missing=missing)
  return out


def _apply_woe(values: pd.Series, fitted: Mapping[str, Any]) -> np.ndarray:
  """float64 [n]: the WoE of each value's bin (missing / unseen: the missing WoE)."""
  if fitted["kind"] == "numeric":
    x = pd.to_numeric(values, errors="coerce").to_numpy(np.float64)
    out = np.asarray(fitted["woe"])[np.searchsorted(np.asarray(fitted["splits"]), x, side="right")]
    return np.where(np.isnan(x), fitted["missing"], out)
  woe = {category_string(k): v for k, v in fitted["woe"].items()}  # as the rows are normalised
  return np.asarray(
    [
      woe.get(v, fitted["missing"]) if v is not None else fitted["missing"]
      for v in category_strings(values)
    ],
    np.float64,
  )


__all__ = ["PREPROCESSING_FILE", "Preprocessor", "SchemaError", "check_options"]
