"""Token-level metrics for language models: exact loss, bits per token, perplexity.

`batch_sums` is jit-able and returns sums, so the accumulated result is exact
over the whole split however it is batched (masked / padded tokens count zero).
"""
from __future__ import annotations

import math
from typing import Callable, Iterable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax


def batch_sums(logits, targets, weights, mask) -> dict[str, jax.Array]:
  """Sums over one batch.

  Args:
    logits: float [b, T, V]; targets: int [b, T]; weights: float [b, T] (0 on
      padding tokens); mask: bool [b] (False on padding rows of the last batch).
  Returns:
    {'loss_sum': float32 [] (nats), 'correct': float32 [], 'tokens': float32 []}.
  """
  w = weights.astype(jnp.float32) * mask.astype(jnp.float32)[:, None]
  # `where` instead of a product so garbage logits in padding cannot leak NaN.
  ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets)
  loss_sum = jnp.sum(jnp.where(w > 0, ce * w, 0.0))
  correct = jnp.sum(jnp.where(w > 0, (jnp.argmax(logits, -1) == targets) * w, 0.0))
  return {"loss_sum": loss_sum, "correct": correct, "tokens": jnp.sum(w)}


def summarize(loss_sum: float, correct: float, tokens: float) -> dict[str, float]:
  """loss in nats/token, bits per token (= bits per character for char models), perplexity."""
  if tokens <= 0:
    raise ValueError("No target tokens were evaluated (all weights zero).")
  loss = loss_sum / tokens
  return {"loss": loss, "bits_per_token": loss / math.log(2), "perplexity": math.exp(loss),
          "accuracy": correct / tokens, "tokens": tokens}


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

  def __init__(self, name: str, batches_fn: Callable[[], Iterable[Mapping]], *,
               every_steps: int = 0, target_key: str = "targets", weight_key: str = "weights",
               **unused):
    self.name, self.every_steps, self.batches_fn = name, int(every_steps), batches_fn
    self.target_key, self.weight_key = target_key, weight_key
    self.class_names = None

  def run(self, predict_fn):
    from research.metrics.evaluators import to_host  # shared helper; avoids an import cycle
    totals = np.zeros(3, np.float64)
    for batch in self.batches_fn():
      out = predict_fn(batch)
      targets = out[self.target_key]
      weights = out[self.weight_key] if self.weight_key in out else jnp.ones(targets.shape)
      sums = _batch_sums(out["logits"], targets, weights, out["mask"])
      totals += [float(to_host(sums[k])) for k in ("loss_sum", "correct", "tokens")]
    result = summarize(*totals)
    return {f"{self.name}/{k}": v for k, v in result.items()}, {}
