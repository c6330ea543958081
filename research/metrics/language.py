"""Token-level metrics for language models: exact loss, bits per token, perplexity.

`batch_sums` is jit-able and returns sums, so the accumulated result is exact
over the whole split however it is batched (masked / padded tokens count zero).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
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
  return {
    "loss": loss,
    "bits_per_token": loss / math.log(2),
    "perplexity": math.exp(loss),
    "accuracy": correct / tokens,
    "tokens": tokens,
  }
