"""Interaction data: sources in their original formats, leakage-free splits,
train-only vocabularies, negatives that avoid positives, resumable sampling."""

import numpy as np
import pandas as pd
import pytest

from research.data import ops as pp_ops
from research.data import pipeline, registry
from research.data.recsys import dataset, sampling, sources, splits
from research.data.recsys.vocab import OOV, Vocab


def synthetic_log(n_users=30, n_items=40, per_user=12, seed=0):
  """A DataFrame user,item,rating,timestamp with distinct items per user."""
  rng = np.random.default_rng(seed)
  rows = []
  for u in range(n_users):
    items = rng.choice(n_items, per_user, replace=False)
    for k, i in enumerate(items):
      rows.append((u + 100, i + 1000, float(rng.integers(1, 6)), 10_000 + 100 * k + u))
  return pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])


@pytest.fixture(autouse=True)
def _fresh_cache():
  dataset._CACHE.clear()
  yield
  dataset._CACHE.clear()


def _data(tmp_path, **options):
  path = tmp_path / "log.csv"
  if not path.exists():
    synthetic_log().to_csv(path, index=False)
  return dataset.RecsysData.build(dict(source="csv", path=str(path), **options), None)


def _rows(part):
  return set(zip(part["user"].tolist(), part["item"].tolist(), part["timestamp"].tolist()))


@pytest.mark.parametrize("split_by", ["random", "leave_last_out", "time"])
def test_no_test_interaction_or_test_only_id_reaches_training(tmp_path, split_by):
  df = synthetic_log()
  # Users and items that exist only in the last interactions (test under every split).
  extra = pd.DataFrame([(999, 5000, 4.0, 99_999), (100, 5001, 3.0, 99_998)], columns=df.columns)
  df = pd.concat([df, extra])
  path = tmp_path / "log.csv"
  df.to_csv(path, index=False)
  source = dict(source="csv", path=str(path), split_by=split_by, test_fraction=0.2, seed=3)
  train, test = splits.split(
    sources.load("csv", path=str(path)).interactions, split_by, seed=3, test_fraction=0.2
  )
  raw_train = set(zip(train.user, train.item, train.timestamp))
  raw_test = set(zip(test.user, test.item, test.timestamp))
  assert not raw_train & raw_test and len(raw_train) + len(raw_test) == len(df)
  data = dataset.RecsysData.build(source, None)
  # The vocabularies hold exactly the training IDs.
  assert set(data.users.ids.tolist()) == set(train.user.tolist())
  assert set(data.items.ids.tolist()) == set(train.item.tolist())
  test_only_items = set(test.item.tolist()) - set(train.item.tolist())
  assert data.oov["oov_items"] == sum(1 for i in test.item if i in test_only_items)
  assert (data.train["item"] != OOV).all() and (data.train["user"] != OOV).all()
  if split_by == "time":  # those two rows are the latest: test, so never in the vocabulary
    assert 5000 not in data.items.ids and 999 not in data.users.ids
    assert data.oov["oov_users"] >= 1 and data.oov["oov_items"] >= 2
  if split_by == "leave_last_out":  # user 100's latest is 5001; 999's only row stays in train
    assert 5001 not in data.items.ids and 999 in data.users.ids


def test_leave_last_out_holds_out_each_users_latest(tmp_path):
  data = _data(tmp_path, split_by="leave_last_out")
  assert len(data.test["user"]) == 30
  for u, t in zip(data.test["user"], data.test["timestamp"]):
    assert t > data.train["timestamp"][data.train["user"] == u].max()


def test_vocab_maps_unknown_to_oov():
  v = Vocab(np.array([5, 3, 9]))
  assert v.size == 4
  np.testing.assert_array_equal(v.lookup(np.array([3, 5, 9, 7, 100])), [1, 2, 3, 0, 0])
  assert v.raw(np.array([2, 0])).tolist() == [5, None]


def test_sampled_negatives_never_include_the_users_positives(tmp_path):
  data = _data(tmp_path, split_by="leave_last_out")
  op = pp_ops.parse("sample_negatives(num=8)", context={"recsys": data})[0]
  batch = {"user": data.train["user"], "item": data.train["item"]}
  out = op.apply_batch(batch, np.random.default_rng(0))
  assert out["items"].shape == (len(batch["user"]), 9)
  np.testing.assert_array_equal(out["items"][:, 0], batch["item"])
  negs = out["items"][:, 1:]
  assert (negs > 0).all() and (negs < data.num_items).all()
  users = np.broadcast_to(batch["user"][:, None], negs.shape)
  assert not data.train_pairs.contains(users, negs).any()
  np.testing.assert_array_equal(out["labels"][:, 0], 1.0)
  assert out["labels"][:, 1:].sum() == 0


def test_ncf_candidates_exclude_positives_and_are_saved_and_reused(tmp_path):
  data = _data(tmp_path, split_by="leave_last_out")
  cands = data.candidates(20, workdir=str(tmp_path / "run"))
  assert cands.shape == (30, 21)
  np.testing.assert_array_equal(cands[:, 0], data.test["item"])
  users = np.broadcast_to(data.test["user"][:, None], cands[:, 1:].shape)
  assert not data.train_pairs.contains(users, cands[:, 1:]).any()
  assert (cands[:, 1:] != cands[:, :1]).all() and (cands[:, 1:] > 0).all()
  saved = np.load(tmp_path / "run" / dataset.CANDIDATES_FILE)
  np.testing.assert_array_equal(saved["candidates"], cands)
  # A fresh build (another model's run) reads the same candidates.
  dataset._CACHE.clear()
  again = _data(tmp_path, split_by="leave_last_out").candidates(20, workdir=str(tmp_path / "run"))
  np.testing.assert_array_equal(again, cands)


def test_negatives_are_redrawn_each_epoch_and_resume_exactly(tmp_path):
  data = _data(tmp_path, split_by="leave_last_out")
  source = dataset.get_source(
    "train",
    None,
    view="pointwise",
    source="csv",
    path=str(tmp_path / "log.csv"),
    split_by="leave_last_out",
  )
  ops = pp_ops.parse("sample_negatives(num=4)", context={"recsys": data})
  n = len(source)
  per_epoch = n // 30
  make = lambda: pipeline.train_iterator(
    source, global_batch_size=30, ops=ops, seed=1, shard=(0, 1)
  )
  it = make()
  batches = [next(it) for _ in range(per_epoch + 2)]
  state_after_one = None
  it2 = make()
  next(it2)
  state_after_one = it2.get_state()
  it3 = make()
  it3.set_state(state_after_one)
  for b in batches[1:4]:
    np.testing.assert_array_equal(next(it3)["items"], b["items"])
  # The same positives come back next epoch with different negatives.
  first = {
    (u, i): row
    for u, i, row in zip(batches[0]["user"], batches[0]["items"][:, 0], batches[0]["items"][:, 1:])
  }
  later = list(batches[per_epoch:])
  redrawn = [
    not np.array_equal(first[(u, i)], row)
    for b in later
    for u, i, row in zip(b["user"], b["items"][:, 0], b["items"][:, 1:])
    if (u, i) in first
  ]
  assert redrawn and np.mean(redrawn) > 0.5


def test_histories_are_time_ordered_and_left_padded():
  users = np.array([1, 1, 1, 2, 2])
  items = np.array([7, 8, 9, 4, 5])
  ts = np.array([30, 10, 20, 2, 1])
  hist, counts = sampling.histories(users, items, ts, 3, 4)
  np.testing.assert_array_equal(hist[1], [0, 8, 9, 7])
  np.testing.assert_array_equal(hist[2], [0, 0, 5, 4])
  hist, _ = sampling.histories(users, items, ts, 3, 2)
  np.testing.assert_array_equal(hist[1], [9, 7])
  assert counts.tolist() == [0, 3, 2]


def _write_formats(root):
  df = synthetic_log(n_users=6, n_items=10, per_user=4)
  d = root / "ml-100k"
  d.mkdir()
  df.to_csv(d / "u.data", sep="\t", header=False, index=False)
  df.iloc[:16].to_csv(d / "u1.base", sep="\t", header=False, index=False)
  df.iloc[16:].to_csv(d / "u1.test", sep="\t", header=False, index=False)
  with open(d / "u.item", "w", encoding="latin-1") as f:
    for i in range(1000, 1010):
      flags = "|".join("1" if g == i % 19 else "0" for g in range(19))
      f.write(f"{i}|Movie {i} (1995)|01-Jan-1995||http://x|{flags}\n")
  d = root / "ml-1m"
  d.mkdir()
  with open(d / "ratings.dat", "w") as f:
    for r in df.itertuples():
      f.write(f"{r.user}::{r.item}::{int(r.rating)}::{r.timestamp}\n")
  with open(d / "movies.dat", "w", encoding="latin-1") as f:
    for i in range(1000, 1010):
      f.write(f"{i}::Film {i} (1990)::Drama|Comedy\n")
  d = root / "ml-latest-small"
  d.mkdir()
  df.rename(columns={"user": "userId", "item": "movieId"}).to_csv(d / "ratings.csv", index=False)
  pd.DataFrame(
    {
      "movieId": range(1000, 1010),
      "title": [f"T{i} (2001)" for i in range(10)],
      "genres": "Action|Drama",
    }
  ).to_csv(d / "movies.csv", index=False)
  d = root / "ncf"
  d.mkdir()
  ncf = df.assign(user=df.user - 100, item=df.item - 1000)
  last = ncf.sort_values("timestamp").groupby("user").tail(1)
  ncf.drop(last.index).to_csv(d / "ml-1m.train.rating", sep="\t", header=False, index=False)
  last.to_csv(d / "ml-1m.test.rating", sep="\t", header=False, index=False)
  with open(d / "ml-1m.test.negative", "w") as f:
    for r in last.itertuples():
      negs = [i for i in range(10) if i not in set(ncf.item[ncf.user == r.user])][:3]
      f.write(f"({r.user},{r.item})\t" + "\t".join(map(str, negs)) + "\n")
  return df


@pytest.mark.parametrize(
  "source,options",
  [
    ("ml-100k", {}),
    ("ml-100k", {"fold": "u1", "split_by": "predefined"}),
    ("ml-1m", {}),
    ("ml-latest-small", {}),
    ("ncf", {"split_by": "predefined"}),
  ],
)
def test_original_file_formats_load(tmp_path, source, options):
  df = _write_formats(tmp_path)
  options = dict(dict(split_by="leave_last_out"), **options)
  train = registry.get_source(
    "movielens", "train", data_dir=str(tmp_path), view="ratings", source=source, **options
  )
  test = registry.get_source(
    "movielens", "test", data_dir=str(tmp_path), view="ratings", source=source, **options
  )
  assert len(train) + len(test) == len(df)
  data = train.recsys
  if source != "ncf":
    assert any(t for t in data.titles[1:]), "titles were read"
  if source == "ncf":
    cands = registry.get_source(
      "movielens", "test", data_dir=str(tmp_path), view="pointwise", source=source, **options
    )
    assert cands[0]["items"].shape == (4,)  # the positive + the file's 3 negatives


def test_bad_inputs_name_the_fix(tmp_path):
  with pytest.raises(FileNotFoundError, match="options.path"):
    sources.load("ml-1m", path=str(tmp_path / "nowhere"))
  (tmp_path / "x.csv").write_text("a,b\n1,2\n")
  with pytest.raises(ValueError, match="user_col"):
    sources.load("csv", path=str(tmp_path / "x.csv"))
  with pytest.raises(ValueError, match="split_by='predefined'"):
    _write_formats(tmp_path)
    dataset.RecsysData.build(dict(source="ncf", path=str(tmp_path / "ncf")), None)
  with pytest.raises(ValueError, match="valid"):
    registry.get_source("movielens", "train", view="nope")


def test_tfds_source_reads_mock_data(tmp_path, monkeypatch):
  tfds = pytest.importorskip("tensorflow_datasets")
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  with tfds.testing.mock_data(num_examples=40, policy=tfds.testing.MockPolicy.USE_CODE):
    loaded = sources.load("tfds", data_dir=None, tfds_name="movielens/100k-ratings")
  assert len(loaded.interactions) == 40
  with pytest.raises(ValueError, match="movielens"):
    sources.load("tfds", tfds_name="mnist")


@pytest.mark.parametrize("split_by", ["random", "leave_last_out"])
def test_validation_split_is_carved_from_training_and_never_reaches_it(tmp_path, split_by):
  data = _data(tmp_path, split_by=split_by, validation=True)
  plain = dataset.RecsysData.build(
    dict(source="csv", path=str(tmp_path / "log.csv"), split_by=split_by), None
  )
  train, val, test = _rows(data.train), _rows(data.validation), _rows(data.test)
  assert not train & val and not train & test and not val & test
  # Test is the same as without validation; train + validation = the old train.
  assert len(data.test["user"]) == len(plain.test["user"])
  assert len(data.train["user"]) + len(data.validation["user"]) == len(plain.train["user"])
  # Items seen only in validation are out of the vocabulary (index 0 there).
  raw_train_items = set(data.items.ids.tolist())
  assert (data.validation["item"] == OOV).sum() == sum(
    1 for i in data.items.raw(data.validation["item"]) if i is None
  )
  assert all(i in raw_train_items for i in data.items.raw(data.train["item"]))
  if split_by == "leave_last_out":
    # Scoring test, the user's validation item is known: excluded and in the history.
    users, _ = data.targets("test")
    seen = data.seen("test")[users]
    for u, row in zip(users[:5], seen[:5]):
      v_items = data.validation["item"][data.validation["user"] == u]
      assert set(v_items[v_items != OOV].tolist()) <= set(row.tolist())
    assert not set(data.seen("validation")[users[0]].tolist()) & set(
      data.validation["item"][data.validation["user"] == users[0]].tolist()
    ) - {0}
  with pytest.raises(ValueError, match="validation=True"):
    plain.part("validation")
