"""Baselines run in the same run, on the same split, and land in the report."""

import json

import numpy as np
import pytest

from research import baselines
from research.baselines import classification
from research.core import config as config_lib
from research.data.core import ArraySource
from research.train import loop


def test_labels_of_reads_batched_and_unbatched_sources():
  src = ArraySource({"label": np.array([3, 1, 3, 2])})
  np.testing.assert_array_equal(classification.labels_of(src, "label", chunk=3), [3, 1, 3, 2])

  class Plain:
    def __len__(self):
      return 2

    def __getitem__(self, i):
      return {"label": np.int64(7 + i)}

  np.testing.assert_array_equal(classification.labels_of(Plain(), "label"), [7, 8])


@pytest.mark.slow
def test_digits_run_scores_the_majority_baseline_on_its_test_split(tmp_path):
  config = config_lib.load("vision/digits:mlp,smoke=True")
  summary = loop.run(config, str(tmp_path))
  results = json.loads((tmp_path / "baselines.json").read_text())
  # digits' 10 classes are balanced: predicting one class is right ~10% of the time.
  majority = results["majority"]["test/accuracy"]
  assert 0.05 < majority < 0.2
  assert results["majority"]["seconds"] >= 0
  report = (tmp_path / "report.md").read_text()
  assert "## Baselines (same run, same split)" in report
  table = report.split("## Baselines (same run, same split)")[1]
  assert f"{summary['test/accuracy']:.4f}" in table and f"{majority:.4f}" in table


def test_bad_baseline_configs_name_the_field():
  config = config_lib.load("vision/digits:mlp,smoke=True")
  with config.unlocked():
    config.baselines.x = dict(type="no_such_baseline", split="test")
  with pytest.raises(
    ValueError,
    match=r"Unknown baseline type .no_such_baseline. in config.baselines.x.type; valid names: .*majority_class",
  ):
    config_lib.validate(config)
  with config.unlocked():
    config.baselines.x = dict(type="majority_class", split="unsupervised")
  with pytest.raises(ValueError, match=r"config.baselines.x.split='unsupervised'.*test"):
    config_lib.validate(config)


def test_register_refuses_a_second_function_under_one_name():
  with pytest.raises(ValueError, match="registered twice"):
    baselines.register("majority_class")(lambda ctx: {})
