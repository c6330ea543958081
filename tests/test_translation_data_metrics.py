"""Paired-text sources (Multi30k layout) and sacreBLEU corpus scores."""

import gzip
import os

import numpy as np
import pytest
import sacrebleu

from research.data.core import DataNotFoundError
from research.data.text import pairs
from research.metrics import translation


def _write(directory, name, lines):
  with gzip.open(os.path.join(directory, name), "wt", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")


def test_multi30k_reads_aligned_raw_gzip_files(tmp_path):
  d = tmp_path / "multi30k"
  d.mkdir()
  _write(d, "val.en.gz", ["A dog runs.", "Two men talk."])
  _write(d, "val.de.gz", ["Ein Hund rennt.", "Zwei Männer reden."])
  src = pairs.multi30k("validation", str(tmp_path))
  assert len(src) == 2
  ex = src[1]
  assert str(ex["source"]) == "Two men talk." and str(ex["target"]) == "Zwei Männer reden."
  assert list(ex["references"]) == ["Zwei Männer reden."]
  rev = pairs.multi30k("validation", str(tmp_path), source_lang="de", target_lang="en")
  assert str(rev[0]["source"]) == "Ein Hund rennt."
  assert "Ein Hund rennt." in src.text and "A dog runs." in src.text


def test_multi30k_missing_or_misaligned_files_fail_with_one_clear_message(tmp_path):
  with pytest.raises(DataNotFoundError, match=r"test_2016_flickr\.en\[\.gz\]"):
    pairs.multi30k("test_2016_flickr", str(tmp_path))
  with pytest.raises(DataNotFoundError, match="RESEARCH_DATA_DIR"):
    pairs.multi30k("train", None)
  d = tmp_path / "multi30k"
  d.mkdir()
  _write(d, "train.en.gz", ["a", "b"])
  _write(d, "train.de.gz", ["a"])
  with pytest.raises(ValueError, match="line-aligned"):
    pairs.multi30k("train", str(tmp_path))


def test_text_pairs_reads_named_files(tmp_path):
  (tmp_path / "s.txt").write_text("x\ny\n")
  (tmp_path / "t.txt").write_text("X\nY\n")
  src = pairs.text_pairs("train", str(tmp_path), files={"train": ["s.txt", "t.txt"]})
  assert [str(src[i]["target"]) for i in range(2)] == ["X", "Y"]
  with pytest.raises(ValueError, match="no split 'test'"):
    pairs.text_pairs("test", str(tmp_path), files={"train": ["s.txt", "t.txt"]})


def test_corpus_scores_equal_sacrebleu_and_handle_several_references():
  hyps = ["the cat sat on the mat", "a dog runs in the park"]
  refs = [["the cat sat on the mat"], ["a dog is running in the park", "the dog runs in a park"]]
  got = translation.corpus_scores(hyps, refs)
  streams = [
    ["the cat sat on the mat", "a dog is running in the park"],
    [None, "the dog runs in a park"],
  ]
  assert got.bleu == pytest.approx(sacrebleu.corpus_bleu(hyps, streams).score)
  assert got.chrf == pytest.approx(sacrebleu.corpus_chrf(hyps, streams).score)
  assert got.bleu_signature.startswith("nrefs:var") and "tok:13a" in got.bleu_signature
  perfect = translation.corpus_scores(["five words are here now"], [["five words are here now"]])
  assert perfect.bleu == pytest.approx(100.0) and perfect.chrf == pytest.approx(100.0)
  with pytest.raises(ValueError, match="2 hypotheses for 1"):
    translation.corpus_scores(hyps, refs[:1])


def test_pair_source_checks_indices_and_keeps_given_references():
  src = pairs.PairSource(["a"], ["b"], name="t", references=[["b", "c"]])
  assert np.asarray(src[0]["references"]).tolist() == ["b", "c"]
  with pytest.raises(IndexError, match="out of range"):
    src[1]
