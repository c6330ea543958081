"""Translation and summarization experiments end to end in tiny mode, on tiny
local copies of Multi30k and AESLC in their original layouts; then
tools.translate on the trained workdir."""

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile

import pytest

from research.core import config as config_lib
from research.train import loop

pytestmark = pytest.mark.slow

EN = ["A dog runs on the grass.", "Two men talk in a park.", "A girl plays with a red ball."]
WORDS = [
  "gas",
  "power",
  "trading",
  "desk",
  "contract",
  "price",
  "market",
  "deal",
  "energy",
  "report",
  "meeting",
  "call",
  "office",
  "houston",
  "london",
  "weekly",
  "monthly",
  "forecast",
  "volume",
  "credit",
  "risk",
  "legal",
  "draft",
  "approval",
  "update",
]
DE = [
  "Ein Hund rennt auf dem Gras.",
  "Zwei Männer reden in einem Park.",
  "Ein Mädchen spielt mit einem roten Ball.",
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("data")
  m30k = root / "multi30k"
  m30k.mkdir()
  for stem, n in (("train", 30), ("val", 6), ("test_2016_flickr", 6), ("test_2017_flickr", 6)):
    for lang, lines in (("en", EN), ("de", DE)):
      with gzip.open(m30k / f"{stem}.{lang}.gz", "wt", encoding="utf-8") as f:
        f.write("\n".join(lines[i % 3] for i in range(n)) + "\n")
  (root / "aeslc").mkdir()
  with tarfile.open(root / "aeslc" / "aeslc.tar.gz", "w:gz") as tar:
    for folder, n in (("train", 24), ("dev", 5), ("test", 5)):
      for i in range(n):
        topic = ["budget", "contract", "schedule"][i % 3]
        extra = " ".join(WORDS[(i * 7 + k) % len(WORDS)] for k in range(12))
        body = f"Please review the {topic} today. {extra}. Thanks,"
        text = f"{body}\n\n@subject\n{['Budget', 'Contract', 'Schedule'][i % 3]}\n"
        if folder != "train":
          text += "".join(
            f"\n@ann{k}\nreview {['budget', 'contract', 'schedule'][i % 3]}\n" for k in range(3)
          )
        data = text.encode()
        info = tarfile.TarInfo(f"enron_subject_line/{folder}/email_{i}.subject")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
  return root


@pytest.mark.parametrize(
  "spec", ["nlp/multi30k:transformer_cpu,smoke=True", "nlp/aeslc:transformer_cpu,smoke=True"]
)
def test_tiny_run_decodes_and_scores_every_eval_split(spec, data_dir, tmp_path, monkeypatch):
  monkeypatch.setenv("RESEARCH_DATA_DIR", str(data_dir))
  config = config_lib.load(spec)
  if "aeslc" in spec:  # the tiny mode's vocabulary fits the real corpus; this one fills 64
    config.data.tokenizer.vocab_size = 64
  workdir = tmp_path / "run"
  loop.run(config, str(workdir))
  summary = json.loads((workdir / "summary.json").read_text())
  if "multi30k" in spec:
    for name, n in (("val", 6), ("test_2016", 6), ("test_2017", 6)):
      assert summary[f"{name}/num_examples"] == n and 0 <= summary[f"{name}/bleu"] <= 100
    assert "val_loss/loss" in summary
  else:
    assert summary["test/num_examples"] == 5
    assert {"test/rouge1", "test/rouge1_multi", "test/rouge2_multimax"} <= set(summary)
    baselines = json.loads((workdir / "baselines.json").read_text())
    assert baselines["lead"]["test/rouge1"] > 0  # "Please review the budget today" vs "Budget"
  report = (workdir / "report.md").read_text()
  assert "## Decoded examples" in report


def test_translate_tool_decodes_a_file_with_the_run(data_dir, tmp_path):
  env = dict(os.environ, RESEARCH_DATA_DIR=str(data_dir))
  workdir = tmp_path / "m30k"
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  train = [
    sys.executable,
    "-m",
    "tools.train",
    "--config=experiments/nlp/multi30k.py:transformer_cpu,smoke=True",
    f"--workdir={workdir}",
    "--config.progress=False",
  ]
  subprocess.run(train, cwd=root, env=env, check=True, capture_output=True)
  src = tmp_path / "in.en"
  src.write_text("A dog runs.\nTwo men talk.\n")
  out = tmp_path / "out.de"
  cmd = [
    sys.executable,
    "-m",
    "tools.translate",
    f"--workdir={workdir}",
    f"--input={src}",
    f"--output={out}",
    "--method=greedy",
    "--max_decode_len=6",
  ]
  subprocess.run(cmd, cwd=root, env=env, check=True, capture_output=True)
  assert len(out.read_text().splitlines()) == 2
  bad = subprocess.run(
    cmd[:4] + ["--input=/no/such/file"], cwd=root, env=env, capture_output=True, text=True
  )
  assert (
    bad.returncode == 2
    and bad.stderr.strip().startswith("error:")
    and "/no/such/file" in bad.stderr
  )
