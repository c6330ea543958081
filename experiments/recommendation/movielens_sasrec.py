"""SASRec (Kang & McAuley, ICDM 2018) on MovieLens: next-item prediction from the history.

Leave-last-out split; training predicts every next item of each user's
training sequence (last `max_len`) with one sampled negative per position
(BCE, as the paper), negatives re-drawn every epoch. Full-ranking evaluation
of the held-out item from the whole training history, training items
excluded; the popularity baseline is ranked the same way in the same run.

  python -m tools.train --config=experiments/recommendation/movielens_sasrec.py:sasrec --workdir=runs/ml_sasrec
"""

from experiments.recommendation import _common
from research.core import smoke
from research.core.config import ConfigDict, base_config, eval_config, parse_arg

VARIANTS = ("sasrec",)


def get_config(arg=None):
  arg = parse_arg(arg, variants=VARIANTS, max_len=50, **_common.ARGS)
  c = base_config()
  _common.data_config(c, arg, view="sequence", split_by="leave_last_out")
  c.steps_per_call = _common.STEPS_PER_CALL
  c.data.options.max_len = arg.max_len
  c.data.pp_train = "sequence_negatives(num=1)"
  c.task = ConfigDict(dict(name="pointwise", input_keys=("history", "candidates")))
  c.precision = "auto"  # bfloat16 compute on GPU/TPU, float32 on CPU
  c.model = ConfigDict(
    dict(
      name="sasrec",
      num_items=None,
      max_len=arg.max_len,
      dim=64,
      num_layers=2,
      num_heads=1,
      dropout=0.2,
    )
  )
  c.batch_size = 64
  c.eval_batch_size = 672  # 671 test users in one padded batch; divisible by 2 and 8 devices
  c.total_epochs = 150
  c.optimizer.name = "adam"
  c.optimizer.lr = 1e-3
  c.optimizer.b2 = 0.98
  c.log_every_steps = 100
  c.evals.test = eval_config("ranking", "test", every_epochs=25, ks=(10,), full_ranking=True)
  c.baselines.popularity = dict(type="popularity", split="test", ks=(10,))
  c.ckpt.every_epochs = 25
  _common.add_validation(c, arg, "ndcg@10", "max")
  if arg.smoke:
    smoke.shrink(c, model=dict(dim=8, num_layers=1))
  return c
