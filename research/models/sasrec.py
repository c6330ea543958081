"""SASRec: self-attentive sequential recommendation (Kang & McAuley, ICDM 2018).

A causal Transformer over a user's item history, built from the NLP blocks in
`research.models.transformer` (`TransformerBlock`, `LearnedPositions`); the
item embedding table is shared between input and output, as in the paper.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from research.models.recsys import vocab_size
from research.models.transformer import LearnedPositions, padding_mask, remat_block


class SASRec(nn.Module):
  """Input {'history': int [B, L] (item indices in time order, left-padded with
  0), 'candidates': int [B, L, C] (training: the next item and sampled
  negatives at every position)} -> logits float [B, L, C].

  Without 'candidates' (evaluation) -> scores float [B, num_items]: the last
  position's state against every item of the catalogue.
  """

  num_items: int | None = None
  max_len: int = 50
  dim: int = 64
  num_layers: int = 2
  num_heads: int = 1
  dropout: float = 0.2
  remat: str = "none"  # "none" | "block" | "full" (research.models.transformer.remat_block)
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, inputs, *, train: bool = False):
    history = inputs["history"]
    if history.shape[-1] > self.max_len:
      raise ValueError(f"SASRec: history length {history.shape[-1]} > max_len {self.max_len}.")
    embed = nn.Embed(
      vocab_size(self, "num_items"),
      self.dim,
      embedding_init=nn.initializers.normal(0.05),
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      name="item_embedding",
    )
    real = (history != 0).astype(jnp.float32)[..., None]
    x = embed(history) * jnp.sqrt(float(self.dim))
    x = (
      LearnedPositions(
        self.max_len, dtype=self.dtype, param_dtype=self.param_dtype, name="positions"
      )(x)
      * real
    )
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    # Keys: real items only; a query also sees itself, so an all-padding
    # prefix never has an empty attention row.
    length = history.shape[-1]
    eye = jnp.eye(length, dtype=bool)[None, None]
    mask = jnp.logical_or(padding_mask(history), eye)
    for i in range(self.num_layers):
      x = (
        remat_block(self.remat)(
          self.num_heads,
          mlp_ratio=1.0,
          dropout=self.dropout,
          attention_dropout=self.dropout,
          causal=True,
          activation="relu",
          dtype=self.dtype,
          param_dtype=self.param_dtype,
          name=f"block_{i}",
        )(x, mask, None, None, train, False)
        * real
      )
    x = nn.LayerNorm(dtype=self.dtype, param_dtype=self.param_dtype, name="ln_f")(x)
    if "candidates" in inputs:
      c = embed(inputs["candidates"])  # [B, L, C, D]
      return jnp.einsum("bld,blcd->blc", x, c)
    table = embed.embedding  # [num_items, D]
    return x[:, -1, :] @ table.T
