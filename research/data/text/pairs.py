"""Paired text (translation, summarization): `{'source': str, 'target': str}` examples.

Data sets:
* 'multi30k': Multi30k task 1 (Elliott et al. 2016), English <-> German image
  descriptions, read from the raw (cased, untokenised) gzip files of the
  official repository in `<data_dir>/multi30k/`: `train`, `val`,
  `test_2016_flickr`, `test_2017_flickr` x `.en.gz` / `.de.gz` (plain `.en` /
  `.de` files work too), line i of X.en translating line i of X.de.
  Splits: 'train' (29,000), 'validation' (the files named val, 1,014),
  'test_2016_flickr' (1,000, the usual test set), 'test_2017_flickr' (1,000).
  Options `source_lang` / `target_lang` ('en' / 'de' by default).
* 'text_pairs': any line-aligned pair of text files per split, named by the
  option `files={split: [source_path, target_path]}` (gzip read by suffix).

Every example also carries `references`, the tuple of reference targets
(one here; AESLC-style multi-reference data carry several), so evaluators
score against the raw text, never against a tokenised or truncated copy.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from research.data.core import DataNotFoundError, Feature

MULTI30K_SPLITS = ("train", "validation", "test_2016_flickr", "test_2017_flickr")
MULTI30K_FILES = {
  "train": "train",
  "validation": "val",
  "test_2016_flickr": "test_2016_flickr",
  "test_2017_flickr": "test_2017_flickr",
}
MULTI30K_SIZES = {
  "train": 29000,
  "validation": 1014,
  "test_2016_flickr": 1000,
  "test_2017_flickr": 1000,
}
LANGUAGES = ("en", "de", "fr", "cs")
FEATURES = {
  "source": Feature((), "str"),
  "target": Feature((), "str"),
  "references": Feature((None,), "str"),
  "index": Feature((), "int32"),
}


class PairSource:
  """In-memory aligned pairs: `source[i]` = {'source', 'target': np.str_,
  'references': np.str_ [R] (R = 1 unless `references` is given), 'index':
  int32 i}. The index travels through the pipeline, so an evaluator pairs each
  decoded output with its raw references (`self.references[index]`) whatever
  order or process the batch came from.

  Args:
    sources, targets: one string per example, aligned.
    references: optional, per example a sequence of reference targets (the
      first is usually `targets[i]`); default `[targets[i]]`.
    name: shown in errors and `repr`.
  """

  def __init__(
    self,
    sources: Sequence[str],
    targets: Sequence[str],
    *,
    name: str,
    references: Sequence[Sequence[str]] | None = None,
  ):
    if len(sources) != len(targets):
      raise ValueError(
        f"{name}: {len(sources)} source lines but {len(targets)} target lines; "
        "paired files must be line-aligned."
      )
    self.sources, self.targets = list(sources), list(targets)
    self.references = (
      [tuple(r) for r in references] if references is not None else [(t,) for t in self.targets]
    )
    if len(self.references) != len(self.sources):
      raise ValueError(f"{name}: {len(self.references)} reference lists for {len(self)} pairs.")
    self.name = name
    self.features = dict(FEATURES)

  def __len__(self) -> int:
    return len(self.sources)

  def __getitem__(self, index: int) -> dict[str, Any]:
    n = len(self)
    if not -n <= index < n:
      raise IndexError(f"{self.name}: index {index} out of range for {n} examples.")
    return {
      "source": np.str_(self.sources[index]),
      "target": np.str_(self.targets[index]),
      "references": np.asarray(self.references[index], dtype=np.str_),
      "index": np.int32(index % n),
    }

  @property
  def text(self) -> str:
    """Both sides, one line each: what a joint tokenizer is trained on."""
    return "\n".join(self.sources + self.targets)

  def __repr__(self) -> str:
    return f"PairSource({self.name!r}, n={len(self)})"


def read_lines(path: str) -> list[str]:
  """Lines of a UTF-8 text file (gzip when the name ends in .gz), without newlines."""
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "rt", encoding="utf-8") as f:
    return [line.rstrip("\n").rstrip("\r") for line in f]


def _find(directory: str, stem: str, lang: str) -> str | None:
  for name in (f"{stem}.{lang}.gz", f"{stem}.{lang}"):
    path = os.path.join(directory, name)
    if os.path.exists(path):
      return path
  return None


def multi30k(
  split: str, data_dir: str | None, *, source_lang: str = "en", target_lang: str = "de"
) -> PairSource:
  """The Multi30k task-1 split as a `PairSource` (see the module docstring)."""
  for option, lang in (("source_lang", source_lang), ("target_lang", target_lang)):
    if lang not in LANGUAGES:
      raise ValueError(f"multi30k option {option}={lang!r}; valid: {list(LANGUAGES)}.")
  if source_lang == target_lang:
    raise ValueError("multi30k: source_lang and target_lang must differ.")
  if not data_dir:
    raise DataNotFoundError(
      "Data set 'multi30k' needs a local copy: put the raw task-1 files (train.en.gz, "
      "train.de.gz, val.*, test_2016_flickr.*) from github.com/multi30k/dataset "
      "(data/task1/raw/) in <dir>/multi30k/ and set RESEARCH_DATA_DIR=<dir> (or data_dir)."
    )
  directory = os.path.join(data_dir, "multi30k")
  stem = MULTI30K_FILES[split]
  source_path, target_path = (_find(directory, stem, lang) for lang in (source_lang, target_lang))
  if source_path is None or target_path is None:
    missing = [
      f"{stem}.{lang}[.gz]"
      for lang, p in ((source_lang, source_path), (target_lang, target_path))
      if p is None
    ]
    raise DataNotFoundError(
      f"Data set 'multi30k' split {split!r}: {', '.join(missing)} not in {directory}/. "
      "Copy the raw task-1 files of github.com/multi30k/dataset (data/task1/raw/) there."
    )
  sources, targets = read_lines(source_path), read_lines(target_path)
  return PairSource(sources, targets, name=f"multi30k:{split}:{source_lang}-{target_lang}")


def text_pairs(
  split: str, data_dir: str | None, *, files: Mapping[str, Sequence[str]]
) -> PairSource:
  """Any aligned pair of files: `files={split: [source_path, target_path]}`.

  Relative paths are read under `data_dir` when one is set.
  """
  if split not in files:
    raise ValueError(f"text_pairs: option files has no split {split!r}; it has {sorted(files)}.")
  pair = list(files[split])
  if len(pair) != 2:
    raise ValueError(f"text_pairs: files[{split!r}] must be [source_path, target_path].")
  paths = [p if os.path.isabs(p) or not data_dir else os.path.join(data_dir, p) for p in pair]
  for p in paths:
    if not os.path.exists(p):
      raise FileNotFoundError(f"text_pairs split {split!r}: {p} does not exist.")
  return PairSource(read_lines(paths[0]), read_lines(paths[1]), name=f"text_pairs:{split}")
