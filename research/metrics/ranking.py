"""Exact rating and ranking metrics for recommendation, vectorised in JAX.

Per batch the jitted functions return *sums* over real (mask=True) rows;
evaluators add them up over the whole evaluation set on the host (float64)
and divide once at the end, so nothing is dropped and padding never counts.

Ranking: each row has scores over C candidates and T target columns
(-1 = padding). Under full ranking, column 0 (the OOV item) and the
`exclude`d columns (the user's training items) can never be recommended. A
target's rank is the number of other rankable candidates scoring at least as
high (ties count against the target, so a constant model scores 0, not 1);
an unrankable target (OOV, excluded) never hits. With one target per row
Recall@K equals HR@K.

  HR@K     1 if some target ranks < K
  Recall@K (targets ranked < K) / (number of targets)
  NDCG@K   sum over targets ranked < K of 1/log2(rank + 2), divided by the
           ideal DCG of min(T, K) targets
  MRR      1 / (best target rank + 1)
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

NEG = -jnp.inf


def rating_sums(
  pred: jax.Array, rating: jax.Array, mask: jax.Array, clip: tuple[float, float] | None = None
) -> dict[str, jax.Array]:
  """pred, rating float [b], mask bool [b] -> {'se', 'ae', 'count'} sums over real rows."""
  pred = pred.astype(jnp.float32)
  if clip is not None:
    pred = jnp.clip(pred, clip[0], clip[1])
  m = mask.astype(jnp.float32)
  err = pred - rating.astype(jnp.float32)
  return {"se": jnp.sum(err**2 * m), "ae": jnp.sum(jnp.abs(err) * m), "count": m.sum()}


def target_ranks(scores: jax.Array, targets: jax.Array, rankable: jax.Array) -> jax.Array:
  """0-based ranks float [b, T] of the target columns among the rankable ones
  (inf for padding targets (-1) and unrankable ones).

  Args:
    scores: float [b, C].
    targets: int [b, T], column indices, -1 = padding.
    rankable: bool [b, C].
  """
  s = jnp.where(rankable, scores.astype(jnp.float32), NEG)
  t = jnp.maximum(targets, 0)
  t_score = jnp.take_along_axis(s, t, axis=1)  # [b, T]
  t_ok = (targets >= 0) & jnp.take_along_axis(rankable, t, axis=1)
  # Count via a sorted row: O(C log C + T log C) instead of a [b, T, C] compare.
  sorted_s = jnp.sort(s, axis=1)
  n = s.shape[1]
  ge = n - jax.vmap(lambda row, q: jnp.searchsorted(row, q, side="left"))(sorted_s, t_score)
  rank = (ge - 1).astype(jnp.float32)  # minus the target itself
  return jnp.where(t_ok, rank, jnp.inf)


def ranking_sums(
  scores: jax.Array, targets: jax.Array, mask: jax.Array, rankable: jax.Array, ks: Sequence[int]
) -> dict[str, jax.Array]:
  """Sums over real rows of hr@K, recall@K, ndcg@K per K, mrr, and 'count'.

  scores float [b, C]; targets int [b, T]; mask bool [b]; rankable bool [b, C].
  """
  rank = target_ranks(scores, targets, rankable)
  m = mask.astype(jnp.float32)
  num_t = jnp.maximum((targets >= 0).sum(1), 1).astype(jnp.float32)
  out = {"count": m.sum(), "mrr": jnp.sum(m / (jnp.min(rank, axis=1) + 1.0))}
  for k in ks:
    hit = rank < k
    gains = jnp.where(hit, 1.0 / jnp.log2(jnp.where(hit, rank, 0.0) + 2.0), 0.0)
    ideal_n = jnp.minimum(num_t, k)
    ideal = jnp.sum(
      jnp.where(
        jnp.arange(k)[None, :] < ideal_n[:, None], 1.0 / jnp.log2(jnp.arange(k)[None, :] + 2.0), 0.0
      ),
      1,
    )
    out[f"hr@{k}"] = jnp.sum(m * hit.any(1))
    out[f"recall@{k}"] = jnp.sum(m * hit.sum(1) / num_t)
    out[f"ndcg@{k}"] = jnp.sum(m * gains.sum(1) / ideal)
  return out


def full_ranking_rankable(num_items: int, exclude: jax.Array | None) -> jax.Array:
  """bool [b, num_items]: every item but OOV (0) and the row's `exclude` (int [b, S], 0-padded)."""
  b = 1 if exclude is None else exclude.shape[0]
  ok = jnp.ones((b, num_items), bool).at[:, 0].set(False)
  if exclude is not None:
    ok = ok.at[jnp.arange(b)[:, None], exclude].set(False)
  return ok


@functools.partial(jax.jit, static_argnames=("ks", "full_ranking", "top"))
def batch_ranking(scores, targets, mask, exclude=None, *, ks=(10,), full_ranking=True, top=10):
  """One evaluation batch: (sums, top-`top` item indices int [b, top] or None)."""
  if full_ranking:
    rankable = full_ranking_rankable(scores.shape[1], exclude)
    rankable = jnp.broadcast_to(rankable, scores.shape)
  else:
    rankable = jnp.ones(scores.shape, bool)
  sums = ranking_sums(scores, targets, mask, rankable, ks)
  top_items = None
  if full_ranking:
    top_items = jax.lax.top_k(jnp.where(rankable, scores.astype(jnp.float32), NEG), top)[1]
  return sums, top_items


def ranking_metrics_numpy(
  scores: np.ndarray,
  targets: np.ndarray,
  exclude: np.ndarray | None,
  *,
  ks=(10,),
  full_ranking=True,
  batch: int = 256,
) -> dict[str, float]:
  """The same metrics for host arrays (baselines), batched; plus coverage@max(ks)."""
  totals: dict[str, float] = {}
  seen = np.zeros(scores.shape[1], bool)
  top = max(ks)
  for s in range(0, len(scores), batch):
    sl = slice(s, s + batch)
    sums, items = batch_ranking(
      jnp.asarray(scores[sl]),
      jnp.asarray(targets[sl]),
      jnp.ones(len(scores[sl]), bool),
      None if exclude is None else jnp.asarray(exclude[sl]),
      ks=tuple(ks),
      full_ranking=full_ranking,
      top=top,
    )
    for k, v in sums.items():
      totals[k] = totals.get(k, 0.0) + float(v)
    if items is not None:
      seen[np.asarray(items).reshape(-1)] = True
  count = totals.pop("count")
  out = {k: v / count for k, v in totals.items()}
  if full_ranking:
    out[f"coverage@{top}"] = float(seen[1:].sum() / max(scores.shape[1] - 1, 1))
  return out
