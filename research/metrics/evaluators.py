"""Evaluators: objects built from config that score a model on one split.

big_vision habit: the trainer knows nothing about metrics. It hands every
evaluator a `predict_fn` and writes whatever scalars and artifacts come back.

  evaluator = EVALUATORS['classification'](name='test', batches_fn=..., num_classes=10)
  scalars, artifacts = evaluator.run(predict_fn)
  # scalars['test/accuracy'], artifacts['test/confusion_matrix']
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils

from research import lazy
from research.metrics import classification, language
from research.metrics import ranking as _ranking

with lazy.imports():
  from sklearn import metrics

HostBatch = Mapping[str, np.ndarray]
PredictFn = Callable[[HostBatch], Mapping[str, jax.Array]]


class Evaluator(Protocol):
  """What the trainer relies on.

  `every_steps` = 0 means run only once, at the end of training.
  `run` returns (scalars keyed '<name>/<metric>', artifacts keyed
  '<name>/<artifact>', e.g. '<name>/confusion_matrix').
  """

  name: str
  every_steps: int

  def run(self, predict_fn: PredictFn) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    ...


def to_host(x: Any) -> np.ndarray:
  """A jax array (possibly sharded over devices or hosts) as one numpy array."""
  if isinstance(x, jax.Array) and not x.is_fully_addressable:
    if x.is_fully_replicated:
      return np.asarray(x.addressable_data(0))
    # Only reached in multi-host runs where the compiler left a reduction
    # sharded; every host gets the global value.
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(x)


@functools.lru_cache(maxsize=None)
def jitted_batch_counts(num_classes: int, topk: tuple[int, ...]) -> Callable[..., dict]:
  """One jitted `batch_counts` per (C, topk), shared by every evaluator.

  Caching the jitted callable (not just relying on jit's own cache keyed by
  function identity) means a new evaluator per eval round does not recompile.
  """
  return jax.jit(functools.partial(
      classification.batch_counts, num_classes=num_classes, topk=topk))


class ClassificationEvaluator:
  """Exact accuracy / top-k / loss / per-class P, R, F1 and confusion matrix.

  Args:
    name: split name used as the key prefix, e.g. 'test'.
    batches_fn: () -> fresh iterable of host batches (dicts with a bool 'mask'
      [b]) covering the split exactly once; padding rows have mask False.
    num_classes: C.
    every_steps: evaluate every this many train steps; 0 = only at the end.
    topk: top-k accuracies to report (k < C only).
    class_names: C names for per-class keys; default '0'..'C-1'.
    label_key: key of the int [b] labels in predict_fn's output.
  """

  def __init__(self, name: str, batches_fn: Callable[[], Iterable[HostBatch]], *,
               num_classes: int, every_steps: int = 0, topk: Sequence[int] = (5,),
               class_names: Sequence[str] | None = None, label_key: str = "label"):
    if every_steps < 0:
      raise ValueError(f"every_steps must be >= 0, got {every_steps}.")
    self.name = name
    self.every_steps = int(every_steps)
    self.batches_fn = batches_fn
    self.num_classes = int(num_classes)
    self.topk = tuple(int(k) for k in topk)
    # Resolved here so callers (plots, reports) always get C names.
    self.class_names = ([str(i) for i in range(self.num_classes)] if class_names is None
                        else [str(n) for n in class_names])
    if len(self.class_names) != self.num_classes:
      raise ValueError(f"Evaluator {name!r}: {len(self.class_names)} class_names for "
                       f"{self.num_classes} classes.")
    self.label_key = label_key
    self._counts_fn = jitted_batch_counts(self.num_classes, self.topk)

  def _counts(self, out: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    missing = [k for k in ("logits", self.label_key, "mask") if k not in out]
    if missing:
      raise KeyError(f"Evaluator {self.name!r}: predict_fn output lacks {missing}; "
                     f"it has {sorted(out)}.")
    return self._counts_fn(out["logits"], out[self.label_key], out["mask"])

  def _positive_scores(self, out, batch_scores: list, batch_labels: list) -> None:
    """Binary tasks: keep p(class 1) of the real (unmasked) rows for ROC AUC,
    which needs every score, not counts."""
    mask = to_host(out["mask"]).astype(bool)
    logits = to_host(out["logits"]).astype(np.float64)[mask]
    # p(1) = sigmoid(l1 - l0): the two-class softmax without overflow.
    batch_scores.append(1.0 / (1.0 + np.exp(logits[:, 0] - logits[:, 1])))
    batch_labels.append(to_host(out[self.label_key])[mask])

  def run(self, predict_fn: PredictFn) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Scores predict_fn on the split.

    Returns:
      ({'<name>/accuracy': ..., '<name>/top5': ..., '<name>/loss': ...,
        '<name>/precision/<class>': ..., ...},
       {'<name>/confusion_matrix': int64 [C, C]}).
    """
    acc = classification.ClassificationAccumulator(
        self.num_classes, self.topk, self.class_names)
    # One batch stays in flight: fetching batch i's counts after dispatching
    # batch i+1 lets the host prepare input while the device computes. Not on
    # several CPU devices (predict_fn.one_in_flight): queued work with
    # collectives can deadlock there (research.platforms.cpu.needs_step_sync).
    lookahead = not getattr(predict_fn, "one_in_flight", False)
    pending = None
    scores, labels = [], []
    for batch in self.batches_fn():
      out = predict_fn(batch)
      counts = self._counts(out)
      if self.num_classes == 2:
        self._positive_scores(out, scores, labels)
      if pending is not None:
        acc.update(jax.tree.map(to_host, pending))
        pending = None
      if lookahead:
        pending = counts
      else:
        acc.update(jax.tree.map(to_host, counts))
    if pending is not None:
      acc.update(jax.tree.map(to_host, pending))
    if acc.count == 0:
      raise ValueError(f"Evaluator {self.name!r}: batches_fn yielded no unmasked examples.")
    scalars = {f"{self.name}/{k}": v for k, v in acc.result().items()}
    if self.num_classes == 2:
      y, p = np.concatenate(labels), np.concatenate(scores)
      if len(np.unique(y)) == 2:  # AUC is undefined with one class present
        scalars[f"{self.name}/roc_auc"] = float(metrics.roc_auc_score(y, p))
    artifacts = {f"{self.name}/confusion_matrix": acc.confusion_matrix()}
    return scalars, artifacts




# --- Recommendation --------------------------------------------------------------


def _require(out, keys, name):
  missing = [k for k in keys if k not in out]
  if missing:
    raise KeyError(f"Evaluator {name!r}: predict_fn output lacks {missing}; it has {sorted(out)}.")


class RatingEvaluator:
  """Exact RMSE and MAE of predicted ratings over the whole split.

  predict_fn's 'logits' are predicted ratings float [b]; the batch holds
  'rating' float [b], 'user'/'item' int [b] (0 = unseen in training, counted
  as 'oov_users' / 'oov_items') and 'mask'. `clip` = (lo, hi) clips
  predictions to the rating scale first, as Surprise does.
  """

  def __init__(self, name: str, batches_fn, *, every_steps: int = 0, clip=None,
               rating_key: str = "rating", **unused):
    del unused  # e.g. topk from eval_config's defaults
    self.name, self.batches_fn, self.every_steps = name, batches_fn, int(every_steps)
    self.clip = None if clip is None else (float(clip[0]), float(clip[1]))
    self.rating_key = rating_key
    self._fn = jax.jit(functools.partial(_ranking.rating_sums, clip=self.clip))

  def run(self, predict_fn):
    totals = {"se": 0.0, "ae": 0.0, "count": 0.0, "oov_users": 0, "oov_items": 0}
    for batch in self.batches_fn():
      out = predict_fn(batch)
      _require(out, ("logits", self.rating_key, "mask"), self.name)
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
    return {f"{p}/rmse": float(np.sqrt(totals["se"] / n)), f"{p}/mae": totals["ae"] / n,
            f"{p}/num_examples": n, f"{p}/oov_users": totals["oov_users"],
            f"{p}/oov_items": totals["oov_items"]}, {}


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

  def __init__(self, name: str, batches_fn, *, every_steps: int = 0, ks=(10,),
               full_ranking: bool = True, **unused):
    del unused
    self.name, self.batches_fn, self.every_steps = name, batches_fn, int(every_steps)
    self.ks = tuple(int(k) for k in ks)
    self.full_ranking = bool(full_ranking)

  def run(self, predict_fn):
    totals, seen, n_items, oov, oov_users = {}, None, None, 0, 0
    for batch in self.batches_fn():
      out = predict_fn(batch)
      _require(out, ("logits", "targets", "mask"), self.name)
      scores = out["logits"]
      exclude = out.get("exclude") if self.full_ranking else None
      sums, top = _ranking.batch_ranking(scores, out["targets"], out["mask"], exclude,
                                         ks=self.ks, full_ranking=self.full_ranking,
                                         top=max(self.ks))
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
    if self.full_ranking:
      result[f"{p}/coverage@{max(self.ks)}"] = float(seen[1:].sum() / max(n_items - 1, 1))
    return result, {}


# Explicit registry: config names an evaluator type by one of these keys.
EVALUATORS: dict[str, type] = {
    "classification": ClassificationEvaluator,
    "language_model": language.LanguageModelEvaluator,
    "rating": RatingEvaluator,
    "ranking": RankingEvaluator,
}
# Finance risk: 'credit', 'market_risk', 'integrated_gradients'. Imported last:
# those evaluators use `to_host` from this module.
from research.metrics import finance as _finance  # pylint: disable=wrong-import-position
EVALUATORS.update(_finance.EVALUATORS)


def check_evaluator_type(type_name: str) -> None:
  """Raises ValueError naming the valid types if `type_name` is unknown."""
  if type_name not in EVALUATORS:
    raise ValueError(f"Unknown evaluator type {type_name!r}; valid types: {sorted(EVALUATORS)}.")
