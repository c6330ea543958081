"""tools.score: a row's score does not depend on how pandas typed the other rows.

A categorical column of integer codes with one empty cell (or a `2.0`) is read
by pandas as floats; scoring must still find every code in the training
vocabulary, and say per row which columns were filled in or unknown.
"""

import numpy as np
import pandas as pd
import pytest

from research.apps import score
from research.core import config as config_lib
from research.data.tabular import Preprocessor, TableSchema
from research.data.tabular.schema import category_string
from research.train import loop

SCHEMA = dict(target="y", positive=1, numeric=("x",), categorical=("code",))


def _table(n=240, seed=0) -> pd.DataFrame:
  rng = np.random.default_rng(seed)
  code = rng.integers(0, 7, n)  # integer codes 0..6, as a bureau file writes them
  x = rng.normal(0, 1, n).round(3)
  y = (rng.random(n) < 1 / (1 + np.exp(-(x + (code - 3) * 0.6)))).astype(int)
  return pd.DataFrame({"x": x, "code": code, "y": y})


@pytest.fixture(scope="module")
def coded_run(tmp_path_factory):
  root = tmp_path_factory.mktemp("coded")
  _table().to_csv(root / "train.csv", index=False)
  config = config_lib.load(
    "finance_risk/credit_scoring:logreg,smoke=True,data=table",
    {
      "baselines": config_lib.ConfigDict(),
      "references": (),
      "data.options": config_lib.ConfigDict(
        dict(
          path=str(root / "train.csv"),
          schema=SCHEMA,
          seed=0,
          fractions=(0.6, 0.2, 0.2),
          split_by="stratified",
        )
      ),
      "evals": config_lib.ConfigDict(
        dict(
          val=config_lib.eval_config("credit", "validation", topk=(), cutoff=0.5),
          test=config_lib.eval_config("credit", "test", topk=(), cutoff=0.5),
        )
      ),
    },
  )
  loop.run(config, str(root / "run"))
  return root / "run"


@pytest.mark.parametrize(
  "value,expected",
  [
    (2, "2"),
    (2.0, "2"),
    ("2", "2"),
    ("2.0", "2"),
    (np.int64(2), "2"),
    (np.float32(2.0), "2"),
    (2.5, "2.5"),
    ("own", "own"),
    ("", None),
    (np.nan, None),
    (None, None),
    (pd.NA, None),
  ],
)
def test_one_normaliser_for_every_spelling_of_a_category(value, expected):
  assert category_string(value) == expected


def test_fit_and_score_agree_on_float_typed_codes():
  schema = TableSchema.from_dict(SCHEMA)
  frame = _table(60)
  pp = Preprocessor.fit(frame, schema)
  assert pp.state["vocab"] == [[str(c) for c in range(7)]]
  as_floats = frame.astype({"code": float})  # what pandas makes of the column with one NaN
  np.testing.assert_array_equal(
    pp.transform(as_floats)["categorical"], pp.transform(frame)["categorical"]
  )
  # Fitted on the float-typed column, the vocabulary is the same codes.
  assert Preprocessor.fit(as_floats, schema).state["vocab"] == pp.state["vocab"]


def test_a_row_scores_the_same_alone_and_among_empty_cells(coded_run, tmp_path):
  applicant = pd.DataFrame({"x": [0.4], "code": [2]})
  applicant.to_csv(tmp_path / "alone.csv", index=False)
  alone = score.score_csv(str(coded_run), str(tmp_path / "alone.csv"), str(tmp_path / "a.csv"))
  # The same applicant in a file whose code column has an empty cell, a
  # '2.0' and an unseen code: pandas alone would read it as floats.
  with open(tmp_path / "mixed.csv", "w") as f:
    f.write("x,code\n0.4,2\n0.1,\n,2.0\n-0.3,9\n0.4,2.0\n")
  mixed = score.score_csv(str(coded_run), str(tmp_path / "mixed.csv"), str(tmp_path / "m.csv"))
  p_alone = alone["p_1"].iloc[0]
  np.testing.assert_allclose(mixed["p_1"].iloc[[0, 4]], [p_alone, p_alone], rtol=1e-6)
  # An unknown code scores differently from a known one: the fixture did learn the codes.
  assert abs(mixed["p_1"].iloc[3] - p_alone) > 1e-4
  written = pd.read_csv(tmp_path / "m.csv", keep_default_na=False)
  assert list(written["unknown_categories"]) == ["", "", "", "code", ""]
  assert list(written["imputed_columns"]) == ["", "code", "x", "", ""]
  assert list(alone["unknown_categories"]) == [""] and list(alone["imputed_columns"]) == [""]
  notes = score.flag_summary(mixed)
  assert len(notes) == 2 and "1 of 5 rows had a category unseen" in notes[0]
  assert "2 of 5 rows had missing values" in notes[1]
