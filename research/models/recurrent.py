"""Recurrent (LSTM / GRU) language models and bidirectional text classifiers.

Language models ('lstm_lm', 'gru_lm'):
  embedding -> dropout -> num_layers x [RNN -> dropout] -> dense vocab
  tokens int [B, T] -> float32 logits [B, T, V] (every id is a real token).
  The carry (one per layer) can be passed in and returned, so text can be
  generated token by token (`research.models.decoding` protocol).

Classifiers ('lstm_classifier', 'gru_classifier'), after the flax SST-2
example's design (embedding, bidirectional LSTM over the true lengths, pooled,
a dense head):
  embedding -> dropout -> num_layers x bidirectional RNN (seq_lengths from the
  padding mask) -> pool -> dropout -> dense num_classes
  tokens int [B, T] (right-padded with pad_id) -> float32 logits [B, num_classes].
  pooling='final': the last layer's final hidden states [forward at the last
  real token, backward at the first] concatenated; 'mean': the mean of the
  last layer's outputs over the real tokens.

The cells run in float32 whatever `dtype` says: the carry is a scan carry and
must keep one dtype across steps, and long recurrences are where bfloat16
rounding hurts. Embedding and output head use `dtype`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

_CELLS = {"lstm": nn.OptimizedLSTMCell, "gru": nn.GRUCell}


def _cell(kind: str, hidden: int, param_dtype: Any) -> nn.RNNCellBase:
  """A detached cell (parent=None): the nn.RNN it is given to adopts it as its
  'cell' submodule, so parameters live under rnn_i/cell/..."""
  return _CELLS[kind](hidden, dtype=jnp.float32, param_dtype=param_dtype, parent=None)


def _hidden_state(carry: Any) -> jax.Array:
  """The hidden state h [B, hidden] of an LSTM carry (c, h) or a GRU carry h."""
  return carry[1] if isinstance(carry, tuple) else carry


class RecurrentLM(nn.Module):
  """Base class of 'lstm_lm' / 'gru_lm' (the subclasses fix `cell_type`)."""

  vocab_size: int
  embed_dim: int
  hidden: int
  num_layers: int = 1
  dropout: float = 0.0
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  cell_type: ClassVar[str] = "lstm"

  @nn.compact
  def __call__(
    self, tokens: jax.Array, *, train: bool, initial_carry: Any = None, return_carry: bool = False
  ):
    """tokens [B, T] -> logits f32 [B, T, V]; with return_carry, (logits, carry)
    where carry is a tuple of one cell carry per layer (the state after the last
    token), which `initial_carry` accepts back to continue the sequence."""
    drop = nn.Dropout(self.dropout, deterministic=not train)
    x = nn.Embed(
      self.vocab_size, self.embed_dim, dtype=self.dtype, param_dtype=self.param_dtype, name="embed"
    )(tokens)
    x = drop(x).astype(jnp.float32)
    carries = []
    for i in range(self.num_layers):
      rnn = nn.RNN(_cell(self.cell_type, self.hidden, self.param_dtype), name=f"rnn_{i}")
      carry, x = rnn(
        x, initial_carry=None if initial_carry is None else initial_carry[i], return_carry=True
      )
      carries.append(carry)
      x = drop(x)
    logits = nn.Dense(self.vocab_size, dtype=self.dtype, param_dtype=self.param_dtype, name="head")(
      x
    ).astype(jnp.float32)
    return (logits, tuple(carries)) if return_carry else logits

  # ---- decoder protocol (research.models.decoding) ---------------------------

  @property
  def decode_max_len(self) -> None:
    return None  # The state is a fixed-size summary: any length.

  def decode_init(self, variables, batch_size: int):
    """Zero carries, one per layer (what the model starts from in training)."""
    del variables
    cell = _cell(self.cell_type, self.hidden, self.param_dtype)
    carry = cell.initialize_carry(jax.random.key(0), (batch_size, self.embed_dim))
    return tuple(carry for _ in range(self.num_layers))

  def decode_step(self, variables, tokens: jax.Array, state):
    return self.apply(variables, tokens, train=False, initial_carry=state, return_carry=True)


class LSTMLM(RecurrentLM):
  """'lstm_lm': tokens [B, T] -> logits [B, T, V] with OptimizedLSTMCell layers."""

  cell_type: ClassVar[str] = "lstm"


class GRULM(RecurrentLM):
  """'gru_lm': tokens [B, T] -> logits [B, T, V] with GRUCell layers."""

  cell_type: ClassVar[str] = "gru"


class RecurrentClassifier(nn.Module):
  """Base class of 'lstm_classifier' / 'gru_classifier'."""

  vocab_size: int
  num_classes: int
  embed_dim: int
  hidden: int
  num_layers: int = 1
  dropout: float = 0.0
  pooling: str = "final"  # 'final' | 'mean'
  pad_id: int = 0
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  cell_type: ClassVar[str] = "lstm"

  @nn.compact
  def __call__(self, tokens: jax.Array, *, train: bool) -> jax.Array:
    """tokens [B, T], right-padded -> logits f32 [B, num_classes]."""
    if self.pooling not in ("final", "mean"):
      raise ValueError(f"pooling must be 'final' or 'mean', got {self.pooling!r}.")
    mask = tokens != self.pad_id  # [B, T]
    # Right padding assumed: the real tokens are the first `lengths`. An
    # all-padding row (padded eval batch) gets length 1 so nothing indexes -1.
    lengths = jnp.maximum(mask.sum(axis=1), 1)
    drop = nn.Dropout(self.dropout, deterministic=not train)
    x = nn.Embed(
      self.vocab_size, self.embed_dim, dtype=self.dtype, param_dtype=self.param_dtype, name="embed"
    )(tokens)
    x = drop(x).astype(jnp.float32)
    for i in range(self.num_layers):
      if i:
        x = drop(x)
      bi = nn.Bidirectional(
        nn.RNN(_cell(self.cell_type, self.hidden, self.param_dtype), parent=None),
        nn.RNN(_cell(self.cell_type, self.hidden, self.param_dtype), parent=None),
        name=f"birnn_{i}",
      )
      (forward, backward), x = bi(x, seq_lengths=lengths, return_carry=True)  # x [B, T, 2h]
    if self.pooling == "final":
      pooled = jnp.concatenate([_hidden_state(forward), _hidden_state(backward)], axis=-1)
    else:
      weights = mask[..., None].astype(x.dtype)
      pooled = (x * weights).sum(axis=1) / jnp.maximum(weights.sum(axis=1), 1.0)
    pooled = drop(pooled)
    return nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype, name="head")(
      pooled
    ).astype(jnp.float32)


class LSTMClassifier(RecurrentClassifier):
  """'lstm_classifier': bidirectional OptimizedLSTMCell layers."""

  cell_type: ClassVar[str] = "lstm"


class GRUClassifier(RecurrentClassifier):
  """'gru_classifier': bidirectional GRUCell layers."""

  cell_type: ClassVar[str] = "gru"
