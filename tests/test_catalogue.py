"""The experiment catalogue: every experiment:variant loads and selects on validation."""

import json
import os
import subprocess
import sys

from research.apps import catalogue
from research.core import config as config_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_experiment_variant_loads_and_names_a_validation_metric():
  rows = catalogue.entries()
  modules = catalogue.experiment_modules()
  assert len(rows) == sum(len(catalogue.variants(m)) for m in modules.values())
  assert {
    "vision/digits",
    "nlp/imdb",
    "finance_risk/credit_scoring",
    "recommendation/movielens_ncf",
  } <= set(modules)
  for row in rows:
    selection = row["selection"]
    assert selection is not None, f"{row['experiment']} selects nothing"
    assert selection["split"] == "validation", row
    assert not row["selects_on_test"] and not selection["metric"].startswith("test")
    tests = [s for s in row["evals"].values() if s.startswith("test")]  # e.g. test_2016_flickr
    assert tests or row["data"]["name"] == "tiny_shakespeare", row
  digits = next(r for r in rows if r["experiment"] == "vision/digits:cnn")
  assert digits["selection"] == {"metric": "val/accuracy", "mode": "max", "split": "validation"}
  assert digits["references"][0]["value"] == 0.97 and digits["references"][0]["source"]


def test_the_catalogue_flags_a_test_selection_and_shows_no_selection():
  config = config_lib.load("vision/digits:cnn")
  with config.unlocked():
    config.ckpt.best_metric = "test/accuracy"  # what validate() refuses; describe() must see it
  assert catalogue.describe(config)["selects_on_test"]
  row = catalogue.describe(config_lib.load("recommendation/movielens_ncf:gmf,validation=False"))
  assert row["selection"] is None and not row["selects_on_test"] and row["validation"] == "none"
  assert "| last step |" in catalogue.markdown([row])


def test_tools_experiments_json_parses_and_selects_nothing_on_test():
  out = subprocess.run(
    [sys.executable, "-m", "tools.experiments", "--json"],
    cwd=ROOT,
    env=dict(os.environ, PYTHONPATH=ROOT),
    capture_output=True,
    text=True,
    timeout=300,
    check=True,
  )
  rows = json.loads(out.stdout)
  assert len(rows) >= 30
  assert not [r["experiment"] for r in rows if r["selects_on_test"]]
  assert all(r["selection"]["metric"].split("/")[0] in r["evals"] for r in rows)
