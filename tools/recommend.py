"""Print the top-K items a trained recommender suggests for a user (training items excluded).

python -m tools.recommend --workdir=runs/ml_two_tower --user=1 --k=10 [--checkpoint=latest]
"""

from absl import flags

from research.apps import cli
from research.platforms import xla_flags

_WORKDIR = flags.DEFINE_string("workdir", None, "A recommendation workdir written by tools.train.")
_USER = flags.DEFINE_string("user", None, "Raw user ID as in the data (e.g. MovieLens userId).")
_K = flags.DEFINE_integer("k", 10, "How many items.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", "best", "'best', 'latest' or a step.")
flags.mark_flags_as_required(["workdir", "user"])


def main(argv):
  del argv
  xla_flags.apply()
  from research.apps.cli import quiet_logs
  from research.apps.recommend import recommend

  quiet_logs()
  user, items = recommend(_WORKDIR.value, _USER.value, k=_K.value, checkpoint=_CHECKPOINT.value)
  print(f"Top {len(items)} unseen items for user {user} ({_WORKDIR.value}):")
  for rank, (item, title, score) in enumerate(items, start=1):
    print(f"{rank:3d}. {title or '(no title)'}  [item {item}, score {score:.4f}]")


if __name__ == "__main__":
  cli.run(main)
