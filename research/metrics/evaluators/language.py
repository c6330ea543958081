"""The 'language_model' evaluator: exact (or nanoGPT-sampled) next-token loss over a split."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from research.metrics.evaluators.base import to_host
from research.metrics.language import batch_sums, summarize

_batch_sums = jax.jit(batch_sums)


class LanguageModelEvaluator:
  """Next-token (or masked-token) loss over a split.

  Two ways, chosen by how the builder makes `batches_fn`:
  * exact: contiguous windows covering every target token once (weights mark
    the padded tail), so `loss` is the split's true mean per-token loss;
  * sampled (nanoGPT's `estimate_loss`): `num_batches` batches of random
    windows, freshly drawn each evaluation; `loss` is their mean.

  predict_fn(batch) must return 'logits' [b, T, V] plus the batch's
  `target_key`, `weight_key` (optional: all ones) and 'mask'.
  """

  def __init__(
    self,
    name: str,
    batches_fn: Callable[[], Iterable[Mapping]],
    *,
    every_steps: int = 0,
    target_key: str = "targets",
    weight_key: str = "weights",
    **unused,
  ):
    self.name, self.every_steps, self.batches_fn = name, int(every_steps), batches_fn
    self.target_key, self.weight_key = target_key, weight_key
    self.class_names = None

  def run(self, predict_fn):
    totals = np.zeros(3, np.float64)
    for batch in self.batches_fn():
      out = predict_fn(batch)
      targets = out[self.target_key]
      weights = out[self.weight_key] if self.weight_key in out else jnp.ones(targets.shape)
      sums = _batch_sums(out["logits"], targets, weights, out["mask"])
      totals += [float(to_host(sums[k])) for k in ("loss_sum", "correct", "tokens")]
    result = summarize(*totals)
    return {f"{self.name}/{k}": v for k, v in result.items()}, {}
