"""Text data sets: 'tiny_shakespeare' and 'imdb_reviews' (registered in `registry.DATASETS`).

Resolution order, as for the vision sets (`research.data.registry`), first hit
wins; `data_dir` is the argument, else env RESEARCH_DATA_DIR:

  1. a local copy of the original files in `<data_dir>/<name>/`:
     * tiny_shakespeare: `input.txt` (karpathy/char-rnn's file, 1,115,394
       characters);
     * imdb_reviews: the unpacked `aclImdb/` folder, else `aclImdb_labelled.tar.gz`,
       else `aclImdb_v1.tar.gz` (the original Stanford archive), read without
       unpacking. A copy that exists but is damaged raises ValueError.
  2. TFDS prepared data (`tfds.data_source(..., download=False)`) in `data_dir`
     if it holds a TFDS layout, else TFDS_DATA_DIR, else ~/tensorflow_datasets.
  3. TFDS download-and-prepare (skipped with option `download=False`).
  If all fail: `DataNotFoundError` listing everything tried.

tiny_shakespeare: splits 'train' / 'validation' exactly as nanoGPT's
shakespeare_char: the first `int(n * 0.9)` characters train, the rest
validation (1,003,854 / 111,540 characters). TFDS stores the same file cut
90/5/5 into train/validation/test, one example each; concatenating those three
texts in that order gives the file back exactly (TFDS's builder slices
`text[:i]`, `text[i:][:j]`, `text[i:][j:]` and stores them unchanged), and the
same `int(n * 0.9)` then gives the same two splits. Source: `TextSource`, one
example `{'text': np.str_}`; the whole split's text is `source.text`.

imdb_reviews: splits 'train' (25,000), 'test' (25,000) and 'unsupervised'
(50,000; `aclImdb/train/unsup/`, absent from the labelled-only archive, where
the search goes on to TFDS). Examples: `{'text': np.str_, 'label': int32 []
(1 = pos, 0 = neg, -1 = unsupervised), 'stars': int32 [] (the 1..10 rating from
the file name `<id>_<stars>.txt`; -1 where unknown: unsupervised reviews, and
every TFDS example, because TFDS drops the file name)}`. Text is the file's
bytes stripped of surrounding whitespace and decoded as UTF-8, as TFDS does.
Local copies are ordered by path (neg before pos, then by file name); TFDS
examples come in TFDS's own order.
"""

from __future__ import annotations

import functools
import os
import re
import tarfile
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from research.data import tfds_source
from research.data.core import Feature

SHAKESPEARE_SPLITS = ("train", "validation")
SHAKESPEARE_FILE = "input.txt"
SHAKESPEARE_TRAIN_FRACTION = 0.9

IMDB_SPLITS = ("train", "test", "unsupervised")
IMDB_CLASSES = ["neg", "pos"]
IMDB_FOLDER = "aclImdb"
IMDB_TARBALLS = ("aclImdb_labelled.tar.gz", "aclImdb_v1.tar.gz")

TEXT = Feature((), "str")  # a np.str_ scalar
SHAKESPEARE_FEATURES = {"text": TEXT}
IMDB_FEATURES = {"text": TEXT, "label": Feature((), "int32", 2), "stars": Feature((), "int32")}

_HOW_TO_GET = {
  "tiny_shakespeare": (
    "put input.txt from https://raw.githubusercontent.com/karpathy/char-rnn/master/data/"
    "tinyshakespeare/input.txt in <dir>/tiny_shakespeare/ and set RESEARCH_DATA_DIR=<dir> "
    "(or pass data_dir)"
  ),
  "imdb_reviews": (
    "put aclImdb_v1.tar.gz from https://ai.stanford.edu/~amaas/data/sentiment/ (or its "
    "unpacked aclImdb/ folder) in <dir>/imdb_reviews/ and set RESEARCH_DATA_DIR=<dir> (or "
    "pass data_dir)"
  ),
}


def as_text(value: Any) -> str:
  """A text value as str: str / np.str_, UTF-8 bytes (TFDS's Text feature), or 0-d arrays of those."""
  if isinstance(value, np.ndarray) and value.ndim == 0:
    value = value.item()
  if isinstance(value, bytes):
    return value.decode("utf-8")
  if isinstance(value, str):
    return str(value)
  raise TypeError(f"Expected text (str or UTF-8 bytes), got {type(value).__name__}.")


# --- DataSources ---------------------------------------------------------------


class TextSource:
  """A `DataSource` with one example: `{'text': np.str_}`, the whole split's text.

  `text` holds the same string, for readers that want it directly (e.g. to
  tokenize it once into an `LMWindows` stream).
  """

  def __init__(self, text: str, *, name: str):
    self.text = text
    self.name = name
    self.features = dict(SHAKESPEARE_FEATURES)

  def __len__(self) -> int:
    return 1

  def __getitem__(self, index: int) -> dict[str, np.ndarray | np.generic]:
    if index not in (0, -1):
      raise IndexError(f"{self.name}: index {index} out of range for 1 example.")
    return {"text": np.str_(self.text)}

  def __repr__(self) -> str:
    return f"TextSource({self.name!r}, {len(self.text)} characters)"


class ReviewSource:
  """In-memory reviews: `{'text': np.str_, 'label': int32 [], 'stars': int32 []}`.

  Args:
    texts: one string per review.
    labels, stars: int arrays `[len(texts)]`.
    name: shown in errors and `repr`.
  """

  def __init__(self, texts: Sequence[str], labels: np.ndarray, stars: np.ndarray, *, name: str):
    self._texts = list(texts)
    self._labels = np.asarray(labels, np.int32)
    self._stars = np.asarray(stars, np.int32)
    if not len(self._texts) == len(self._labels) == len(self._stars):
      raise ValueError(
        f"{name}: {len(self._texts)} texts, {len(self._labels)} labels and "
        f"{len(self._stars)} star ratings; they must match."
      )
    self.name = name
    self.features = dict(IMDB_FEATURES)
    self.class_names = list(IMDB_CLASSES)

  @property
  def labels(self) -> np.ndarray:
    """int32 `[n]` (read-only view): 1 = pos, 0 = neg, -1 = unsupervised."""
    view = self._labels.view()
    view.flags.writeable = False
    return view

  def __len__(self) -> int:
    return len(self._texts)

  def __getitem__(self, index: int) -> dict[str, np.ndarray | np.generic]:
    n = len(self)
    if not -n <= index < n:
      raise IndexError(f"{self.name}: index {index} out of range for {n} examples.")
    return {
      "text": np.str_(self._texts[index]),
      "label": self._labels[index],
      "stars": self._stars[index],
    }

  def __repr__(self) -> str:
    return f"ReviewSource({self.name!r}, n={len(self)})"


class TfdsReviewSource:
  """`DataSource` adapter over TFDS's imdb_reviews split (decoded lazily per example).

  Same keys as `ReviewSource`; `stars` is -1 (TFDS does not keep the rating).
  """

  def __init__(self, tfds_split: Any, *, name: str):
    self._source = tfds_split
    self.name = name
    self.features = dict(IMDB_FEATURES)
    self.class_names = list(IMDB_CLASSES)

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, index: int) -> dict[str, np.ndarray | np.generic]:
    n = len(self)
    if not -n <= index < n:
      raise IndexError(f"{self.name}: index {index} out of range for {n} examples.")
    example = self._source[int(index) % n]
    return {
      "text": np.str_(as_text(example["text"])),
      "label": np.int32(example["label"]),
      "stars": np.int32(-1),
    }

  def __repr__(self) -> str:
    return f"TfdsReviewSource({self.name!r}, n={len(self)})"


# --- resolution order ------------------------------------------------------------------


def _resolve(
  name: str,
  split: str,
  data_dir: str | None,
  *,
  local: Callable[[str], Any],
  from_tfds: Callable[[Callable[[str], Any]], Any],
  tfds_splits: Sequence[str],
  download: bool,
) -> Any:
  """Steps 1-3 of the module docstring for one data set.

  Args:
    local: `<data_dir>/<name>` -> source; FileNotFoundError means "not here,
      go on", ValueError (damaged copy) propagates.
    from_tfds: given `open_split(tfds_split_name) -> tfds data source`, builds
      the source.
    tfds_splits: the TFDS splits `from_tfds` opens (named in the tried-list).
  """
  tried: list[str] = []
  if data_dir:
    directory = os.path.join(data_dir, name)
    try:
      return local(directory)
    except FileNotFoundError as e:
      tried.append(f"(1) local raw copy {directory}: {e}")
  else:
    tried.append(
      f"(1) local raw copy <data_dir>/{name}/: skipped, no data_dir given and "
      "RESEARCH_DATA_DIR is not set"
    )

  tfds_dir = tfds_source.tfds_dir_for(name, data_dir)

  def open_split(tfds_split: str) -> Any:
    return tfds_source.open_prepared(name, tfds_split, tfds_dir)

  def download_then_open() -> Any:
    # Prepares every split of the data set; the first is just what it opens.
    tfds_source.download_and_prepare(name, tfds_splits[0], tfds_dir)
    return from_tfds(open_split)

  source = tfds_source.open_or_download(
    name,
    tfds_dir,
    call=(
      f"tfds.data_source({name!r}, split={'/'.join(tfds_splits)!r}, data_dir={tfds_dir!r}, "
      "download=False)"
    ),
    open_fn=lambda: from_tfds(open_split),
    download_fn=download_then_open,
    download=download,
    tried=tried,
  )
  if source is None:
    raise tfds_source.not_found(name, split, tried, _HOW_TO_GET[name])
  return source


def _check_split(name: str, split: str, valid: Sequence[str]) -> None:
  if split not in valid:
    raise ValueError(f"Data set {name!r} has no split {split!r}; valid splits: {list(valid)}.")


# --- tiny shakespeare ----------------------------------------------------------------


def split_shakespeare(text: str, split: str) -> str:
  """nanoGPT's split of the whole text: `[:int(n*0.9)]` train, the rest validation."""
  _check_split("tiny_shakespeare", split, SHAKESPEARE_SPLITS)
  i = int(len(text) * SHAKESPEARE_TRAIN_FRACTION)
  return text[:i] if split == "train" else text[i:]


def read_shakespeare(directory: str) -> str:
  """The whole text of `<directory>/input.txt`.

  Raises:
    FileNotFoundError: no such file.
    ValueError: the file is empty or not UTF-8.
  """
  path = os.path.join(directory, SHAKESPEARE_FILE)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path} does not exist")
  try:
    # Text mode, like nanoGPT's prepare.py (so '\r\n' would read as '\n').
    with open(path, encoding="utf-8") as f:
      text = f.read()
  except UnicodeDecodeError as e:
    raise ValueError(
      f"{path}: not UTF-8 text ({e}); the file is damaged or not tiny "
      "shakespeare, download it again."
    ) from None
  if not text:
    raise ValueError(f"{path} is empty; download it again.")
  return text


def tiny_shakespeare(split: str, data_dir: str | None, *, download: bool = True) -> TextSource:
  """The 'tiny_shakespeare' `TextSource` for `split` (module docstring: where from, how split)."""
  _check_split("tiny_shakespeare", split, SHAKESPEARE_SPLITS)
  name = f"tiny_shakespeare:{split}"

  def local(directory: str) -> TextSource:
    return TextSource(split_shakespeare(read_shakespeare(directory), split), name=name)

  def from_tfds(open_split) -> TextSource:
    parts: list[str] = []
    for tfds_split in ("train", "validation", "test"):
      ds = open_split(tfds_split)
      parts.extend(as_text(ds[i]["text"]) for i in range(len(ds)))
    return TextSource(split_shakespeare("".join(parts), split), name=name)

  return _resolve(
    "tiny_shakespeare",
    split,
    data_dir,
    local=local,
    from_tfds=from_tfds,
    tfds_splits=("train", "validation", "test"),
    download=download,
  )


# --- IMDb ----------------------------------------------------------------------------


# aclImdb/<train|test>/<pos|neg|unsup>/<id>_<stars>.txt, optionally under a prefix ('./').
_IMDB_PATH = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg|unsup)/(\d+)_(\d+)\.txt$")
_IMDB_LABELS = {"neg": 0, "pos": 1, "unsup": -1}


def _imdb_split(set_name: str, kind: str) -> str | None:
  """Which of our splits a file in `aclImdb/<set_name>/<kind>/` belongs to (None: none)."""
  if kind == "unsup":
    return "unsupervised" if set_name == "train" else None
  return set_name


def _decode_review(data: bytes, where: str) -> str:
  try:
    return data.strip().decode("utf-8")
  except UnicodeDecodeError as e:
    raise ValueError(
      f"{where}: review is not UTF-8 ({e}); the copy is damaged, download it again."
    ) from None


_Records = dict[str, list[tuple[str, str, int, int]]]  # split -> [(path, text, label, stars)]


def _add_record(records: _Records, path: str, data_fn: Callable[[], bytes], where: str) -> None:
  m = _IMDB_PATH.search(path)
  if not m:
    return
  set_name, kind, _, stars = m.groups()
  split = _imdb_split(set_name, kind)
  if split is None:
    return
  label = _IMDB_LABELS[kind]
  # Unsupervised files are named <id>_0.txt: no rating.
  stars_value = int(stars) if label >= 0 else -1
  records[split].append((path, _decode_review(data_fn(), where), label, stars_value))


def _finish(records: _Records, where: str) -> _Records:
  if not records["train"] and not records["test"]:
    raise ValueError(
      f"{where} holds no aclImdb/{{train,test}}/{{pos,neg}}/<id>_<stars>.txt "
      "reviews; it is not the IMDb (aclImdb) data or it is damaged. Download "
      "aclImdb_v1.tar.gz again."
    )
  for split_records in records.values():
    split_records.sort(key=lambda r: r[0])
  return records


@functools.lru_cache(maxsize=1)
def _read_tarball(path: str, mtime_ns: int, size: int) -> _Records:
  """Every review in the .tar.gz at `path`, streamed (never unpacked to disk).

  Cached on (path, mtime, size): the archive must be decompressed in full
  whichever split is asked for, so 'train' then 'test' costs one pass.
  """
  del mtime_ns, size  # cache key only
  records: _Records = {s: [] for s in IMDB_SPLITS}
  try:
    # 'r|gz': one sequential pass; random-access mode would seek back through gzip.
    with tarfile.open(path, "r|gz") as tar:
      for member in tar:
        if not member.isfile() or not member.name.endswith(".txt"):
          continue

        def read(member=member) -> bytes:
          f = tar.extractfile(member)
          return f.read() if f is not None else b""

        _add_record(records, member.name, read, f"{path}:{member.name}")
  except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
    raise ValueError(
      f"{path}: cannot read the archive ({type(e).__name__}: {e}); it is "
      "truncated or damaged, download it again."
    ) from None
  return _finish(records, path)


def _read_folder(folder: str, split: str) -> _Records:
  """The reviews of `split` in an unpacked `aclImdb/` folder (only that split's files are read)."""
  records: _Records = {s: [] for s in IMDB_SPLITS}
  set_name, kinds = {
    "train": ("train", ("neg", "pos")),
    "test": ("test", ("neg", "pos")),
    "unsupervised": ("train", ("unsup",)),
  }[split]
  # Check the labelled part exists even for 'unsupervised', so a wrong folder is named as such.
  for check in ("train", "test"):
    if not os.path.isdir(os.path.join(folder, check)):
      raise ValueError(
        f"{folder} has no {check}/ folder; it is not an unpacked aclImdb/ "
        "folder, or it is incomplete. Unpack aclImdb_v1.tar.gz again."
      )
  for kind in kinds:
    sub = os.path.join(folder, set_name, kind)
    if not os.path.isdir(sub):
      if kind == "unsup":
        break
      raise ValueError(
        f"{sub} is missing; the aclImdb/ folder is incomplete. Unpack aclImdb_v1.tar.gz again."
      )
    for filename in os.listdir(sub):
      path = f"{IMDB_FOLDER}/{set_name}/{kind}/{filename}"
      full = os.path.join(sub, filename)

      def read(full=full) -> bytes:
        with open(full, "rb") as f:
          return f.read()

      _add_record(records, path, read, full)
  if split != "unsupervised":
    return _finish(records, folder)
  for split_records in records.values():
    split_records.sort(key=lambda r: r[0])
  return records


def find_imdb(directory: str) -> str:
  """The aclImdb folder or tarball in `directory`, in the order of the module docstring.

  Raises:
    FileNotFoundError: none of them, listing what was looked for.
  """
  candidates = [os.path.join(directory, IMDB_FOLDER)] + [
    os.path.join(directory, t) for t in IMDB_TARBALLS
  ]
  for candidate in candidates:
    if os.path.exists(candidate):
      return candidate
  raise FileNotFoundError(f"none of {IMDB_FOLDER}/, {', '.join(IMDB_TARBALLS)} in {directory}")


def read_imdb(directory: str, split: str) -> ReviewSource:
  """`split` of the local IMDb copy in `directory` (folder or tarball; see `find_imdb`).

  Raises:
    FileNotFoundError: no copy, or a copy without `split` (the labelled-only
      archive has no 'unsupervised').
    ValueError: a damaged copy.
  """
  _check_split("imdb_reviews", split, IMDB_SPLITS)
  path = find_imdb(directory)
  if os.path.isdir(path):
    records = _read_folder(path, split)
  else:
    stat = os.stat(path)
    records = _read_tarball(os.path.abspath(path), stat.st_mtime_ns, stat.st_size)
  rows = records[split]
  if not rows:
    raise FileNotFoundError(
      f"{path} has no {IMDB_FOLDER}/train/unsup/ reviews (the "
      f"{split!r} split); the labelled-only copy leaves them out"
    )
  _, texts, labels, stars = zip(*rows)
  return ReviewSource(texts, np.array(labels), np.array(stars), name=f"imdb_reviews:{split}")


def imdb_reviews(split: str, data_dir: str | None, *, download: bool = True) -> Any:
  """The 'imdb_reviews' source for `split` (module docstring: where from, example keys)."""
  _check_split("imdb_reviews", split, IMDB_SPLITS)

  def from_tfds(open_split) -> TfdsReviewSource:
    return TfdsReviewSource(open_split(split), name=f"imdb_reviews:{split}")

  return _resolve(
    "imdb_reviews",
    split,
    data_dir,
    local=lambda d: read_imdb(d, split),
    from_tfds=from_tfds,
    tfds_splits=(split,),
    download=download,
  )
