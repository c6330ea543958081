"""Models of table rows: logistic regression, an MLP with categorical embeddings,
and FT-Transformer (Gorishniy et al. 2021, "Revisiting Deep Learning Models for
Tabular Data") built from the shared Transformer blocks.

Input: {'numeric': float [B, F_num] (preprocessed: standardised or quantile
scores plus missing indicators), 'categorical': int [B, F_cat] (index 0 =
unknown bucket)}. Output: float32 logits [B, num_classes].

Every model embeds categorical column j with the table
params['categorical']['embed_{j}']['embedding'] [cardinalities[j], dim]; an
input may instead carry 'categorical_embedded' float [B, F_cat, dim], used in
place of the lookup. Integrated gradients (`research.metrics.attribution`) use that to
interpolate categorical features in embedding space.

`cardinalities` (vocabulary + unknown bucket per categorical column) comes
from the run's fitted preprocessing when the config leaves it None.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from research.models.transformer import remat_block


class CategoricalEmbeddings(nn.Module):
  """int [B, F_cat] -> float [B, F_cat, dim]: one embedding table per column."""

  cardinalities: Sequence[int]
  dim: int
  embedding_init: Callable[..., jax.Array] = nn.initializers.normal(stddev=0.1)
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, categorical: jax.Array) -> jax.Array:
    if categorical.shape[-1] != len(self.cardinalities):
      raise ValueError(
        f"categorical input has {categorical.shape[-1]} columns but the model "
        f"has {len(self.cardinalities)} cardinalities."
      )
    columns = [
      nn.Embed(
        n,
        self.dim,
        embedding_init=self.embedding_init,
        param_dtype=self.param_dtype,
        name=f"embed_{j}",
      )(categorical[:, j])
      for j, n in enumerate(self.cardinalities)
    ]
    if not columns:
      return jnp.zeros(categorical.shape + (self.dim,), jnp.float32)
    return jnp.stack(columns, axis=1)


def _check_inputs(inputs, cardinalities, model: str):
  if not isinstance(inputs, dict) or "numeric" not in inputs:
    raise ValueError(
      f"{model} takes {{'numeric': [B, F_num], 'categorical': [B, F_cat]}}; use "
      "task 'tabular_classification' and config.data.format='tabular'."
    )
  if cardinalities is None:
    raise ValueError(
      f"{model}: cardinalities is None; leave it None in the config only with "
      "config.data.format='tabular' (the builder fills it from the fitted "
      "preprocessing)."
    )


def _embedded(module: nn.Module, inputs, dim: int, init=None) -> jax.Array:
  """[B, F_cat, dim]: the given 'categorical_embedded', else the embedding lookup."""
  given = inputs.get("categorical_embedded")
  kwargs = {} if init is None else dict(embedding_init=init)
  embed = CategoricalEmbeddings(
    tuple(module.cardinalities), dim, name="categorical", param_dtype=module.param_dtype, **kwargs
  )
  if given is not None:
    return given.astype(jnp.float32)
  return embed(inputs["categorical"].astype(jnp.int32))


class TabularLogistic(nn.Module):
  """Logistic regression on numeric columns plus one-hot categoricals (the one-hot
  weights are the categorical embeddings with dim = num_classes, summed).

  {'numeric' [B, F_num], 'categorical' [B, F_cat]} -> logits [B, num_classes].
  """

  num_classes: int = 2
  cardinalities: Sequence[int] | None = None
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, inputs, *, train: bool) -> jax.Array:
    del train
    _check_inputs(inputs, self.cardinalities, "tabular_logistic")
    logits = nn.Dense(
      self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype, name="numeric"
    )(inputs["numeric"].astype(jnp.float32))
    cats = _embedded(self, inputs, self.num_classes, init=nn.initializers.zeros)
    return (logits + cats.sum(axis=1)).astype(jnp.float32)


class TabularMLP(nn.Module):
  """MLP on [numeric, flattened categorical embeddings]: dense-ReLU-dropout layers.

  {'numeric' [B, F_num], 'categorical' [B, F_cat]} -> logits [B, num_classes].
  """

  num_classes: int = 2
  cardinalities: Sequence[int] | None = None
  embed_dim: int = 8
  hidden: Sequence[int] = (256, 128)
  dropout: float = 0.1
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, inputs, *, train: bool) -> jax.Array:
    _check_inputs(inputs, self.cardinalities, "tabular_mlp")
    numeric = inputs["numeric"].astype(jnp.float32)
    cats = _embedded(self, inputs, self.embed_dim)
    x = jnp.concatenate([numeric, cats.reshape(cats.shape[0], -1)], axis=-1)
    for width in self.hidden:
      x = nn.Dense(width, dtype=self.dtype, param_dtype=self.param_dtype)(x)
      x = nn.relu(x)
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype, name="head")(
      x
    ).astype(jnp.float32)


class FTTransformer(nn.Module):
  """FT-Transformer: every feature becomes a token, a [CLS] token is prepended,
  shared pre-LN Transformer blocks mix them, the head reads [CLS].

  Feature tokenizer (as in the paper): numeric column j -> x_j * W_j + b_j;
  categorical column j -> E_j[c] + b_j. Head: LayerNorm, ReLU, Dense.

  {'numeric' [B, F_num], 'categorical' [B, F_cat]} -> logits [B, num_classes].
  """

  num_classes: int = 2
  cardinalities: Sequence[int] | None = None
  dim: int = 32
  num_layers: int = 3
  num_heads: int = 4
  mlp_ratio: float = 4.0 / 3.0
  dropout: float = 0.1
  attention_dropout: float = 0.2
  remat: str = "none"  # "none" | "block" | "full" (research.models.transformer.remat_block)
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, inputs, *, train: bool) -> jax.Array:
    _check_inputs(inputs, self.cardinalities, "ft_transformer")
    numeric = inputs["numeric"].astype(jnp.float32)  # [B, Fn]
    batch, num_numeric = numeric.shape
    init = nn.initializers.normal(stddev=1.0 / self.dim**0.5)
    weight = self.param("numeric_weight", init, (num_numeric, self.dim), self.param_dtype)
    bias = self.param("numeric_bias", init, (num_numeric, self.dim), self.param_dtype)
    tokens = [numeric[:, :, None] * weight + bias]  # [B, Fn, D]
    cats = _embedded(self, inputs, self.dim, init=init)  # [B, Fc, D]
    if cats.shape[1]:
      tokens.append(
        cats + self.param("categorical_bias", init, (cats.shape[1], self.dim), self.param_dtype)
      )
    cls = self.param("cls", init, (1, 1, self.dim), self.param_dtype)
    x = jnp.concatenate([jnp.broadcast_to(cls, (batch, 1, self.dim))] + tokens, axis=1)
    for i in range(self.num_layers):
      x = remat_block(self.remat)(
        self.num_heads,
        mlp_ratio=self.mlp_ratio,
        dropout=self.dropout,
        attention_dropout=self.attention_dropout,
        pre_ln=True,
        activation="relu",
        dtype=self.dtype,
        param_dtype=self.param_dtype,
        name=f"block_{i}",
      )(x.astype(self.dtype), None, None, None, train, False)
    h = nn.relu(
      nn.LayerNorm(dtype=self.dtype, param_dtype=self.param_dtype, name="final_ln")(x[:, 0])
    )
    return nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype, name="head")(
      h
    ).astype(jnp.float32)
