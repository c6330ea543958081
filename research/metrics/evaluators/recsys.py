"""Recommendation evaluators: 'rating' (RMSE/MAE) and 'ranking' (HR, NDCG, MRR@k)."""

from __future__ import annotations

import functools

import jax
import numpy as np

from research.metrics import ranking as _ranking
from research.metrics.evaluators.base import require_outputs, to_host


class RatingEvaluator:
  """Exact RMSE and MAE of predicted ratings over the whole split.

  predict_fn's 'logits' are predicted ratings float [b]; the batch holds
  'rating' float [b], 'user'/'item' int [b] (0 = unseen in training, counted
  as 'oov_users' / 'oov_items') and 'mask'. `clip` = (lo, hi) clips
  predictions to the rating scale first, as Surprise does.
  """

  def __init__(
    self,
    name: str,
    batches_fn,
    *,
    every_steps: int = 0,
    clip=None,
    rating_key: str = "rating",
    **unused,
  ):
    del unused  # e.g. topk from eval_config's defaults
    self.name, self.batches_fn, self.every_steps = name, batches_fn, int(every_steps)
    self.clip = None if clip is None else (float(clip[0]), float(clip[1]))
    self.rating_key = rating_key
    self._fn = jax.jit(functools.partial(_ranking.rating_sums, clip=self.clip))

  def run(self, predict_fn):
    totals = {"se": 0.0, "ae": 0.0, "count": 0.0, "oov_users": 0, "oov_items": 0}
    for batch in self.batches_fn():
      out = predict_fn(batch)
      require_outputs(out, ("logits", self.rating_key, "mask"), self.name)
      sums = jax.tree.map(to_host, self._fn(out["logits"], out[self.rating_key], out["mask"]))
      for k in ("se", "ae", "count"):
        totals[k] += float(sums[k])
      mask = np.asarray(batch["mask"], bool)
      totals["oov_users"] += int((np.asarray(batch["user"])[mask] == 0).sum())
      totals["oov_items"] += int((np.asarray(batch["item"])[mask] == 0).sum())
    n = totals["count"]
    if n == 0:
      raise ValueError(f"Evaluator {self.name!r}: batches_fn yielded no unmasked examples.")
    p = self.name
    return {
      f"{p}/rmse": float(np.sqrt(totals["se"] / n)),
      f"{p}/mae": totals["ae"] / n,
      f"{p}/num_examples": n,
      f"{p}/oov_users": totals["oov_users"],
      f"{p}/oov_items": totals["oov_items"],
    }, {}


class RankingEvaluator:
  """Exact HR@K, NDCG@K, Recall@K, MRR (and catalogue coverage@K under full
  ranking) over the whole split; see `research.metrics.ranking`.

  predict_fn's 'logits' are scores [b, C]; the batch holds 'targets' int
  [b, T] (-1 padded: candidate columns under the sampled protocol, item
  indices under full ranking), optionally 'exclude' int [b, S] (the user's
  training items, 0 padded; full ranking only) and 'mask'. Held-out items
  and users unseen in training (index 0) are counted ('oov_targets',
  'oov_users'); such targets can never be hit.

  full_ranking: True ranks every item (OOV column 0 and the excluded ones
  removed); False ranks the given candidates (NCF's 1 positive + 99 sampled).
  """

  def __init__(
    self,
    name: str,
    batches_fn,
    *,
    every_steps: int = 0,
    ks=(10,),
    full_ranking: bool = True,
    **unused,
  ):
    del unused
    self.name, self.batches_fn, self.every_steps = name, batches_fn, int(every_steps)
    self.ks = tuple(int(k) for k in ks)
    self.full_ranking = bool(full_ranking)

  def run(self, predict_fn):
    totals: dict[str, float] = {}
    seen: np.ndarray | None = None  # [n_items] bool, full ranking only: items in some top-k
    n_items, oov, oov_users = 0, 0, 0
    for batch in self.batches_fn():
      out = predict_fn(batch)
      require_outputs(out, ("logits", "targets", "mask"), self.name)
      scores = out["logits"]
      exclude = out.get("exclude") if self.full_ranking else None
      sums, top = _ranking.batch_ranking(
        scores,
        out["targets"],
        out["mask"],
        exclude,
        ks=self.ks,
        full_ranking=self.full_ranking,
        top=max(self.ks),
      )
      for k, v in jax.tree.map(to_host, sums).items():
        totals[k] = totals.get(k, 0.0) + float(v)
      mask = np.asarray(batch["mask"], bool)
      if "user" in batch:
        oov_users += int((np.asarray(batch["user"])[mask] == 0).sum())
      if self.full_ranking:
        n_items = scores.shape[1]
        if seen is None:
          seen = np.zeros(n_items, bool)
        seen[to_host(top)[mask].reshape(-1)] = True
        oov += int((np.asarray(batch["targets"])[mask] == 0).sum())
      elif "items" in batch:
        oov += int((np.asarray(batch["items"])[mask][:, 0] == 0).sum())
    n = totals.pop("count", 0.0)
    if n == 0:
      raise ValueError(f"Evaluator {self.name!r}: batches_fn yielded no unmasked examples.")
    p = self.name
    result = {f"{p}/{k}": v / n for k, v in totals.items()}
    result[f"{p}/num_examples"] = n
    result[f"{p}/oov_targets"] = oov
    result[f"{p}/oov_users"] = oov_users
    if seen is not None:  # full ranking
      result[f"{p}/coverage@{max(self.ks)}"] = float(seen[1:].sum() / max(n_items - 1, 1))
    return result, {}
