"""Training-time negative sampling for interaction data.

Both ops need the run's `RecsysData` (the training pairs to exclude, the item
count), passed as context key 'recsys' by `research.data.build` for
`config.data.format='interactions'`. They are random ops: the pipeline hands
each batch a generator derived from (seed, batch number), so negatives are
re-drawn every epoch and a resumed run redraws exactly the same ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from research.data.ops import base
from research.data.ops.text import uses_context
from research.data.recsys import sampling


def _needs_recsys(spec: str) -> base.NamedOp:
  def fn(example, rng):
    raise ValueError(
      f"Op '{spec}' was built without the run's interaction data; use it with "
      "config.data.format='interactions' "
      "(ops.parse(spec, context={'recsys': ...}))."
    )

  return base.NamedOp(spec, fn, random=True)


def _per_example(batch_fn):
  """The per-example form of a batched op: a batch of one."""

  def fn(example, rng):
    out = batch_fn({k: np.asarray(v)[None] for k, v in example.items()}, rng)
    return {k: v[0] for k, v in out.items()}

  return fn


def _check_num(spec: str, num: Any) -> None:
  if not isinstance(num, int) or num < 1:
    raise ValueError(f"{spec}: num must be a positive int.")


def _with_negatives(positives: np.ndarray, negatives: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """positives int [...], negatives int [..., num] -> (candidates int32 [..., 1 + num]
  with the positive first, labels float32 [..., 1 + num]: 1 on the positive, 0 elsewhere)."""
  candidates = np.concatenate([positives[..., None].astype(np.int32), negatives], axis=-1)
  labels = np.zeros(candidates.shape, np.float32)
  labels[..., 0] = 1.0
  return candidates, labels


@uses_context("recsys")
def sample_negatives(num: int = 4, *, recsys: Any = None) -> base.NamedOp:
  """{'user' [b], 'item' [b]} -> {'user', 'items' int32 [b, 1 + num] (the positive
  first, then `num` items the user has no training interaction with),
  'labels' float32 [b, 1 + num] (1, 0, ..., 0)}: pointwise training with
  sampled negatives (NCF: 4 per positive)."""
  spec = base.spec_string("sample_negatives", num=num)
  _check_num(spec, num)
  if recsys is None:
    return _needs_recsys(spec)

  def batch_fn(batch, rng):
    users = base.get(batch, "user", spec)
    items = base.get(batch, "item", spec)
    negs = sampling.sample_negatives(users, num, recsys.num_items, recsys.train_pairs, rng)
    out = {k: v for k, v in batch.items() if k != "item"}
    out["items"], out["labels"] = _with_negatives(items, negs)
    return out

  return base.NamedOp(spec, _per_example(batch_fn), random=True, batch_fn=batch_fn)


@uses_context("recsys")
def sequence_negatives(num: int = 1, *, recsys: Any = None) -> base.NamedOp:
  """{'user' [b], 'history' [b, L], 'targets' [b, L]} -> adds 'candidates' int32
  [b, L, 1 + num] (the next item, then `num` negatives never in the user's
  training items), 'labels' float32 [b, L, 1 + num] and 'weights' float32
  [b, L] (1 where a real item predicts a real next item). SASRec's BCE
  training with one negative per position (Kang & McAuley 2018)."""
  spec = base.spec_string("sequence_negatives", num=num)
  _check_num(spec, num)
  if recsys is None:
    return _needs_recsys(spec)

  def batch_fn(batch, rng):
    users = base.get(batch, "user", spec)
    history = base.get(batch, "history", spec)
    targets = base.get(batch, "targets", spec)
    users_bl = np.broadcast_to(users[:, None], targets.shape)
    negs = sampling.sample_negatives(users_bl, num, recsys.num_items, recsys.train_pairs, rng)
    out = dict(batch)
    out["candidates"], out["labels"] = _with_negatives(targets, negs)
    out["weights"] = ((history != 0) & (targets != 0)).astype(np.float32)
    return out

  return base.NamedOp(spec, _per_example(batch_fn), random=True, batch_fn=batch_fn)
