"""Two-tower retrieval on MovieLens: in-batch sampled softmax with the log-Q correction.

Leave-last-out split; full-ranking evaluation (every item except the user's
training items), HR@10 / NDCG@10 / MRR / catalogue coverage; the popularity
baseline is ranked the same way in the same run. Features (`two_tower`):
item genres (multi-hot) and release-year bucket, and the user's genre profile
(share of the user's training interactions per genre); `no_features` uses IDs only.

  python -m tools.train --config=experiments/recommendation/movielens_two_tower.py:two_tower --workdir=runs/ml_two_tower
"""

from experiments.recommendation import _common
from research.core import smoke
from research.core.config import ConfigDict, base_config, eval_config, parse_arg

VARIANTS = ("two_tower", "no_features")


def get_config(arg=None):
  arg = parse_arg(arg, variants=VARIANTS, **_common.ARGS)
  c = base_config()
  _common.data_config(c, arg, view="retrieval", split_by="leave_last_out")
  c.steps_per_call = _common.STEPS_PER_CALL
  c.task = ConfigDict(
    dict(name="in_batch_softmax", input_keys=("user", "item"), logq_correction=True)
  )
  c.model = ConfigDict(
    dict(
      name="two_tower",
      num_users=None,
      num_items=None,
      dim=64,
      hidden=(128,),
      temperature=0.05,
      use_item_features=arg.variant == "two_tower",
      use_user_features=arg.variant == "two_tower",
      item_genres=None,
      item_year=None,
      user_genres=None,
    )
  )
  c.batch_size = 512
  c.eval_batch_size = 672  # 671 test users in one padded batch; divisible by 2 and 8 devices
  c.total_epochs = 10
  c.optimizer.name = "adam"
  c.optimizer.lr = 1e-3
  c.log_every_steps = 100
  c.evals.test = eval_config("ranking", "test", every_epochs=2, ks=(10,), full_ranking=True)
  c.baselines.popularity = dict(type="popularity", split="test", ks=(10,))
  c.ckpt.every_epochs = 2
  _common.add_validation(c, arg, "ndcg@10", "max")
  if arg.smoke:
    smoke.shrink(c, model=dict(dim=8, hidden=(8,)))
  return c
