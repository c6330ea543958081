"""BERT-style encoders: masked-LM pretraining, [CLS] classification, and the
small from-scratch Transformer classifier of the Keras example.

'bert_mlm' and 'bert_classifier' hold the same `BertEncoder` under the
submodule name 'encoder', with the same fields, so `params['encoder']` of a
pretrained MLM can be copied into a classifier's params by path:

  params = dict(classifier_params, encoder=mlm_params['encoder'])

Inputs: tokens int [B, T] with pad_id (0) as padding (the padding mask is
tokens != pad_id), or a dict {'tokens': [B, T], 'segment_ids': [B, T]} when
the model has segment embeddings (type_vocab_size > 0).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from research.models.transformer import LearnedPositions, padding_mask, remat_block

# BERT initialises every kernel and embedding with a truncated normal, std 0.02.
_bert_init = nn.initializers.truncated_normal(stddev=0.02)


def _keras_embedding_init(key, shape, dtype=jnp.float32):
  """Keras' Embedding default: uniform in [-0.05, 0.05]."""
  return jax.random.uniform(key, shape, dtype, -0.05, 0.05)


def _split_inputs(x: jax.Array | Mapping[str, jax.Array]):
  if isinstance(x, Mapping):
    return x["tokens"], x.get("segment_ids")
  return x, None


def _positions(x: jax.Array | Mapping[str, jax.Array]) -> jax.Array | None:
  """The MLM positions [B, P] when the input dict has them (mlm_mask(max_predictions=P))."""
  return x.get("positions") if isinstance(x, Mapping) else None


class BertEncoder(nn.Module):
  """tokens int [B, T] (+ segment_ids [B, T]) -> hidden states [B, T, embed_dim].

  token + learned position (+ segment) embeddings -> LayerNorm -> dropout ->
  num_layers blocks (post-LN like BERT, or pre-LN with a final LayerNorm).
  Padding positions never serve as keys; their own outputs are meaningless.
  """

  vocab_size: int
  num_layers: int
  num_heads: int
  embed_dim: int
  mlp_dim: int | None = None  # None: 4 * embed_dim (BERT's intermediate_size).
  max_len: int = 512
  type_vocab_size: int = 0  # > 0 adds segment embeddings (BERT uses 2).
  dropout: float = 0.1
  attention_dropout: float = 0.1
  pre_ln: bool = False
  pad_id: int = 0
  layer_norm_eps: float = 1e-12
  remat: str = "none"  # 'none' | 'block' | 'full' (research.models.transformer.remat_block)
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  def setup(self):
    # setup (not compact) so the MLM head can call `attend` with the same table.
    embed = lambda num, name: nn.Embed(
      num,
      self.embed_dim,
      embedding_init=_bert_init,
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      name=name,
    )
    self.token_embed = embed(self.vocab_size, "token_embed")
    self.segment_embed = (
      embed(self.type_vocab_size, "segment_embed") if self.type_vocab_size else None
    )
    self.position_embed = LearnedPositions(
      self.max_len, embedding_init=_bert_init, dtype=self.dtype, param_dtype=self.param_dtype
    )
    self.embed_ln = nn.LayerNorm(
      epsilon=self.layer_norm_eps, dtype=self.dtype, param_dtype=self.param_dtype
    )
    self.blocks = [
      remat_block(self.remat)(
        self.num_heads,
        mlp_dim=self.mlp_dim or 4 * self.embed_dim,
        dropout=self.dropout,
        attention_dropout=self.attention_dropout,
        pre_ln=self.pre_ln,
        activation="gelu",
        layer_norm_eps=self.layer_norm_eps,
        kernel_init=_bert_init,
        dtype=self.dtype,
        param_dtype=self.param_dtype,
        name=f"block_{i}",
      )
      for i in range(self.num_layers)
    ]
    self.final_ln = (
      nn.LayerNorm(epsilon=self.layer_norm_eps, dtype=self.dtype, param_dtype=self.param_dtype)
      if self.pre_ln
      else None
    )
    self.drop = nn.Dropout(self.dropout)

  def __call__(
    self, tokens: jax.Array, *, segment_ids: jax.Array | None = None, train: bool
  ) -> jax.Array:
    x = self.position_embed(self.token_embed(tokens))
    if self.segment_embed is not None:
      x = x + self.segment_embed(jnp.zeros_like(tokens) if segment_ids is None else segment_ids)
    x = self.drop(self.embed_ln(x), deterministic=not train)
    mask = padding_mask(tokens, self.pad_id)
    for block in self.blocks:
      x = block(x, mask, None, None, train, False)  # positional: see remat_block
    return self.final_ln(x) if self.final_ln is not None else x

  def attend(self, x: jax.Array) -> jax.Array:
    """x [..., embed_dim] -> [..., vocab_size]: x @ token_embedding.T (weight tying)."""
    return self.token_embed.attend(x)


class _EncoderFields(nn.Module):
  """The encoder's fields, shared by both BERT models (so their encoders match)."""

  vocab_size: int
  num_layers: int
  num_heads: int
  embed_dim: int
  mlp_dim: int | None = None
  max_len: int = 512
  type_vocab_size: int = 0
  dropout: float = 0.1
  attention_dropout: float = 0.1
  pre_ln: bool = False
  pad_id: int = 0
  remat: str = "none"  # 'none' | 'block' | 'full' (research.models.transformer.remat_block)
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  def _make_encoder(self) -> BertEncoder:
    return BertEncoder(
      self.vocab_size,
      self.num_layers,
      self.num_heads,
      self.embed_dim,
      mlp_dim=self.mlp_dim,
      max_len=self.max_len,
      type_vocab_size=self.type_vocab_size,
      dropout=self.dropout,
      attention_dropout=self.attention_dropout,
      pre_ln=self.pre_ln,
      pad_id=self.pad_id,
      remat=self.remat,
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      name="encoder",
    )


class BertMLM(_EncoderFields):
  """'bert_mlm': tokens [B, T] -> float32 MLM logits [B, T, vocab_size], or
  {'tokens': [B, T], 'positions': int [B, P]} -> logits [B, P, vocab_size] at
  those positions only (BERT's gather_indexes before the head).

  Head (BERT's cls/predictions): dense(embed_dim) -> GELU -> LayerNorm ->
  decoder tied to the token embedding + an output bias. Without positions,
  logits are produced at every position and the loss weights pick the masked ones.
  """

  @nn.compact
  def __call__(self, x, *, train: bool) -> jax.Array:
    tokens, segment_ids = _split_inputs(x)
    encoder = self._make_encoder()
    h = encoder(tokens, segment_ids=segment_ids, train=train)
    positions = _positions(x)
    if positions is not None:
      h = jnp.take_along_axis(h, positions[..., None].astype(jnp.int32), axis=1)
    h = nn.Dense(
      self.embed_dim,
      kernel_init=_bert_init,
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      name="mlm_dense",
    )(h)
    h = nn.gelu(h, approximate=False)
    h = nn.LayerNorm(epsilon=1e-12, dtype=self.dtype, param_dtype=self.param_dtype, name="mlm_ln")(
      h
    )
    bias = self.param("mlm_bias", nn.initializers.zeros, (self.vocab_size,), self.param_dtype)
    return (encoder.attend(h) + bias.astype(self.dtype)).astype(jnp.float32)


class BertClassifier(_EncoderFields):
  """'bert_classifier': tokens [B, T] -> float32 logits [B, num_classes].

  From the first token's hidden state ([CLS]): pooler dense + tanh -> dropout
  -> dense num_classes, as BERT's sequence classification.
  """

  # Keyword-only so it can be required after the inherited defaulted fields.
  num_classes: int = dataclasses.field(kw_only=True)

  @nn.compact
  def __call__(self, x, *, train: bool) -> jax.Array:
    tokens, segment_ids = _split_inputs(x)
    h = self._make_encoder()(tokens, segment_ids=segment_ids, train=train)
    pooled = nn.tanh(
      nn.Dense(
        self.embed_dim,
        kernel_init=_bert_init,
        dtype=self.dtype,
        param_dtype=self.param_dtype,
        name="pooler",
      )(h[:, 0])
    )
    pooled = nn.Dropout(self.dropout, deterministic=not train)(pooled)
    return nn.Dense(
      self.num_classes,
      kernel_init=_bert_init,
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      name="classifier",
    )(pooled).astype(jnp.float32)


class TransformerClassifier(nn.Module):
  """'transformer_classifier': the Keras "Text classification with Transformer"
  model, with padding masked.

  token + learned position embeddings -> num_layers post-LN blocks (ReLU
  feed-forward of mlp_dim, LayerNorm eps 1e-6; each head has head_dim
  dimensions, Keras' key_dim = embed_dim by default) -> mean over the non-pad
  tokens -> dropout -> dense(hidden, relu) -> dropout -> dense num_classes.
  tokens int [B, T] (T <= max_len) -> float32 logits [B, num_classes].
  Initialisers follow Keras (glorot-uniform kernels, uniform +-0.05 embeddings).
  With vocab 20000 and max_len 200 it has the example's 657,758 parameters
  (for 2 classes).
  """

  vocab_size: int
  num_classes: int
  max_len: int = 200
  embed_dim: int = 32
  num_heads: int = 2
  head_dim: int | None = None  # None: embed_dim (Keras' key_dim=embed_dim).
  mlp_dim: int = 32
  num_layers: int = 1
  hidden: int = 20
  dropout: float = 0.1
  pad_id: int = 0
  remat: str = "none"  # 'none' | 'block' | 'full' (research.models.transformer.remat_block)
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, tokens: jax.Array, *, train: bool) -> jax.Array:
    x = nn.Embed(
      self.vocab_size,
      self.embed_dim,
      embedding_init=_keras_embedding_init,
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      name="token_embed",
    )(tokens)
    x = LearnedPositions(
      self.max_len,
      embedding_init=_keras_embedding_init,
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      name="position_embed",
    )(x)
    mask = padding_mask(tokens, self.pad_id)
    for i in range(self.num_layers):
      x = remat_block(self.remat)(
        self.num_heads,
        mlp_dim=self.mlp_dim,
        head_dim=self.head_dim or self.embed_dim,
        dropout=self.dropout,
        pre_ln=False,
        activation="relu",
        layer_norm_eps=1e-6,
        kernel_init=nn.initializers.glorot_uniform(),
        dtype=self.dtype,
        param_dtype=self.param_dtype,
        name=f"block_{i}",
      )(x, mask, None, None, train, False)
    weights = (tokens != self.pad_id)[..., None].astype(x.dtype)
    x = (x * weights).sum(axis=1) / jnp.maximum(weights.sum(axis=1), 1)
    drop = nn.Dropout(self.dropout, deterministic=not train)
    dense = lambda features, name: nn.Dense(
      features,
      kernel_init=nn.initializers.glorot_uniform(),
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      name=name,
    )
    x = nn.relu(dense(self.hidden, "hidden")(drop(x)))
    return dense(self.num_classes, "head")(drop(x)).astype(jnp.float32)
