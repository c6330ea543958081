"""AESLC (Zhang and Tetreault, ACL 2019): email body -> subject line.

Read like IMDb, first hit wins, from `<data_dir>/aeslc/`:
  1. `aeslc.tar.gz` (or any `*.tar.gz` holding `enron_subject_line/`), read in
     memory without unpacking;
  2. an unpacked `enron_subject_line/{train,dev,test}/*.subject` folder;
  3. TFDS prepared `aeslc` data (`email_body`, `subject_line`; no annotations).
Splits: 'train' (14,436), 'validation' (the folder dev, 1,960), 'test' (1,906).

Each `.subject` file holds the body, then `@subject` and the original subject
line; dev and test files add three human-written subject lines `@ann0..2`.
Examples are `research.data.text.pairs.PairSource` rows:
  source = the body; target = the original subject line, which is what TFDS's
  `aeslc` builder yields as `subject_line` (and so what PEGASUS scored);
  references = the three annotations on dev/test (the paper's multi-reference
  evaluation), `[target]` on train.
Files are read in sorted name order so every run sees the same order.
"""

from __future__ import annotations

import glob
import os
import re
import tarfile

from research.data.core import DataNotFoundError
from research.data.text.pairs import PairSource

SPLITS = ("train", "validation", "test")
FOLDERS = {"train": "train", "validation": "dev", "test": "test"}
SIZES = {"train": 14436, "validation": 1960, "test": 1906}
_MARKER = re.compile(r"^@(subject|ann\d+)\s*$", re.M)


def parse(text: str, name: str = "") -> tuple[str, str, list[str]]:
  """One `.subject` file -> (body, subject, [annotations]).

  Whitespace inside each part is kept except leading/trailing blank lines.
  """
  parts = _MARKER.split(text)
  if len(parts) < 3 or parts[1] != "subject":
    raise ValueError(f"AESLC file {name or '?'}: no '@subject' line.")
  body, fields = parts[0].strip(), dict(zip(parts[1::2], (p.strip() for p in parts[2::2])))
  annotations = [fields[k] for k in sorted(fields) if k.startswith("ann")]
  return body, fields["subject"], annotations


def _source(split: str, files: list[tuple[str, str]]) -> PairSource:
  bodies, subjects, references = [], [], []
  for name, text in files:
    body, subject, annotations = parse(text, name)
    bodies.append(body)
    subjects.append(subject)
    references.append(annotations if split != "train" and annotations else [subject])
  return PairSource(bodies, subjects, references=references, name=f"aeslc:{split}")


def _from_archive(path: str, split: str) -> PairSource:
  folder = f"enron_subject_line/{FOLDERS[split]}/"
  files = []
  with tarfile.open(path, "r:gz") as tar:
    for member in tar:
      if member.isfile() and folder in member.name and member.name.endswith(".subject"):
        f = tar.extractfile(member)
        assert f is not None  # a regular file always has contents
        files.append((os.path.basename(member.name), f.read().decode("utf-8")))
  if not files:
    raise ValueError(f"{path}: no {folder}*.subject files; not the AESLC archive?")
  return _source(split, sorted(files))


def _from_folder(directory: str, split: str) -> PairSource:
  paths = sorted(glob.glob(os.path.join(directory, FOLDERS[split], "*.subject")))
  if not paths:
    raise FileNotFoundError(f"{directory}/{FOLDERS[split]}/ has no *.subject files")
  files = []
  for p in paths:
    with open(p, encoding="utf-8") as f:
      files.append((os.path.basename(p), f.read()))
  return _source(split, files)


def aeslc(split: str, data_dir: str | None, *, download: bool = False) -> PairSource:
  """The AESLC split as a `PairSource`; `DataNotFoundError` listing what was tried."""
  tried = []
  if data_dir:
    root = os.path.join(data_dir, "aeslc")
    archives = sorted(glob.glob(os.path.join(root, "*.tar.gz")))
    for path in archives:
      return _from_archive(path, split)
    tried.append(f"(1) archive {root}/*.tar.gz: none")
    for folder in (os.path.join(root, "enron_subject_line"), root):
      try:
        return _from_folder(folder, split)
      except FileNotFoundError as e:
        tried.append(f"(2) folder: {e}")
  else:
    tried.append("(1-2) local copy: skipped, no data_dir and RESEARCH_DATA_DIR is not set")
  try:
    return _from_tfds(split, data_dir, download)
  except Exception as e:  # noqa: BLE001  # any TFDS failure is reported with the rest
    tried.append(f"(3) TFDS aeslc: {type(e).__name__}: {str(e)[:300]}")
  raise DataNotFoundError(
    f"Data set 'aeslc' split {split!r} not found. Tried:\n  - "
    + "\n  - ".join(tried)
    + "\nTo get it: put aeslc.tar.gz (a tar of github.com/ryanzhumich/AESLC's "
    "enron_subject_line/ folder) in <dir>/aeslc/ and set RESEARCH_DATA_DIR=<dir>."
  )


def _from_tfds(split: str, data_dir: str | None, download: bool) -> PairSource:
  from research.data import tfds_source

  tfds_dir = tfds_source.tfds_dir_for("aeslc", data_dir)
  ds = (
    tfds_source.download_and_prepare("aeslc", split, tfds_dir)
    if download
    else tfds_source.open_prepared("aeslc", split, tfds_dir)
  )
  bodies, subjects = [], []
  for i in range(len(ds)):
    ex = ds[i]
    bodies.append(_text(ex["email_body"]).strip())
    subjects.append(_text(ex["subject_line"]).strip())
  return PairSource(bodies, subjects, name=f"aeslc:{split}")


def _text(x) -> str:
  return x.decode("utf-8") if isinstance(x, bytes) else str(x)
