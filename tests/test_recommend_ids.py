"""tools.recommend shows the data set's own item IDs, each with its own title.

The interactions use raw IDs that are not 0..n-1 (101, 205, ...), so an ID
printed from a dense index, or a title taken from the neighbouring row,
cannot pass for the right one.
"""

import numpy as np
import pytest

from research.apps.recommend import recommend
from research.core import config as config_lib
from research.data.recsys import dataset, sources
from research.train import evaluate, loop

ITEMS = [101 + 104 * i for i in range(40)]  # 101, 205, 309, ...
USERS = [7 + 3 * u for u in range(25)]


def _title(item: int) -> str:
  return f"Film {item} ({1950 + item % 50})"


def _write_ml100k(folder) -> None:
  """u.item / u.data in ml-100k's own formats ('|' separated, tab separated)."""
  folder.mkdir()
  flags = "|".join(["0"] * len(sources.ML100K_GENRES))
  with open(folder / "u.item", "w", encoding="latin-1") as f:
    for item in ITEMS:
      f.write(f"{item}|{_title(item)}|01-Jan-1996||http://x|{flags}\n")
  rng = np.random.default_rng(0)
  with open(folder / "u.data", "w") as f:
    for user in USERS:
      for item in rng.choice(ITEMS, 12, replace=False):
        f.write(f"{user}\t{item}\t{rng.integers(1, 6)}\t{880000000 + rng.integers(0, 10**6)}\n")


def test_ml100k_item_metadata_is_keyed_by_the_raw_id(tmp_path):
  _write_ml100k(tmp_path / "ml-100k")
  items = sources.load("ml-100k", path=str(tmp_path / "ml-100k")).interactions.items
  assert list(items.index) == ITEMS
  assert [items.loc[i, "title"] for i in ITEMS] == [_title(i) for i in ITEMS]
  assert [items.loc[i, "year"] for i in ITEMS] == [1950 + i % 50 for i in ITEMS]


@pytest.fixture(scope="module")
def ml100k_run(tmp_path_factory):
  root = tmp_path_factory.mktemp("ml100k")
  _write_ml100k(root / "ml-100k")
  config = config_lib.load(
    f"recommendation/movielens_rating:mf,smoke=True,source=ml-100k,path={root / 'ml-100k'}",
    {"baselines": config_lib.ConfigDict()},
  )
  loop.run(config, str(root / "run"))
  return root / "run"


def test_recommend_prints_raw_ids_with_their_titles(ml100k_run):
  user, items = recommend(str(ml100k_run), str(USERS[3]), k=8)
  assert user == USERS[3] and len(items) == 8
  for item, title, score in items:
    assert item in ITEMS, item  # a raw ID, never a dense index
    assert title == _title(item)
    assert np.isfinite(score)
  # Unseen: none of the user's training items, compared as raw IDs.
  options = evaluate.load_workdir_config(str(ml100k_run)).data.options.to_dict()
  data = dataset.RecsysData.build(options, None)
  train_items = data.items.raw(
    data.train["item"][data.train["user"] == data.users.lookup(np.array([USERS[3]]))[0]]
  )
  assert len(train_items) and not {item for item, _, _ in items} & set(train_items)
