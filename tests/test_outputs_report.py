"""research.outputs.report: report.md with the published-result comparison."""

import os

import pytest

from research.outputs import report

SUMMARY = {
  "test/accuracy": 0.9281,
  "test/loss": 0.25,
  "test/f1/cat": 0.9,
  "test/f1/dog": 0.8,
  "step": 5000,
  "train_seconds": 3723.0,
  "params_fingerprint": "f" * 64,
  "device_count": 8,
  "device_kind": "TPU v4",
}
REFS = [
  {
    "metric": "test/accuracy",
    "value": 0.925,
    "source": "https://arxiv.org/abs/1512.03385",
    "higher_is_better": True,
    "tolerance": 0.0,
  },
  {
    "metric": "test/loss",
    "value": 0.2,
    "source": "Table 2 | appendix",
    "higher_is_better": False,
    "tolerance": 0.01,
  },
  {"metric": "test/top5", "value": 0.99, "source": "paper"},
]


def test_compare_to_references():
  rows = report.compare_to_references(SUMMARY, REFS)
  assert rows[0]["difference"] == pytest.approx(0.0031)
  assert [r["verdict"] for r in rows] == ["reproduced", "not reproduced", "missing"]
  # Within tolerance counts as reproduced, in both directions.
  near = report.compare_to_references(
    {"a": 0.90, "b": 0.205},
    [
      {"metric": "a", "value": 0.905, "tolerance": 0.01},
      {"metric": "b", "value": 0.2, "higher_is_better": False, "tolerance": 0.01},
    ],
  )
  assert [r["verdict"] for r in near] == ["reproduced", "reproduced"]


def test_write_report(tmp_path):
  wd = str(tmp_path)
  os.makedirs(os.path.join(wd, "plots"))
  plot = os.path.join(wd, "plots", "loss.png")
  open(plot, "wb").close()
  per_class = report.per_class_from_metrics(SUMMARY, "test")
  assert per_class == {"cat": {"f1": 0.9}, "dog": {"f1": 0.8}}
  path = report.write_report(
    wd,
    experiment="resnet20_cifar10",
    config={"lr": 0.1},
    summary=SUMMARY,
    references=REFS,
    per_class=per_class,
    plots=[plot],
  )
  assert path == os.path.join(wd, "report.md")
  with open(path) as f:
    text = f.read()
  assert text.startswith("# resnet20_cifar10\n")
  assert "**1 of 3 published result(s) reproduced.**" in text
  assert (
    "| test/accuracy | 0.9250 | <https://arxiv.org/abs/1512.03385> | 0.9281 | +0.0031 "
    "| reproduced |"
  ) in text
  assert "| test/loss | 0.2000 | Table 2 \\| appendix | 0.2500 | +0.0500 | not reproduced |" in text
  assert "| test/top5 | 0.9900 | paper | — | — | missing |" in text
  assert "Reproduced means this run ≥ published (higher is better)." in text
  assert "Reproduced means this run ≤ published + 0.0100 (lower is better)." in text
  assert "| Steps | 5000 |" in text
  assert "| Train time | 3723.0 s (1:02:03) |" in text
  assert f"`{'f' * 64}`" in text and "| Device count | 8 |" in text and "TPU v4" in text
  # Final metrics table has the scalar metrics; per-class keys go to their own table.
  assert "| test/loss | 0.2500 |" in text and "| test/f1/cat |" not in text
  assert "| cat | 0.9000 |" in text
  assert "![loss](plots/loss.png)" in text
  assert '"lr": 0.1' in text


def test_flat_per_class_and_loop_facts(tmp_path):
  """The form the train loop passes: flat per-class keys, 'devices', workdir-relative plots."""
  wd = str(tmp_path)
  os.makedirs(os.path.join(wd, "plots"))
  open(os.path.join(wd, "plots", "accuracy.png"), "wb").close()
  summary = dict(SUMMARY, devices=8, processes=1, compile_seconds=4.0, **{"val/f1/cat": 0.7})
  del summary["device_count"]
  flat = {k: v for k, v in summary.items() if k.count("/") >= 2}
  path = report.write_report(
    wd,
    experiment="e",
    config={},
    summary=summary,
    references=[],
    per_class=flat,
    plots=["plots/accuracy.png"],
  )
  with open(path) as f:
    text = f.read()
  assert "_No published reference given._" in text
  assert "| Device count | 8 |" in text and "| Processes | 1 |" in text
  assert "| Compile time | 4.0 s (0:00:04) |" in text
  assert "| test/cat | 0.9000 |" in text and "| val/cat | 0.7000 |" in text
  assert "![accuracy](plots/accuracy.png)" in text
