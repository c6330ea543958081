"""Recommendation models: biased matrix factorisation, GMF / MLP / NeuMF, two-tower.

Index 0 of users and items is the out-of-vocabulary slot (see
`research.data.recsys.vocab`): its embeddings and biases are masked to zero,
so an unseen user or item falls back to what the rest of the model knows
(the global mean and the other side's bias for MF) instead of an untrained
random vector. `num_users` / `num_items` include that slot; configs leave
them None and the builder fills them from the training vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def _embed(module, num, dim, **kwargs) -> nn.Embed:
  """nn.Embed in `module`'s dtype and param_dtype; its rows are the 'vocab'
  axis, which tensor parallelism splits (research.train.sharding)."""
  init = kwargs.pop("embedding_init", nn.linear.default_embed_init)
  return nn.Embed(
    num,
    dim,
    dtype=module.dtype,
    param_dtype=module.param_dtype,
    embedding_init=nn.with_logical_partitioning(init, ("vocab", "embed")),
    **kwargs,
  )


def _dense(module, features, **kwargs) -> nn.Dense:
  """nn.Dense in `module`'s dtype and param_dtype."""
  return nn.Dense(features, dtype=module.dtype, param_dtype=module.param_dtype, **kwargs)


def vocab_size(module: nn.Module, field: str) -> int:
  """`module.<field>` (num_users / num_items); ValueError while it is still None."""
  size = getattr(module, field)
  if size is None:
    raise ValueError(
      f"{type(module).__name__}.{field} is None; the builder fills it from the training "
      "vocabulary (set it when building the model by hand)."
    )
  return int(size)


def _known(ids: jax.Array) -> jax.Array:
  """1.0 where an id is in the vocabulary, 0.0 for OOV (0); float [...]."""
  return (ids != 0).astype(jnp.float32)


class BiasedMF(nn.Module):
  """r(u, i) = mu + b_u + b_i + p_u . q_i (Koren et al. 2009); `dim=0` is the biases-only model.

  Input {'user': int [B], 'item': int [B]}. Output: eval -> predicted ratings
  float [B]; train -> {'prediction': [B], 'penalty': [B]} where penalty is
  the squared norm of the parameters this example uses (per-example L2, as
  in Funk SVD / Surprise's SVD), weighted by the task's `reg`.
  """

  num_users: int | None = None
  num_items: int | None = None
  dim: int = 32
  rating_mean: float | None = None  # mu; None: 0 (the builder fills the training mean)
  init_scale: float = 0.1
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, inputs, *, train: bool = False):
    user, item = inputs["user"], inputs["item"]
    ku, ki = _known(user), _known(item)
    zeros = nn.initializers.zeros
    b_u = _embed(self, self.num_users, 1, embedding_init=zeros, name="user_bias")(user)[..., 0] * ku
    b_i = _embed(self, self.num_items, 1, embedding_init=zeros, name="item_bias")(item)[..., 0] * ki
    pred = (self.rating_mean or 0.0) + b_u + b_i
    penalty = b_u**2 + b_i**2
    if self.dim:
      init = nn.initializers.normal(self.init_scale)
      p = _embed(self, self.num_users, self.dim, embedding_init=init, name="user_factors")(user)
      q = _embed(self, self.num_items, self.dim, embedding_init=init, name="item_factors")(item)
      p, q = p * ku[:, None], q * ki[:, None]
      pred = pred + jnp.sum(p * q, -1)
      penalty = penalty + jnp.sum(p**2, -1) + jnp.sum(q**2, -1)
    if train:
      return {"prediction": pred, "penalty": penalty}
    return pred


class _GMFTower(nn.Module):
  """Element-wise product of user and item embeddings: [B] x [B, C] -> [B, C, dim]."""

  num_users: int
  num_items: int
  dim: int
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, user, items):
    init = nn.initializers.normal(0.01)  # NCF's init
    p = _embed(self, self.num_users, self.dim, embedding_init=init, name="user_embedding")(user)
    q = _embed(self, self.num_items, self.dim, embedding_init=init, name="item_embedding")(items)
    p = p * _known(user)[:, None]
    q = q * _known(items)[..., None]
    return p[:, None, :] * q


class _MLPTower(nn.Module):
  """Concatenated user and item embeddings through a ReLU tower: -> [B, C, layers[-1]].

  `layers[0]` is the concatenated embedding width (NCF: 64 -> 32 -> 16 -> 8).
  """

  num_users: int
  num_items: int
  layers: Sequence[int]
  dropout: float = 0.0
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, user, items, *, train: bool):
    init = nn.initializers.normal(0.01)
    half = self.layers[0] // 2
    p = _embed(self, self.num_users, half, embedding_init=init, name="user_embedding")(user)
    q = _embed(self, self.num_items, half, embedding_init=init, name="item_embedding")(items)
    p = p * _known(user)[:, None]
    q = q * _known(items)[..., None]
    x = jnp.concatenate([jnp.broadcast_to(p[:, None, :], q.shape[:-1] + (half,)), q], -1)
    for i, width in enumerate(self.layers[1:]):
      x = nn.relu(_dense(self, width, name=f"dense_{i}")(x))
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return x


class NCF(nn.Module):
  """GMF, MLP and NeuMF (He et al., WWW 2017) as one module, `kind` picking which.

  Input {'user': int [B], 'items': int [B, C]} (C candidates per user: the
  positive and its sampled negatives in training, 100 candidates or all items
  in evaluation). Output logits float [B, C] (sigmoid -> interaction
  probability).

  Parameter names are shared between the kinds so NeuMF can be initialised
  from trained GMF and MLP runs by copying subtrees (`config.init_from`):
  'gmf' + 'gmf_head' from the GMF run, 'mlp' + 'mlp_head' from the MLP run.
  NeuMF's logit is `alpha * gmf_head(h_gmf) + (1 - alpha) * mlp_head(h_mlp)`,
  the paper's output layer over [h_gmf; h_mlp] with the pretrained weights
  scaled by alpha and 1 - alpha (alpha = 0.5 in the paper).
  """

  num_users: int | None = None
  num_items: int | None = None
  kind: str = "neumf"  # 'gmf', 'mlp' or 'neumf'
  gmf_dim: int = 8
  mlp_layers: Sequence[int] = (64, 32, 16, 8)
  dropout: float = 0.0
  alpha: float = 0.5
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, inputs, *, train: bool = False):
    if self.kind not in ("gmf", "mlp", "neumf"):
      raise ValueError(f"NCF kind must be 'gmf', 'mlp' or 'neumf', got {self.kind!r}.")
    user, items = inputs["user"], inputs["items"]
    num_users, num_items = vocab_size(self, "num_users"), vocab_size(self, "num_items")
    head = lambda name: _dense(self, 1, kernel_init=nn.initializers.lecun_uniform(), name=name)
    logits = []
    if self.kind in ("gmf", "neumf"):
      h = _GMFTower(num_users, num_items, self.gmf_dim, self.dtype, self.param_dtype, name="gmf")(
        user, items
      )
      logits.append(head("gmf_head")(h)[..., 0])
    if self.kind in ("mlp", "neumf"):
      h = _MLPTower(
        num_users,
        num_items,
        tuple(self.mlp_layers),
        self.dropout,
        self.dtype,
        self.param_dtype,
        name="mlp",
      )(user, items, train=train)
      logits.append(head("mlp_head")(h)[..., 0])
    if self.kind == "neumf":
      return self.alpha * logits[0] + (1.0 - self.alpha) * logits[1]
    return logits[0]


class TwoTower(nn.Module):
  """Dual encoder for retrieval: score(u, i) = <f(u), g(i)> / temperature, both
  L2-normalised (Yi et al., RecSys 2019, trained with in-batch sampled softmax).

  Item tower: item ID embedding, plus (use_item_features) a projection of the
  genre multi-hot and an embedding of the release-year bucket, through an MLP.
  User tower: user ID embedding, plus (use_user_features) a projection of the
  user's genre profile (share of the user's training interactions per genre),
  through an MLP.

  Input in training {'user': int [B], 'item': int [B]} -> logits [B, B] (row
  b: user b against every item of the batch; the task applies the log-Q
  correction and the softmax). Input without 'item' (evaluation, retrieval)
  {'user': int [B]} -> scores [B, num_items] against the whole catalogue.

  item_genres float [num_items, G], item_year int [num_items] and
  user_genres float [num_users, G] are tables filled from the training split
  by the builder (not trained).
  """

  num_users: int | None = None
  num_items: int | None = None
  dim: int = 64
  hidden: Sequence[int] = (128,)
  temperature: float = 0.05
  use_item_features: bool = True
  use_user_features: bool = False
  item_genres: Any = None
  user_genres: Any = None
  item_year: Any = None
  year_buckets: int = 26
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  def _mlp(self, x, name):
    for i, width in enumerate(self.hidden):
      x = nn.relu(_dense(self, width, name=f"{name}_dense_{i}")(x))
    x = _dense(self, self.dim, name=f"{name}_out")(x)
    # rsqrt(|x|^2 + eps), not x / max(|x|, eps): the norm's gradient is NaN at x = 0
    # (a ReLU tower can output exactly zero, e.g. bias-only at init).
    return x * jax.lax.rsqrt(jnp.sum(x * x, axis=-1, keepdims=True) + 1e-12)

  def user_vectors(self, user):
    e = (
      _embed(
        self,
        self.num_users,
        self.dim,
        embedding_init=nn.initializers.normal(0.05),
        name="user_embedding",
      )(user)
      * _known(user)[:, None]
    )
    if self.use_user_features:
      if self.user_genres is None:
        raise ValueError(
          "TwoTower(use_user_features=True) needs user_genres (filled from the "
          "data with config.data.format='interactions')."
        )
      profile = jnp.asarray(np.asarray(self.user_genres, np.float32))[user]
      e = jnp.concatenate([e, _dense(self, self.dim, name="user_genre_projection")(profile)], -1)
    return self._mlp(e, "user_tower")

  def item_vectors(self, item):
    e = (
      _embed(
        self,
        self.num_items,
        self.dim,
        embedding_init=nn.initializers.normal(0.05),
        name="item_embedding",
      )(item)
      * _known(item)[..., None]
    )
    parts = [e]
    if self.use_item_features:
      if self.item_genres is None or self.item_year is None:
        raise ValueError(
          "TwoTower(use_item_features=True) needs item_genres and item_year "
          "(filled from the data with config.data.format='interactions')."
        )
      genres = jnp.asarray(np.asarray(self.item_genres, np.float32))[item]
      year = jnp.asarray(np.asarray(self.item_year, np.int32))[item]
      parts.append(_dense(self, self.dim, name="genre_projection")(genres))
      parts.append(_embed(self, self.year_buckets, self.dim, name="year_embedding")(year))
    return self._mlp(jnp.concatenate(parts, -1), "item_tower")

  @nn.compact
  def __call__(self, inputs, *, train: bool = False):
    u = self.user_vectors(inputs["user"])
    if "item" in inputs:
      v = self.item_vectors(inputs["item"])
      return u @ v.T / self.temperature
    v = self.item_vectors(jnp.arange(self.num_items))
    return u @ v.T / self.temperature
