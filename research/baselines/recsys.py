"""Recommendation baselines, fitted on the run's training split and scored on its test split.

* 'global_mean': every rating predicted as the training mean.
* 'user_item_bias': mu + b_u + b_i with regularised biases fitted by
  alternating least squares on the training split (Koren 2010, Surprise's
  BaselineOnly defaults: reg_u=15, reg_i=10, 10 epochs). Unseen users/items
  get bias 0.
* 'popularity': items ranked by training interaction count. Under full
  ranking the user's training items are excluded (as for the models); under
  the sampled protocol the same 100 candidates are ranked.
"""

from __future__ import annotations

import numpy as np

from research.baselines.base import BaselineContext, register
from research.metrics import ranking


def _recsys(ctx: BaselineContext):
  source = ctx.data.raw(ctx.split)
  if not hasattr(source, "recsys"):
    raise ValueError(
      f"Recommendation baselines need config.data.name='movielens' (interaction "
      f"data); {ctx.config.data.name!r} has none."
    )
  return source, source.recsys


def _rating_metrics(pred, rating, clip):
  if clip is not None:
    pred = np.clip(pred, clip[0], clip[1])
  err = pred.astype(np.float64) - rating
  return {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err)))}


@register("global_mean")
def global_mean(ctx: BaselineContext, clip=None) -> dict[str, float]:
  _, r = _recsys(ctx)
  mu = float(r.train["rating"].mean())
  part = r.part(ctx.split)
  return _rating_metrics(np.full(len(part["rating"]), mu), part["rating"], clip)


def fit_biases(users, items, ratings, num_users, num_items, *, reg_u=15.0, reg_i=10.0, epochs=10):
  """ALS for mu + b_u + b_i: returns (mu, b_u float [num_users], b_i float [num_items])."""
  mu = float(ratings.mean())
  b_u, b_i = np.zeros(num_users), np.zeros(num_items)
  n_u = np.bincount(users, minlength=num_users)
  n_i = np.bincount(items, minlength=num_items)
  for _ in range(epochs):
    b_i = np.bincount(items, ratings - mu - b_u[users], minlength=num_items) / np.maximum(
      reg_i + n_i, 1e-9
    )
    b_u = np.bincount(users, ratings - mu - b_i[items], minlength=num_users) / np.maximum(
      reg_u + n_u, 1e-9
    )
  b_u[0] = b_i[0] = 0.0  # OOV
  return mu, b_u, b_i


@register("user_item_bias")
def user_item_bias(
  ctx: BaselineContext, reg_u=15.0, reg_i=10.0, epochs=10, clip=None
) -> dict[str, float]:
  _, r = _recsys(ctx)
  tr = r.train
  mu, b_u, b_i = fit_biases(
    tr["user"],
    tr["item"],
    tr["rating"].astype(np.float64),
    r.num_users,
    r.num_items,
    reg_u=reg_u,
    reg_i=reg_i,
    epochs=epochs,
  )
  te = r.part(ctx.split)
  return _rating_metrics(mu + b_u[te["user"]] + b_i[te["item"]], te["rating"], clip)


@register("popularity")
def popularity(ctx: BaselineContext, ks=(10,)) -> dict[str, float]:
  source, r = _recsys(ctx)
  counts = r.item_counts.astype(np.float32)
  n = len(source)
  batch = source.get_batch(np.arange(n))
  if "items" in batch:  # sampled protocol: rank the given candidates
    scores = counts[batch["items"]]
    return ranking.ranking_metrics_numpy(
      scores, batch["targets"], None, ks=tuple(ks), full_ranking=False
    )
  scores = np.broadcast_to(counts, (n, len(counts)))
  return ranking.ranking_metrics_numpy(
    scores, batch["targets"], batch["exclude"], ks=tuple(ks), full_ranking=True
  )
