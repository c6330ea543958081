"""The declared schema of a table: which column is the target, which are numeric,
categorical, the date and the sensitive attribute.

A schema is declared in the config (`config.data.options.schema`, a dict) or
comes with an embedded data set. `check_frame` validates a table against it and
names the first offending column and row, so a malformed file is refused with a
message that says what to fix rather than being silently coerced.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from research.core import lazy

with lazy.imports():
  import pandas as pd


class SchemaError(ValueError):
  """A table does not match its declared schema (message names the column and row)."""


def category_string(value: Any) -> str | None:
  """One categorical cell as its category string (None = missing).

  The one normaliser of categories, used when preprocessing is fitted and
  whenever rows are encoded (training, evaluation, `tools.score`), so a
  category is the same whatever pandas made of its column: an integer code is
  one category whether it arrives as `2`, `2.0` (the column holds an empty
  cell, so pandas read it as floats) or the text `"2"` / `"2.0"`. Numbers
  written as text are read as numbers ('02' is the code 2, as pandas reads an
  integer column); other text is kept as it is.
  """
  if value is None or value is pd.NA or value is pd.NaT:
    return None
  if isinstance(value, (bool, np.bool_)):
    return str(bool(value))
  if isinstance(value, numbers.Real):
    number = float(value)
    if math.isnan(number):
      return None
    return _number_string(number) if math.isfinite(number) else str(value)
  text = str(value)
  if not text.strip():
    return None  # an empty cell read as text
  try:
    number = float(text)
  except ValueError:
    return text
  return _number_string(number) if math.isfinite(number) else text


def _number_string(number: float) -> str:
  # Integral values without a decimal point ('2', not '2.0'), others in the
  # shortest form that round-trips ('2.5').
  return str(int(number)) if number.is_integer() else repr(number)


def category_strings(values) -> list[str | None]:
  """`category_string` of every cell of a column (a Series or any sequence)."""
  values = values.tolist() if hasattr(values, "tolist") else list(values)
  return [category_string(v) for v in values]


@dataclasses.dataclass(frozen=True)
class TableSchema:
  """Columns of a credit-style table.

  Attributes:
    target: the label column.
    positive: the target value that means class 1 (the event to predict, e.g.
      'bad' = default); every other value is class 0.
    numeric: numeric feature columns (missing values allowed).
    categorical: categorical feature columns (read as strings; missing allowed).
    date: optional date column (out-of-time splits).
    sensitive: optional sensitive attribute for fairness metrics (a column
      that may or may not also be a feature).
    sensitive_bins: edges that band a numeric sensitive attribute into groups
      (e.g. (30,) for age < 30 / age >= 30); empty = the column's own values.
  """

  target: str
  positive: Any
  numeric: tuple[str, ...] = ()
  categorical: tuple[str, ...] = ()
  date: str | None = None
  sensitive: str | None = None
  sensitive_bins: tuple[float, ...] = ()

  def __post_init__(self):
    features = list(self.numeric) + list(self.categorical)
    if not features:
      raise SchemaError(
        "schema declares no numeric or categorical feature columns; list them "
        "in schema['numeric'] / schema['categorical']."
      )
    dup = sorted({c for c in features if features.count(c) > 1})
    if dup:
      raise SchemaError(
        f"schema lists column(s) {dup} more than once (numeric and categorical must be disjoint)."
      )
    if self.target in features:
      raise SchemaError(f"schema target {self.target!r} is also listed as a feature.")

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> TableSchema:
    """From a config dict; unknown keys are an error listing the valid ones."""
    if isinstance(d, TableSchema):
      return d
    d = dict(d)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - fields)
    if unknown:
      raise SchemaError(f"schema has unknown key(s) {unknown}; valid keys: {sorted(fields)}.")
    for key in ("target", "positive"):
      if key not in d:
        raise SchemaError(
          f"schema needs {key!r} (e.g. dict(target='Status', positive='bad', "
          "numeric=(...), categorical=(...)))."
        )
    for key in ("numeric", "categorical", "sensitive_bins"):
      d[key] = tuple(d.get(key) or ())
    return cls(**d)

  def to_dict(self) -> dict:
    d = dataclasses.asdict(self)
    if isinstance(d["positive"], np.generic):
      d["positive"] = d["positive"].item()
    return d

  @property
  def features(self) -> tuple[str, ...]:
    return tuple(self.numeric) + tuple(self.categorical)

  def labels(self, frame: pd.DataFrame) -> np.ndarray:
    """int32 [n]: 1 where the target equals `positive` (compared as strings, so
    a CSV's '1' matches a declared 1)."""
    return (frame[self.target].astype(str) == str(self.positive)).to_numpy(np.int32)

  def groups(
    self, frame: pd.DataFrame, names: Sequence[str] | None = None
  ) -> tuple[np.ndarray, list[str]]:
    """(int32 [n] group ids, group names) of the sensitive attribute; missing or
    (with `names` given, e.g. fitted on training) unseen values -> -1."""
    if not self.sensitive:
      raise SchemaError("schema declares no sensitive attribute.")
    col = frame[self.sensitive]
    if self.sensitive_bins:
      values = pd.to_numeric(col, errors="coerce").to_numpy(np.float64)
      edges = [float(e) for e in self.sensitive_bins]
      ids = np.searchsorted(edges, values, side="right").astype(np.int32)
      ids[np.isnan(values)] = -1
      bounds = ["-inf"] + [f"{e:g}" for e in edges] + ["inf"]
      names = [f"[{bounds[i]}, {bounds[i + 1]})" for i in range(len(edges) + 1)]
      return ids, names
    text = category_strings(col)  # the categories' own normaliser: 2, 2.0 and '2' are one group
    names = list(names) if names is not None else sorted({v for v in text if v is not None})
    index = {n: i for i, n in enumerate(names)}
    ids = np.asarray([index.get(v, -1) if v is not None else -1 for v in text], np.int32)
    return ids, names

  def check_frame(
    self,
    frame: pd.DataFrame,
    *,
    require_target: bool = True,
    where: str = "table",
    row_offset: int = 0,
  ) -> None:
    """Raises SchemaError naming the first missing column or non-numeric value.

    Args:
      frame: the table.
      require_target: whether the target column must be present (not when scoring).
      where: the table's name in messages (e.g. a file path).
      row_offset: when > 0, messages also give the file line `row + row_offset`
        (2 for a CSV: header line plus 1-based counting). Rows are 0-based.
    """
    needed = list(self.features) + ([self.target] if require_target else [])
    missing = [c for c in needed if c not in frame.columns]
    if missing:
      raise SchemaError(
        f"{where}: missing column(s) {missing} declared in the schema; the "
        f"table has columns {list(frame.columns)}."
      )
    for col in self.numeric:
      values = frame[col]
      if pd.api.types.is_bool_dtype(values):
        raise SchemaError(f"{where}: column {col!r} is boolean, the schema declares it numeric.")
      if pd.api.types.is_numeric_dtype(values):
        continue
      coerced = pd.to_numeric(values, errors="coerce")
      bad = coerced.isna() & values.notna() & (values.astype(str).str.strip() != "")
      if bad.any():
        pos = int(np.argmax(bad.to_numpy()))
        line = f" (line {pos + row_offset} of the file)" if row_offset else ""
        raise SchemaError(
          f"{where}: column {col!r} row {pos}{line} has value "
          f"{values.iloc[pos]!r}, which is not a number (the schema declares "
          f"{col!r} numeric); fix the value or leave it empty for missing."
        )
