"""The first hour of a new user: any CSV from the command line, one-line errors,
the closing line of a run, baseline arguments from the config, local data first."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from absl import flags
from ml_collections import config_flags

from research import baselines
from research.apps import cli
from research.baselines import finance as finance_baselines
from research.core import config as config_lib
from research.data import build as data_build
from research.data import registry
from research.data.tabular import sources as table_sources

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CREDIT = "experiments/finance_risk/credit_scoring.py"
RATING = "experiments/recommendation/movielens_rating.py"


def tool_env() -> dict[str, str]:
  """The environment of a tool run as a user runs it: without the 8 fake devices
  tests/conftest.py asks for, with this checkout importable."""
  env = dict(os.environ, PYTHONPATH=ROOT)
  xla = env.get("XLA_FLAGS", "").replace("--xla_force_host_platform_device_count=8", "").strip()
  if xla:
    env["XLA_FLAGS"] = xla
  else:
    env.pop("XLA_FLAGS", None)
  return env


def parse_config(*args: str):
  """The config a tool gets from `--config=... --config.x=...` (ml_collections flags)."""
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file(
    "config", None, "", flag_values=fv, lock_config=True, sys_argv=["prog", *args]
  )
  fv(["prog", *args])
  return fv.config


def loans(n=300, seed=0) -> pd.DataFrame:
  rng = np.random.default_rng(seed)
  return pd.DataFrame(
    {
      "loan_id": [f"L{i:05d}" for i in range(n)],  # every value distinct: left out
      "income": rng.normal(50, 10, n).round(1),
      "age": rng.integers(20, 70, n),
      "home": rng.choice(["rent", "own", "parents"], n),
      "default": np.where(rng.random(n) < 0.3, "yes", "no"),
    }
  )


# --- any CSV from the command line ----------------------------------------------------


def test_table_options_parse_from_the_command_line_and_infer_the_schema(tmp_path, capsys):
  path = tmp_path / "loans.csv"
  loans().to_csv(path, index=False)
  config = parse_config(
    f"--config={CREDIT}:mlp,data=table,smoke=True",
    f"--config.data.options.path={path}",
    "--config.data.options.target=default",
    "--config.data.options.positive=yes",
  )
  config_lib.finalize(config, CREDIT, "mlp,data=table,smoke=True")  # locked and validated
  table_sources._cached_table.cache_clear()
  train = data_build.DataBuilder(config).raw("train")
  assert train.schema.numeric == ("income", "age")
  assert train.schema.categorical == ("home",)
  assert train.schema.positive == "yes"
  labels = train.schema.labels(train.frame)
  assert labels.sum() == (train.frame["default"] == "yes").sum() > 0
  out = capsys.readouterr().out
  assert "inferred numeric columns ['income', 'age'], categorical columns ['home']" in out
  assert "left out (every value distinct) ['loan_id']" in out


def test_a_schema_file_pins_the_columns(tmp_path, capsys):
  path, schema = tmp_path / "loans.csv", tmp_path / "schema.json"
  loans().to_csv(path, index=False)
  schema.write_text(
    json.dumps(
      dict(target="default", positive="yes", numeric=["income"], categorical=["home", "age"])
    )
  )
  table_sources._cached_table.cache_clear()
  source = registry.get_source("table", "train", path=str(path), schema=str(schema))
  assert source.schema.numeric == ("income",)
  assert source.schema.categorical == ("home", "age")
  assert "inferred" not in capsys.readouterr().out


def test_table_errors_name_the_fix(tmp_path):
  path = tmp_path / "loans.csv"
  loans().to_csv(path, index=False)
  table_sources._cached_table.cache_clear()
  with pytest.raises(ValueError, match=r"options.target=COLUMN .*loan_id, income, age, home"):
    registry.get_source("table", "train", path=str(path))
  with pytest.raises(ValueError, match=r"no target column 'y'"):
    registry.get_source("table", "train", path=str(path), target="y")
  with pytest.raises(ValueError, match=r"options.positive.* holds: no, yes"):
    registry.get_source("table", "train", path=str(path), target="default")
  with pytest.raises(FileNotFoundError, match="Schema file"):
    registry.get_source("table", "train", path=str(path), schema=str(tmp_path / "none.json"))
  # A 0/1 target needs no positive value.
  frame = loans().assign(default=lambda f: (f["default"] == "yes").astype(int))
  frame.to_csv(path, index=False)
  table_sources._cached_table.cache_clear()
  source = registry.get_source("table", "train", path=str(path), target="default")
  assert str(source.schema.positive) == "1"


def test_table_options_are_refused_where_the_data_set_takes_none():
  with pytest.raises(
    SystemExit,
    match="'path' is not a key of data.options. Valid keys there: fractions, seed, split_by",
  ):
    cli.check_config_overrides(
      ["prog", f"--config={CREDIT}:mlp", "--config.data.options.path=x.csv"]
    )
  # ... and accepted with data=table.
  cli.check_config_overrides(
    ["prog", f"--config={CREDIT}:mlp,data=table", "--config.data.options.path=x.csv"]
  )


def test_movielens_csv_columns_from_the_command_line(tmp_path):
  rng = np.random.default_rng(0)
  n = 600
  pd.DataFrame(
    {
      "uid": rng.integers(0, 30, n),
      "item": rng.integers(0, 50, n),
      "rating": rng.integers(1, 6, n).astype(float),
    }
  ).to_csv(tmp_path / "r.csv", index=False, sep=";")
  config = parse_config(
    f"--config={RATING}:mf,smoke=True",
    "--config.data.options.source=csv",
    f"--config.data.options.path={tmp_path / 'r.csv'}",
    "--config.data.options.user_col=uid",
    "--config.data.options.sep=;",
  )
  config_lib.finalize(config, RATING, "mf,smoke=True")
  source = data_build.DataBuilder(config).raw("train")
  r = source.recsys
  parts = (r.train, r.validation, r.test)  # validation: carved from train by default
  assert sum(len(p["user"]) for p in parts) == n
  assert 1 < r.num_users <= 31
  # No timestamp column: row order.
  assert (np.sort(np.concatenate([p["timestamp"] for p in parts])) == np.arange(n)).all()


# --- None for numbers, one-line errors ----------------------------------------------


def test_none_overrides_numbers():
  config = parse_config(
    "--config=experiments/vision/digits.py:mlp",
    "--config.total_epochs=None",
    "--config.total_steps=7",
    "--config.schedule.warmup_steps=none",
  )
  assert config.total_epochs is None and config.total_steps == 7
  assert config.schedule.warmup_steps is None


_TOOL = """
import sys
from absl import flags
from research.apps import cli
flags.DEFINE_integer("n", 1, "")
flags.DEFINE_string("kind", "none", "")
def main(argv):
  kind = flags.FLAGS.kind
  if kind == "value":
    raise ValueError("fold 'u9' is not a fold;\\n valid: u1..u5")
  if kind == "key":
    raise KeyError("Unknown config key 'x'")
  if kind == "missing":
    open("/nonexistent/file.csv")
  if kind == "bug":
    raise RuntimeError("a real bug")
  print("ok", flags.FLAGS.n)
cli.run(main)
"""


def _tool(*args):
  return subprocess.run(
    [sys.executable, "-c", _TOOL, *args],
    capture_output=True,
    text=True,
    cwd=ROOT,
    env=tool_env(),
    timeout=120,
  )


@pytest.mark.parametrize(
  "args, expected",
  [
    (["--kind=value"], "error: fold 'u9' is not a fold; valid: u1..u5"),
    (["--kind=key"], "error: Unknown config key 'x'"),
    (["--kind=missing"], "error: [Errno 2] No such file or directory: '/nonexistent/file.csv'"),
    (["--n=abc"], "error: flag --n=abc: invalid literal for int()"),
  ],
)
def test_user_errors_are_one_line_and_exit_2(args, expected):
  p = _tool(*args)
  assert p.returncode == 2, p.stderr
  lines = p.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith(expected), p.stderr
  assert "Traceback" not in p.stderr


def test_verbosity_shows_the_traceback_and_bugs_keep_theirs():
  p = _tool("--kind=value", "--verbosity=1")
  assert p.returncode == 1 and "Traceback" in p.stderr and "ValueError: fold" in p.stderr
  p = _tool("--kind=bug")
  assert p.returncode == 1 and "Traceback" in p.stderr and "RuntimeError: a real bug" in p.stderr
  p = _tool("--n=3")
  assert p.returncode == 0 and p.stdout.strip() == "ok 3"


def test_every_tool_uses_the_wrapper():
  tools = os.path.join(ROOT, "tools")
  for name in sorted(os.listdir(tools)):
    if name.endswith(".py") and name != "__init__.py":
      with open(os.path.join(tools, name)) as f:
        text = f.read()
      assert "cli.run(main)" in text and "app.run(" not in text, name


# --- the closing line of a run ----------------------------------------------------


def test_closing_line_has_the_headline_the_verdict_and_the_report(tmp_path):
  summary = {
    "test/roc_auc": 0.84,
    "val/roc_auc": 0.86,
    "test/ks": 0.5,
    "step": 10,
    "train_seconds": 3.0,
  }
  (tmp_path / "summary.json").write_text(json.dumps(summary))
  (tmp_path / "report.md").write_text("# report\n")
  config = {
    "references": [
      dict(metric="test/roc_auc", value=0.832, higher_is_better=True),
      dict(metric="test/ks", value=0.6, higher_is_better=True),
    ],
    "ckpt": {"best_metric": "val/roc_auc"},
  }
  (tmp_path / "config.json").write_text(json.dumps(config))
  line = cli.closing_line(str(tmp_path))
  assert line == (
    f"Done: test/roc_auc 0.8400, test/ks 0.5000, val/roc_auc 0.8600; 1 of 2 "
    f"published result(s) reproduced; report: {tmp_path / 'report.md'}."
  )
  # No references, no best metric: the first '<split>/<metric>' numbers.
  line = cli.closing_line(str(tmp_path), {})
  assert line.startswith("Done: test/ks 0.5000, test/roc_auc 0.8400, val/roc_auc 0.8600; report:")


# --- baselines: arguments from the config, threads ---------------------------------


def test_unknown_baseline_argument_fails_at_config_load():
  with pytest.raises(ValueError, match=r"takes no argument\(s\) \['threads'\]; valid: .*n_jobs"):
    baselines.check_baseline_config(
      "lightgbm", dict(type="lightgbm", split="test", threads=1), ["test"]
    )
  baselines.check_baseline_config(
    "lightgbm", dict(type="lightgbm", split="test", n_jobs=1), ["test"]
  )
  config = parse_config(
    f"--config={CREDIT}:logreg,smoke=True", "--config.baselines.lightgbm.n_jobs=3"
  )
  assert config.baselines.lightgbm.n_jobs == 3
  config_lib.finalize(config, CREDIT, "logreg,smoke=True")


@pytest.mark.parametrize("cpus, threads", [(1, 1), (2, 1), (4, 2), (16, 8), (64, 8)])
def test_lightgbm_default_threads(monkeypatch, cpus, threads):
  monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)), raising=False)
  assert finance_baselines.default_threads() == threads


def test_lightgbm_baseline_warns_nothing_and_takes_n_jobs(tmp_path):
  path = tmp_path / "loans.csv"
  loans(400).to_csv(path, index=False)
  config = parse_config(
    f"--config={CREDIT}:logreg,data=table,smoke=True",
    f"--config.data.options.path={path}",
    "--config.data.options.target=default",
    "--config.data.options.positive=yes",
  )
  config_lib.finalize(config, CREDIT, "logreg,data=table,smoke=True")
  table_sources._cached_table.cache_clear()
  ctx = baselines.BaselineContext(
    config=config,
    data=data_build.DataBuilder(config),
    split="test",
    output_dir=str(tmp_path / "lgb"),
  )
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    one = finance_baselines.lightgbm_baseline(ctx, num_leaves=4, n_estimators=20, n_jobs=1)
  two = finance_baselines.lightgbm_baseline(ctx, num_leaves=4, n_estimators=20, n_jobs=2)
  assert 0 <= one["roc_auc"] <= 1
  assert one == pytest.approx(two)  # threads change the speed, not the result


# --- german_credit_numeric: the local file first ------------------------------------


def test_german_credit_reads_the_uci_file_from_the_data_dir(tmp_path):
  rng = np.random.default_rng(0)
  n = 100
  features = rng.integers(0, 10, (n, 24))
  classes = np.where(np.arange(n) % 3 == 0, 2, 1)  # 1 = good, 2 = bad
  (tmp_path / "german_credit_numeric").mkdir()
  np.savetxt(
    tmp_path / "german_credit_numeric" / "german.data-numeric",
    np.column_stack([features, classes]),
    fmt="%4d",
  )
  table_sources._cached_table.cache_clear()
  parts = [
    registry.get_source("german_credit_numeric", s, data_dir=str(tmp_path))
    for s in ("train", "validation", "test")
  ]
  assert sum(len(p) for p in parts) == n
  train = parts[0]
  assert list(train.frame.columns) == [f"f{i}" for i in range(24)] + ["label"]
  # TFDS's labels: 0 = Bad (class 2) is the positive class.
  assert train.schema.positive == 0
  assert train.schema.labels(train.frame).sum() == (train.frame["label"] == 0).sum()
  assert (train.frame["label"] == 0).sum() == round(0.6 * (classes == 2).sum())


def test_german_credit_missing_everywhere_names_what_was_tried(tmp_path, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  table_sources._cached_table.cache_clear()
  with pytest.raises(FileNotFoundError) as e:
    registry.get_source("german_credit_numeric", "train", data_dir=str(tmp_path), download=False)
  text = str(e.value)
  assert str(tmp_path / "german_credit_numeric" / "german.data-numeric") in text
  assert "TFDS prepared data in" in text
  assert table_sources.GERMAN_CREDIT_URL in text and "RESEARCH_DATA_DIR" in text


# --- end to end -----------------------------------------------------------------------


@pytest.mark.slow
def test_train_a_csv_from_the_command_line(tmp_path):
  path = tmp_path / "loans.csv"
  loans(400).to_csv(path, index=False)
  workdir = tmp_path / "run"
  p = subprocess.run(
    [
      sys.executable,
      "-m",
      "tools.train",
      f"--config={CREDIT}:mlp,data=table,smoke=True",
      f"--config.data.options.path={path}",
      "--config.data.options.target=default",
      "--config.data.options.positive=yes",
      f"--workdir={workdir}",
    ],
    capture_output=True,
    text=True,
    cwd=ROOT,
    env=tool_env(),
    timeout=600,
  )
  assert p.returncode == 0, p.stderr[-3000:]
  out = p.stdout.strip().splitlines()
  assert any("inferred numeric columns ['income', 'age']" in line for line in out)
  assert out[-1].startswith("Done: val/roc_auc ") and out[-1].endswith(
    f"report: {workdir / 'report.md'}."
  )
  assert "Warning" not in p.stderr  # LightGBM's deprecation warnings are gone
