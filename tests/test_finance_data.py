"""Finance data: schema errors, train-only preprocessing, splits, walk-forward folds."""

import os

import numpy as np
import pandas as pd
import pytest

from research.core import config as config_lib
from research.data import build as data_build
from research.data import registry
from research.data.series import sources as series_sources
from research.data.series import walk_forward
from research.data.tabular import Preprocessor, SchemaError, TableSchema
from research.data.tabular import sources as table_sources

SCHEMA = dict(
  target="y",
  positive="bad",
  numeric=("income", "age"),
  categorical=("home",),
  sensitive="age",
  sensitive_bins=(30,),
)


def make_table(n=200, seed=0) -> pd.DataFrame:
  rng = np.random.default_rng(seed)
  frame = pd.DataFrame(
    {
      "income": rng.normal(50, 10, n).round(1),
      "age": rng.integers(20, 70, n).astype(float),
      "home": rng.choice(["rent", "own", "parents"], n),
      "y": np.where(rng.random(n) < 0.3, "bad", "good"),
    }
  )
  frame.loc[::17, "income"] = np.nan  # some missing values
  return frame


def table_config(path, numeric="standardize"):
  c = config_lib.base_config()
  c.data.name = "table"
  c.data.format = "tabular"
  c.data.options = config_lib.ConfigDict(dict(path=str(path), schema=SCHEMA, seed=0))
  c.data.tabular = config_lib.ConfigDict(dict(numeric=numeric))
  return c


@pytest.mark.parametrize("numeric", ["standardize", "quantile"])
def test_preprocessing_never_sees_validation_or_test_rows(tmp_path, numeric):
  frame = make_table()
  path = tmp_path / "t.csv"
  frame.to_csv(path, index=False)
  fitted = data_build.DataBuilder(table_config(path, numeric)).preprocessor.state

  # Plant outliers and a new category in the test and validation rows only.
  parts = table_sources.stratified_split(
    TableSchema.from_dict(SCHEMA).labels(frame), (0.6, 0.2, 0.2), seed=0
  )
  planted = frame.copy()
  for split in ("validation", "test"):
    planted.loc[parts[split], "income"] = 1e9
    planted.loc[parts[split], "home"] = "castle"
  planted.to_csv(path, index=False)
  builder = data_build.DataBuilder(table_config(path, numeric))
  assert (builder.raw("test").frame["income"] == 1e9).all()  # the outliers are really there
  assert builder.preprocessor.state == fitted
  # Unseen category -> the unknown bucket 0; the outlier is far out but finite.
  test = builder.eval_source("test", {})
  assert (test.get_batch(np.arange(len(test)))["categorical"] == 0).all()

  # The same planted rows in the training split do move the parameters.
  planted.loc[parts["train"][:5], "income"] = 1e9
  planted.to_csv(path, index=False)
  assert data_build.DataBuilder(table_config(path, numeric)).preprocessor.state != fitted


def test_preprocessing_is_saved_and_reloaded(tmp_path):
  path = tmp_path / "t.csv"
  make_table().to_csv(path, index=False)
  workdir = tmp_path / "run"
  os.makedirs(workdir)
  first = data_build.DataBuilder(table_config(path), str(workdir))
  encoded = first.train_source().get_batch(np.arange(10))
  assert (workdir / "preprocessing.json").exists()
  again = Preprocessor.load(str(workdir / "preprocessing.json"))
  out = again.transform(first.raw("train").frame.iloc[:10])
  np.testing.assert_array_equal(out["numeric"], encoded["numeric"])
  np.testing.assert_array_equal(out["categorical"], encoded["categorical"])
  assert again.feature_names == ["income", "age", "income_missing", "home"]
  # Missing income -> median, with the indicator set.
  frame = first.raw("train").frame
  row = int(np.flatnonzero(frame["income"].isna())[0])
  assert out["numeric"][row, 2] == 1.0 if row < 10 else True


def test_woe_preprocessing_is_monotone_in_risk():
  rng = np.random.default_rng(1)
  x = rng.normal(size=2000)
  frame = pd.DataFrame(
    {
      "x": x,
      "c": np.where(x > 0, "a", "b"),
      "y": np.where(rng.random(2000) < 1 / (1 + np.exp(-2 * x)), 1, 0),
    }
  )
  schema = TableSchema(target="y", positive=1, numeric=("x",), categorical=("c",))
  pp = Preprocessor.fit(frame, schema, numeric="woe")
  out = pp.transform(
    pd.DataFrame({"x": [-2.0, 0.0, 2.0, np.nan], "c": ["a", "b", "zzz", None]}), with_label=False
  )
  assert out["categorical"].shape == (4, 0)
  woe = out["numeric"][:3, 0]
  assert np.all(np.diff(woe) != 0) and (np.all(np.diff(woe) < 0) or np.all(np.diff(woe) > 0))
  assert np.isfinite(out["numeric"]).all()


def test_schema_violations_give_clear_errors():
  schema = TableSchema.from_dict(SCHEMA)
  frame = make_table(20)
  with pytest.raises(SchemaError, match=r"missing column\(s\) \['home'\]"):
    schema.check_frame(frame.drop(columns=["home"]))
  bad = frame.copy()
  bad["income"] = bad["income"].astype(object)
  bad.loc[7, "income"] = "lots"
  with pytest.raises(
    SchemaError,
    match=r"column 'income' row 7 \(line 9 of the file\) has value "
    r"'lots'",
  ):
    schema.check_frame(bad, row_offset=2)
  with pytest.raises(SchemaError, match="unknown key"):
    TableSchema.from_dict(dict(SCHEMA, targte="y"))
  with pytest.raises(SchemaError, match="also listed as a feature"):
    TableSchema.from_dict(dict(SCHEMA, numeric=("income", "y")))
  pp = Preprocessor.fit(frame, schema)
  with pytest.raises(SchemaError, match="'age'"):
    pp.transform(frame.drop(columns=["age"]), with_label=False)


def test_table_dataset_errors(tmp_path):
  with pytest.raises(ValueError, match="needs config.data.options.path"):
    registry.get_source("table", "train", schema=SCHEMA)
  with pytest.raises(FileNotFoundError, match="does not exist"):
    registry.get_source("table", "train", path=str(tmp_path / "nope.csv"), schema=SCHEMA)
  path = tmp_path / "t.csv"
  make_table().to_csv(path, index=False)
  with pytest.raises(SchemaError, match="never \\(or always\\) equals"):
    registry.get_source("table", "train", path=str(path), schema=dict(SCHEMA, positive="BAD"))


def test_stratified_split_is_seeded_disjoint_and_stratified():
  labels = np.array([0] * 700 + [1] * 300)
  parts = table_sources.stratified_split(labels, (0.6, 0.2, 0.2), seed=3)
  assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(1000))
  assert [len(parts[s]) for s in ("train", "validation", "test")] == [600, 200, 200]
  for s in parts:
    assert labels[parts[s]].mean() == pytest.approx(0.3)
  again = table_sources.stratified_split(labels, (0.6, 0.2, 0.2), seed=3)
  assert all(np.array_equal(parts[s], again[s]) for s in parts)


def test_out_of_time_split_keeps_dates_apart():
  dates = pd.date_range("2020-01-01", periods=50).repeat(2).to_numpy()
  rng = np.random.default_rng(0)
  shuffled = rng.permutation(len(dates))
  parts = table_sources.out_of_time_split(dates[shuffled], (0.6, 0.2, 0.2))
  d = {s: dates[shuffled][idx] for s, idx in parts.items()}
  assert d["train"].max() < d["validation"].min() <= d["validation"].max() < d["test"].min()
  assert sum(len(v) for v in parts.values()) == 100


def test_credit_data_embedded_split():
  train = registry.get_source("credit_data", "train")
  test = registry.get_source("credit_data", "test")
  assert len(train) + len(test) + len(registry.get_source("credit_data", "validation")) == 4454
  assert train._labels.mean() == pytest.approx(test._labels.mean(), abs=0.01)
  assert train.frame.isna().any().any()  # raw rows, missing values kept for the preprocessing


@pytest.mark.parametrize("num_days,window,folds", [(300, 20, 3), (1859, 60, 4), (101, 5, 7)])
def test_walk_forward_never_looks_ahead(num_days, window, folds):
  blocks = walk_forward.evaluation_blocks(num_days, window, 0.5, folds)
  evaluated = np.concatenate(blocks)
  assert (
    np.all(np.diff(evaluated) == 1) and evaluated[-1] == num_days - 1
  )  # each day once, in order
  for k in range(folds):
    days = walk_forward.fold_days(num_days, window, test_fraction=0.5, num_folds=folds, fold=k)
    train, test = days["train"], days["test"]
    np.testing.assert_array_equal(test, blocks[k])
    # Every training window (inputs and target) ends before the first evaluated day.
    assert walk_forward.window_indices(train, window).max() < train.max() + 1 <= test.min()
    # No input of an evaluated window is its own or a later target.
    inputs = walk_forward.window_indices(test, window)
    assert np.all(inputs < test[:, None])
    assert np.all(inputs.max(axis=1) == test - 1)
    # Expanding window: fold k trains on everything fold k-1 trained on, plus block k-1.
    if k:
      previous = walk_forward.fold_days(
        num_days, window, test_fraction=0.5, num_folds=folds, fold=k - 1
      )
      np.testing.assert_array_equal(train, np.concatenate([previous["train"], blocks[k - 1]]))


def test_price_windows_hold_only_past_returns():
  source = series_sources.price_windows("test", fold=1, num_folds=4, window=30)
  train = series_sources.price_windows("train", fold=1, num_folds=4, window=30)
  returns = walk_forward.log_returns(series_sources.load_prices().to_numpy())
  batch = source.get_batch(np.arange(len(source)))
  for i in (0, len(source) // 2, len(source) - 1):
    day = int(batch["day"][i])
    np.testing.assert_allclose(batch["inputs"][i], returns[day - 30 : day], rtol=1e-6)
    assert batch["target"][i] == pytest.approx(returns[day, 0], rel=1e-6)
  assert train.days.max() < source.days.min()
  with pytest.raises(ValueError, match="fold must be -1"):
    series_sources.price_windows("test", fold=4, num_folds=4)
  with pytest.raises(ValueError, match="finite and positive"):
    walk_forward.log_returns(np.array([1.0, 0.0, 2.0]))


def test_german_credit_tfds_path_uses_mock_data(tmp_path, monkeypatch):
  tfds = pytest.importorskip("tensorflow_datasets")
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  table_sources._cached_table.cache_clear()
  with tfds.testing.mock_data(num_examples=40, policy=tfds.testing.MockPolicy.USE_CODE):
    train = registry.get_source("german_credit_numeric", "train", download=False)
  assert len(train.schema.numeric) == 24 and train.schema.categorical == ()
  table_sources._cached_table.cache_clear()


def test_validation_block_sits_between_train_and_test():
  days = walk_forward.fold_days(500, 20, test_fraction=0.5, num_folds=2, fold=1, validation_days=50)
  assert days["train"].max() + 1 == days["validation"].min()
  assert days["validation"].max() + 1 == days["test"].min()
  assert len(days["validation"]) == 50
  with pytest.raises(ValueError, match="validation_days"):
    walk_forward.fold_days(500, 20, fold=0, validation_days=10_000)


def test_prices_from_any_csv(tmp_path):
  dates = pd.bdate_range("2020-01-01", periods=120)
  rng = np.random.default_rng(0)
  prices = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (120, 2)), axis=0))
  pd.DataFrame({"date": dates, "AAA": prices[:, 0], "BBB": prices[:, 1]}).to_csv(
    tmp_path / "p.csv", index=False
  )
  source = registry.get_source(
    "eu_stock_markets", "test", path=str(tmp_path / "p.csv"), index="BBB", window=10, num_folds=2
  )
  assert source[0]["inputs"].shape == (10, 2)
  np.testing.assert_allclose(source.returns, 100 * np.diff(np.log(prices[:, 1])), rtol=1e-9)
  bad = pd.read_csv(tmp_path / "p.csv").astype({"AAA": object})
  bad.loc[30, "AAA"] = "n.a."
  bad.to_csv(tmp_path / "bad.csv", index=False)
  series_sources.load_prices.cache_clear()
  with pytest.raises(ValueError, match="column 'AAA' row 30 is not a number"):
    registry.get_source("eu_stock_markets", "train", path=str(tmp_path / "bad.csv"))


def test_table_out_of_time_split_through_the_registry(tmp_path):
  frame = make_table(300)
  frame["applied"] = pd.date_range("2019-01-01", periods=300).astype(str)
  frame.sample(frac=1, random_state=0).to_csv(tmp_path / "t.csv", index=False)
  schema = dict(SCHEMA, date="applied")
  splits = {
    s: registry.get_source("table", s, path=str(tmp_path / "t.csv"), schema=schema, split_by="time")
    for s in ("train", "validation", "test")
  }
  dates = {s: pd.to_datetime(src.frame["applied"]) for s, src in splits.items()}
  assert dates["train"].max() < dates["validation"].min()
  assert dates["validation"].max() < dates["test"].min()
  assert [len(splits[s]) for s in ("train", "validation", "test")] == [180, 60, 60]
