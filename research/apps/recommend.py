"""Top-K recommendations from a trained recommendation workdir.

Rebuilds the run from its own config.json (same data, split and training-only
vocabulary), restores a checkpoint, scores every item of the catalogue for
one user and returns the best K the user has no training interaction with.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from research.core import config as config_lib
from research.train import builder
from research.train.evaluate import load_workdir_config, restore_variables


def score_items(
  model_name: str, model, variables, data, user: int, max_len: int | None = None
) -> np.ndarray:
  """Scores float [num_items] of every item index for user index `user`."""
  n = data.num_items
  if model_name == "biased_mf":
    x = {"user": jnp.full((n,), user, jnp.int32), "item": jnp.arange(n, dtype=jnp.int32)}
    return np.asarray(model.apply(variables, x))
  if model_name == "ncf":
    x = {"user": jnp.array([user], jnp.int32), "items": jnp.arange(n, dtype=jnp.int32)[None]}
    return np.asarray(model.apply(variables, x))[0]
  if model_name == "two_tower":
    return np.asarray(model.apply(variables, {"user": jnp.array([user], jnp.int32)}))[0]
  if model_name == "sasrec":
    history = data.history(max_len)[user][None]
    return np.asarray(model.apply(variables, {"history": jnp.asarray(history)}))[0]
  raise ValueError(
    f"Model {model_name!r} is not a recommendation model; tools.recommend "
    "works with biased_mf, ncf, two_tower and sasrec workdirs."
  )


def recommend(workdir: str, user: str, *, k: int = 10, checkpoint: str = "best"):
  """Returns (raw user ID, [(raw item ID, title, score)] of the top `k` unseen items)."""
  config = load_workdir_config(workdir)
  config_lib.validate(config)
  if config.data.format != "interactions":
    raise ValueError(f"{workdir} is not a recommendation run (data.format={config.data.format!r}).")
  run = builder.build(config, workdir=workdir)
  data = run.data.recsys
  ids = data.users.ids
  raw: str | int = user
  if np.issubdtype(ids.dtype, np.integer):
    try:
      raw = int(user)
    except ValueError:
      raise ValueError(f"--user={user!r}: user IDs of this data set are integers.") from None
  index = int(data.users.lookup(np.array([raw]))[0])
  if index == 0:
    raise ValueError(
      f"User {user!r} has no training interactions in this run's split (IDs "
      f"range over {ids[0]}..{ids[-1]}, {len(ids)} users); no recommendations."
    )
  _, variables = restore_variables(workdir, config, checkpoint)
  max_len = config.model.get("max_len")
  scores = score_items(config.model.name, run.model, variables, data, index, max_len)
  scores = scores.astype(np.float64)
  scores[0] = -np.inf  # OOV
  seen = data.train["item"][data.train["user"] == index]
  scores[seen] = -np.inf
  top = np.argsort(-scores, kind="stable")[:k]
  top = top[np.isfinite(scores[top])]
  return raw, [
    (data.items.raw(np.array([i]))[0], str(data.titles[i]), float(scores[i])) for i in top
  ]
