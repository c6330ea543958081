"""Tests for the text data sets: tiny_shakespeare and imdb_reviews (local files, TFDS mock, errors)."""

import io
import os
import tarfile

import numpy as np
import pytest

from research.data import registry
from research.data.text import sources

SHAKESPEARE_CHARS = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@pytest.fixture
def isolated(tmp_path, monkeypatch):
  """Empty data dirs: no env data dir, TFDS pointed at an empty folder, no cached archive."""
  monkeypatch.delenv("RESEARCH_DATA_DIR", raising=False)
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  sources._read_tarball.cache_clear()
  return tmp_path


def _shakespeare_text(n=1003):
  rng = np.random.default_rng(0)
  return "".join(rng.choice(list(SHAKESPEARE_CHARS), n))


# --- tiny shakespeare ----------------------------------------------------------


def test_tiny_shakespeare_local_split_like_nanogpt(isolated, monkeypatch):
  text = _shakespeare_text(1003)
  (isolated / "tiny_shakespeare").mkdir()
  (isolated / "tiny_shakespeare" / "input.txt").write_text(text, encoding="utf-8")
  monkeypatch.setenv("RESEARCH_DATA_DIR", str(isolated))
  train = registry.get_source("tiny_shakespeare", "train")
  val = registry.get_source("tiny_shakespeare", "validation", data_dir=str(isolated))
  assert isinstance(train, sources.TextSource)
  assert train.text == text[:902] and val.text == text[902:]  # int(1003 * 0.9) = 902
  assert len(train) == 1 and set(train[0]) == {"text"}
  assert isinstance(train[0]["text"], np.str_) and train[0]["text"] == text[:902]
  assert train.features["text"].dtype == "str"
  with pytest.raises(IndexError):
    train[1]


def test_tiny_shakespeare_empty_file_is_an_error(isolated):
  (isolated / "tiny_shakespeare").mkdir()
  (isolated / "tiny_shakespeare" / "input.txt").write_text("")
  with pytest.raises(ValueError, match="input.txt is empty"):
    registry.get_source("tiny_shakespeare", "train", data_dir=str(isolated))


def test_tiny_shakespeare_missing_lists_what_was_tried(isolated):
  with pytest.raises(registry.DataNotFoundError) as e:
    registry.get_source("tiny_shakespeare", "train", data_dir=str(isolated), download=False)
  msg = str(e.value)
  for words in [
    "'tiny_shakespeare' split 'train' not found",
    f"{isolated}/tiny_shakespeare/input.txt does not exist",
    "(2) TFDS prepared data",
    "(3) TFDS download_and_prepare: skipped",
    "karpathy/char-rnn",
    "RESEARCH_DATA_DIR",
  ]:
    assert words in msg
  with pytest.raises(ValueError, match="no split 'test'.*'train', 'validation'"):
    registry.get_source("tiny_shakespeare", "test")


def _tfds_tiny_shakespeare_splits(text):
  """What TFDS's tiny_shakespeare builder stores: one example per split, cut 90/5/5."""
  i = int(len(text) * 0.9)
  train, rest = text[:i], text[i:]
  j = int(len(rest) * 0.5)
  return {"train": train, "validation": rest[:j], "test": rest[j:]}


def test_tiny_shakespeare_from_tfds_reconstructs_the_file(isolated):
  import tensorflow_datasets as tfds

  text = _shakespeare_text(2017)
  stored = _tfds_tiny_shakespeare_splits(text)
  opened = []

  def as_data_source(builder, split, **kwargs):
    assert builder.name == "tiny_shakespeare"
    opened.append(split)
    return [{"text": stored[split].encode("utf-8")}]  # TFDS returns Text as bytes

  with tfds.testing.mock_data(as_data_source_fn=as_data_source):
    train = registry.get_source("tiny_shakespeare", "train", data_dir=str(isolated), download=False)
    val = registry.get_source(
      "tiny_shakespeare", "validation", data_dir=str(isolated), download=False
    )
  assert opened == ["train", "validation", "test"] * 2
  # The same split as from the file itself: TFDS's train is nanoGPT's train.
  assert train.text == text[: int(2017 * 0.9)] == stored["train"]
  assert val.text == text[int(2017 * 0.9) :] == stored["validation"] + stored["test"]


def test_tiny_shakespeare_tfds_random_mock(isolated):
  import tensorflow_datasets as tfds

  with tfds.testing.mock_data(num_examples=3, policy=tfds.testing.MockPolicy.USE_CODE):
    whole = "".join(
      sources.as_text(ds[i]["text"])
      for s in ("train", "validation", "test")
      for ds in [tfds.data_source("tiny_shakespeare", split=s, download=False)]
      for i in range(len(ds))
    )
    train = registry.get_source("tiny_shakespeare", "train", data_dir=str(isolated))
  assert whole and train.text == whole[: int(len(whole) * 0.9)]


# --- IMDb ------------------------------------------------------------------------


# (split dir, kind, id, stars, text) of a tiny aclImdb copy.
REVIEWS = [
  ("train", "pos", 0, 9, "A fine film."),
  ("train", "pos", 10, 7, "  Loved it <br /><br />truly.\n"),
  ("train", "pos", 2, 10, "Caf\u00e9 scene was great."),
  ("train", "neg", 1, 1, "Awful."),
  ("train", "neg", 3, 4, "Not good."),
  ("test", "pos", 5, 8, "Good test review."),
  ("test", "neg", 6, 2, "Bad test review."),
  ("test", "neg", 7, 3, "Meh."),
]
UNSUP = [("train", "unsup", 0, 0, "No label here."), ("train", "unsup", 1, 0, "Nor here.")]
EXTRA = {
  "aclImdb/README": "readme",
  "aclImdb/imdb.vocab": "the\na\n",
  "aclImdb/train/urls_pos.txt": "http://x\n",
  "aclImdb/train/labeledBow.feat": "0 0:1\n",
}


def _files(unsup):
  files = {
    f"aclImdb/{s}/{k}/{i}_{r}.txt": t for s, k, i, r, t in REVIEWS + (UNSUP if unsup else [])
  }
  files.update(EXTRA)
  return files


def _write_tar(path, unsup=True):
  with tarfile.open(path, "w:gz") as tar:
    for name, text in sorted(_files(unsup).items(), reverse=True):  # order must not matter
      data = text.encode("utf-8")
      info = tarfile.TarInfo(name)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))


def _write_folder(root, unsup=True):
  for name, text in _files(unsup).items():
    path = os.path.join(root, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
      f.write(text)


def _expected(split):
  """(text, label, stars) in path order."""
  rows = {
    "train": [r for r in REVIEWS if r[0] == "train"],
    "test": [r for r in REVIEWS if r[0] == "test"],
    "unsupervised": UNSUP,
  }[split]
  rows = sorted(rows, key=lambda r: f"{r[1]}/{r[2]}_{r[3]}.txt")
  label = {"pos": 1, "neg": 0, "unsup": -1}
  return [(t.strip(), label[k], r if k != "unsup" else -1) for _, k, _, r, t in rows]


def _rows(source):
  return [
    (str(source[i]["text"]), int(source[i]["label"]), int(source[i]["stars"]))
    for i in range(len(source))
  ]


@pytest.mark.parametrize("layout", ["aclImdb_v1.tar.gz", "aclImdb_labelled.tar.gz", "folder"])
def test_imdb_local_copy(isolated, layout):
  directory = isolated / "imdb_reviews"
  directory.mkdir()
  if layout == "folder":
    _write_folder(str(directory))
  else:
    _write_tar(str(directory / layout))
  for split, n in (("train", 5), ("test", 3), ("unsupervised", 2)):
    source = registry.get_source("imdb_reviews", split, data_dir=str(isolated), download=False)
    assert len(source) == n and _rows(source) == _expected(split)
    ex = source[0]
    assert set(ex) == {"text", "label", "stars"} and isinstance(ex["text"], np.str_)
    assert ex["label"].dtype == np.int32 and ex["stars"].dtype == np.int32
  assert source.features["label"].num_classes == 2 and source.class_names == ["neg", "pos"]
  train = registry.get_source("imdb_reviews", "train", data_dir=str(isolated))
  assert train.labels.tolist() == [0, 0, 1, 1, 1]  # neg before pos (path order)
  assert "Caf\u00e9" in str(train[4]["text"])  # pos/0_9, pos/10_7, pos/2_10: string order


def test_imdb_tarball_is_read_once_for_all_splits(isolated):
  (isolated / "imdb_reviews").mkdir()
  _write_tar(str(isolated / "imdb_reviews" / "aclImdb_v1.tar.gz"))
  registry.get_source("imdb_reviews", "train", data_dir=str(isolated))
  registry.get_source("imdb_reviews", "test", data_dir=str(isolated))
  info = sources._read_tarball.cache_info()
  assert info.misses == 1 and info.hits == 1


@pytest.mark.parametrize("layout", ["tar", "folder"])
def test_imdb_without_unsup_goes_on_to_tfds(isolated, layout):
  directory = isolated / "imdb_reviews"
  directory.mkdir()
  if layout == "tar":
    _write_tar(str(directory / "aclImdb_labelled.tar.gz"), unsup=False)
  else:
    _write_folder(str(directory), unsup=False)
  assert len(registry.get_source("imdb_reviews", "train", data_dir=str(isolated))) == 5
  with pytest.raises(registry.DataNotFoundError) as e:
    registry.get_source("imdb_reviews", "unsupervised", data_dir=str(isolated), download=False)
  msg = str(e.value)
  assert "has no aclImdb/train/unsup/ reviews" in msg and "(2) TFDS prepared data" in msg
  assert "aclImdb_v1.tar.gz" in msg


def test_imdb_truncated_or_foreign_archive(isolated):
  directory = isolated / "imdb_reviews"
  directory.mkdir()
  path = directory / "aclImdb_v1.tar.gz"
  _write_tar(str(path))
  data = path.read_bytes()
  path.write_bytes(data[: len(data) // 2])
  with pytest.raises(
    ValueError,
    match="aclImdb_v1.tar.gz: cannot read the archive.*truncated or damaged, download it again",
  ):
    registry.get_source("imdb_reviews", "train", data_dir=str(isolated))
  with tarfile.open(path, "w:gz") as tar:
    info = tarfile.TarInfo("something/else.txt")
    tar.addfile(info, io.BytesIO(b""))
  with pytest.raises(ValueError, match="no aclImdb/.*not the IMDb"):
    registry.get_source("imdb_reviews", "train", data_dir=str(isolated))


def test_imdb_missing_lists_what_was_tried(isolated):
  (isolated / "imdb_reviews").mkdir()
  with pytest.raises(registry.DataNotFoundError) as e:
    registry.get_source("imdb_reviews", "test", data_dir=str(isolated), download=False)
  msg = str(e.value)
  assert "none of aclImdb/, aclImdb_labelled.tar.gz, aclImdb_v1.tar.gz in" in msg
  assert "ai.stanford.edu" in msg and "tfds build imdb_reviews" in msg


def test_imdb_from_tfds(isolated):
  import tensorflow_datasets as tfds

  stored = {
    "train": [(b"Great.", 1), (b"Bad.", 0)],
    "test": [(b"Fine.", 1)],
    "unsupervised": [(b"Who knows.", -1)],
  }

  def as_data_source(builder, split, **kwargs):
    assert builder.name == "imdb_reviews"
    return [{"text": t, "label": np.int64(label)} for t, label in stored[split]]

  with tfds.testing.mock_data(as_data_source_fn=as_data_source):
    for split, rows in stored.items():
      source = registry.get_source("imdb_reviews", split, data_dir=str(isolated), download=False)
      assert isinstance(source, sources.TfdsReviewSource)
      assert _rows(source) == [(t.decode(), label, -1) for t, label in rows]
      assert source[0]["label"].dtype == np.int32 and isinstance(source[0]["text"], np.str_)


def test_imdb_tfds_random_mock_and_download_step(isolated, monkeypatch):
  import tensorflow_datasets as tfds

  from research.data import tfds_source

  with tfds.testing.mock_data(num_examples=4, policy=tfds.testing.MockPolicy.USE_CODE):
    source = registry.get_source("imdb_reviews", "unsupervised", data_dir=str(isolated))
    assert len(source) == 4 and isinstance(source[3]["text"], np.str_)

    # Step 3: nothing prepared until download_and_prepare (a no-op under mock_data) ran.
    prepared = []
    real_open, real_download = tfds_source.open_prepared, tfds_source.download_and_prepare

    def open_prepared(*args):
      if not prepared:
        raise FileNotFoundError("nothing prepared")
      return real_open(*args)

    def download(*args):
      prepared.append(args[0])
      return real_download(*args)

    monkeypatch.setattr(tfds_source, "open_prepared", open_prepared)
    monkeypatch.setattr(tfds_source, "download_and_prepare", download)
    source = registry.get_source("imdb_reviews", "train", data_dir=str(isolated))
    assert prepared == ["imdb_reviews"] and len(source) == 4
