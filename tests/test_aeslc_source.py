"""AESLC: archive in memory, unpacked folder and TFDS give the same pairs."""

import io
import tarfile

import numpy as np
import pytest

from research.data.core import DataNotFoundError
from research.data.text import aeslc

FILES = {
  "train/a_1.subject": "Please send the report.\nThanks,\n\n@subject\nReport\n",
  "train/b_2.subject": "Lunch at noon?\n\n@subject\nLunch\n",
  "dev/c_3.subject": (
    "Meeting moved to 3pm.\nRoom EB 32.\n\n@subject\nMeeting change\n\n"
    "@ann0\nmeeting moved\n\n@ann1\nnew meeting time\n\n@ann2\nmeeting at 3pm\n"
  ),
  "test/d_4.subject": "Budget attached.\n\n@subject\nBudget\n\n@ann0\nbudget\n\n@ann1\nbudget file\n\n@ann2\nthe budget\n",
}


def _archive(path):
  with tarfile.open(path, "w:gz") as tar:
    for name, text in sorted(FILES.items()):
      data = text.encode()
      info = tarfile.TarInfo(f"enron_subject_line/{name}")
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))


def _rows(src):
  return [
    (str(src[i]["source"]), str(src[i]["target"]), [str(r) for r in src[i]["references"]])
    for i in range(len(src))
  ]


def test_parse_splits_body_subject_and_annotations():
  body, subject, anns = aeslc.parse(FILES["dev/c_3.subject"])
  assert body == "Meeting moved to 3pm.\nRoom EB 32."
  assert subject == "Meeting change"
  assert anns == ["meeting moved", "new meeting time", "meeting at 3pm"]
  with pytest.raises(ValueError, match="no '@subject'"):
    aeslc.parse("just a body")


def test_archive_and_folder_agree_and_references_are_the_annotations(tmp_path):
  (tmp_path / "a" / "aeslc").mkdir(parents=True)
  _archive(tmp_path / "a" / "aeslc" / "aeslc.tar.gz")
  folder = tmp_path / "f" / "aeslc" / "enron_subject_line"
  for name, text in FILES.items():
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
  for split, n in (("train", 2), ("validation", 1), ("test", 1)):
    from_archive = aeslc.aeslc(split, str(tmp_path / "a"))
    from_folder = aeslc.aeslc(split, str(tmp_path / "f"))
    assert len(from_archive) == n and _rows(from_archive) == _rows(from_folder)
  train = _rows(aeslc.aeslc("train", str(tmp_path / "a")))
  assert train[0] == ("Please send the report.\nThanks,", "Report", ["Report"])
  (_body, subject, refs) = _rows(aeslc.aeslc("validation", str(tmp_path / "a")))[0]
  assert subject == "Meeting change" and refs == [
    "meeting moved",
    "new meeting time",
    "meeting at 3pm",
  ]


def test_tfds_path_reads_prepared_aeslc(tmp_path):
  import tensorflow_datasets as tfds

  def as_data_source(builder, split, **kwargs):
    del kwargs
    assert builder.name == "aeslc"
    return [{"email_body": b"Body text.\n", "subject_line": f"Subject {split}".encode()}]

  with tfds.testing.mock_data(as_data_source_fn=as_data_source):
    src = aeslc.aeslc("test", str(tmp_path))
  assert _rows(src) == [("Body text.", "Subject test", ["Subject test"])]
  assert isinstance(src[0]["source"], np.str_)


def test_nothing_found_lists_what_was_tried(tmp_path, monkeypatch):
  from research.data import tfds_source

  def fail(*args, **kwargs):
    raise FileNotFoundError("no prepared aeslc")

  monkeypatch.setattr(tfds_source, "open_prepared", fail)
  with pytest.raises(DataNotFoundError, match=r"(?s)archive.*folder.*TFDS aeslc.*aeslc.tar.gz"):
    aeslc.aeslc("train", str(tmp_path))
