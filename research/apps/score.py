"""Scoring new rows with a trained tabular run: its saved preprocessing and checkpoint.

`score_frame(workdir, frame)` validates `frame` against the run's schema
(every feature column present, numeric columns numeric; a clear SchemaError
names the column and row otherwise), encodes it with the run's own
`preprocessing.json` (never refitted), restores the best checkpoint (by the
run's `ckpt.best_metric`, else the latest) and returns one row per input row,
in input order: p(positive class), the decision at the cut-off, the
input's identifier columns, and per-row flags naming the columns the
preprocessing filled in (`imputed_columns`) or did not know
(`unknown_categories`). Rows are never dropped: a value that cannot be scored
is an error, not a skipped row.

A row's score depends on that row only: the file is read with the schema's
types (categoricals as text) and categories go through the same normaliser as
in training, so an integer code is the same category whether its column also
holds empty cells or `2.0`-style values.
"""

from __future__ import annotations

import os

import jax
import numpy as np

from research.core import lazy
from research.data import build as data_build
from research.data.tabular import preprocess as tab_pp
from research.data.tabular.sources import read_table
from research.metrics import credit
from research.models import build_model
from research.train import builder
from research.train import evaluate as evaluate_lib

with lazy.imports():
  import pandas as pd


class ScoringModel:
  """A trained tabular run, ready to score: schema, preprocessing, model, params."""

  def __init__(self, workdir: str, checkpoint: str = "best"):
    self.workdir = workdir
    self.config = evaluate_lib.load_workdir_config(workdir)
    if self.config.data.format != "tabular":
      raise ValueError(
        f"{workdir}: not a tabular run (config.data.format="
        f"{self.config.data.format!r}); tools.score scores table rows."
      )
    if not os.path.exists(os.path.join(workdir, tab_pp.PREPROCESSING_FILE)):
      raise FileNotFoundError(
        f"{workdir} has no {tab_pp.PREPROCESSING_FILE}; train it with tools.train first."
      )
    # The run's saved preprocessing (never refitted) and the model fields it
    # decides, through the same path as training.
    data = data_build.DataBuilder(self.config, workdir)
    self.preprocessor = data.preprocessor
    kwargs = self.config.model.to_dict()
    builder.fill_model_fields(kwargs, data)
    self.model = build_model(kwargs.pop("name"), **kwargs)
    self.step, self.variables = evaluate_lib.restore_variables(workdir, self.config, checkpoint)
    self.cutoff = float(
      next((e.get("cutoff", 0.5) for e in self.config.evals.values() if e.type == "credit"), 0.5)
    )
    self._apply = jax.jit(lambda v, x: self.model.apply(v, x, train=False))

  def score(
    self, frame: pd.DataFrame, *, where: str = "input", row_offset: int = 0, batch_size: int = 4096
  ) -> np.ndarray:
    """float64 [len(frame)]: p(positive) for every row, in order."""
    encoded = self.preprocessor.transform(
      frame, with_label=False, where=where, row_offset=row_offset
    )
    keys = self.config.task.get("input_keys", ("numeric", "categorical"))
    out = []
    for start in range(0, len(frame), batch_size):
      x = {k: encoded[k][start : start + batch_size] for k in keys}
      out.append(credit.probabilities_from_logits(np.asarray(self._apply(self.variables, x))))
    scores = np.concatenate(out) if out else np.zeros((0,))
    if len(scores) != len(frame):  # never silently lose a row
      raise RuntimeError(f"Scored {len(scores)} rows of {len(frame)}.")
    return scores


def score_csv(
  workdir: str, input_path: str, output_path: str, *, checkpoint: str = "best", keep_columns=()
) -> pd.DataFrame:
  """Scores `input_path` (CSV or Parquet) into `output_path` (CSV); returns the scores.

  Output columns: row (0-based position in the input), the `keep_columns`,
  p_<positive>, decision ('decline' at p >= the run's cut-off, else 'approve'),
  unknown_categories and imputed_columns (';'-joined column names, empty
  when none; see `Preprocessor.row_flags`).
  """
  scorer = ScoringModel(workdir, checkpoint)
  frame = read_table(input_path, scorer.preprocessor.schema)
  if len(frame) == 0:
    raise ValueError(f"{input_path} has no rows to score.")
  missing = [c for c in keep_columns if c not in frame.columns]
  if missing:
    raise ValueError(f"--keep_columns {missing} are not columns of {input_path}.")
  # CSV line numbers in messages: header is line 1, the first data row line 2.
  offset = 2 if input_path.lower().endswith((".csv", ".csv.gz", ".txt")) else 0
  p = scorer.score(frame, where=input_path, row_offset=offset)
  result = pd.DataFrame({"row": np.arange(len(frame))})
  for col in keep_columns:
    result[col] = frame[col].to_numpy()
  result[f"p_{scorer.preprocessor.schema.positive}"] = p
  result["decision"] = np.where(p >= scorer.cutoff, "decline", "approve")
  for key, per_row in scorer.preprocessor.row_flags(frame).items():
    result[key] = [";".join(cols) for cols in per_row]
  os.makedirs(os.path.dirname(os.path.abspath(output_path)), exist_ok=True)
  result.to_csv(output_path, index=False)
  return result


def flag_summary(result: pd.DataFrame) -> list[str]:
  """One line per flag column that is set on some row: how many rows, which columns."""
  lines = []
  for key, what in (
    ("unknown_categories", "a category unseen in training (scored as unknown)"),
    ("imputed_columns", "missing values filled by the preprocessing"),
  ):
    flagged = result[key][result[key] != ""]
    if len(flagged):
      columns = sorted({c for cell in flagged for c in cell.split(";")})
      lines.append(
        f"{len(flagged)} of {len(result)} rows had {what} in column(s) {columns}; "
        f"see the {key!r} column of the output."
      )
  return lines
