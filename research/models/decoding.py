"""Autoregressive generation for any language model that follows a small protocol.

  tokens = generate(model, variables, prompt, max_new_tokens=100, rng=jax.random.key(0),
                    temperature=0.8, top_k=20)   # int32 [B, P + 100]

The decoder protocol (implemented by `GPT` and the recurrent LMs; a new LM
implements these three members and `generate` works for it unchanged):

  model.decode_max_len -> int | None
      How many positions the decoding state can hold (GPT: block_size);
      None = unbounded (an RNN's state is a fixed-size summary).
  model.decode_init(variables, batch_size) -> state
      The state before any token (an empty KV cache, zero RNN carries).
  model.decode_step(variables, tokens [B, L], state) -> (logits f32 [B, L, V], state)
      Feeds the next L tokens; logits[:, i] predict the token after tokens[:, i].

and `model.apply(variables, tokens [B, decode_max_len], train=False)` ->
logits [B, decode_max_len, V] (the ordinary forward) for the window fallback.

How `generate` runs (one jit compilation per (model, shapes, sampling
settings); the number of new tokens only sets a static scan length, nothing is
retraced per token):
  1. cached phase: the prompt is fed in one `decode_step` (prefill), then one
     token per `jax.lax.scan` step, while the text fits in decode_max_len;
  2. window phase (only when P + max_new_tokens > decode_max_len): as nanoGPT
     does (`idx[:, -block_size:]`), each new token is predicted by a full
     forward over the last decode_max_len tokens, a fixed [B, decode_max_len]
     window sliced with `dynamic_slice`, so it is also one scan of fixed shapes.
     Positions restart at 0 at the start of each window, exactly as in
     nanoGPT's sampler. A sliding KV cache would be faster but would not give
     the same distribution (cached keys were computed at other positions).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

_PROTOCOL = ("decode_max_len", "decode_init", "decode_step")


def supports_generation(model: Any) -> bool:
  """Whether `generate` can run `model` (whether it implements the decoder protocol).

  A tool can offer generation for whichever model a config builds:
  `if supports_generation(model): generate(model, variables, prompt, ...)`.
  """
  return all(hasattr(model, member) for member in _PROTOCOL)


def top_k_mask(logits: jax.Array, k: int) -> jax.Array:
  """bool [..., V]: True for the k largest logits (and any tied with the k-th)."""
  kth = jax.lax.top_k(logits, k)[0][..., -1:]
  return logits >= kth


def top_p_mask(logits: jax.Array, p: float) -> jax.Array:
  """bool [..., V]: the nucleus, the smallest set of most likely tokens whose
  total probability is >= p (the most likely token is always kept)."""
  order = jnp.argsort(-logits, axis=-1)
  sorted_logits = jnp.take_along_axis(logits, order, axis=-1)
  probs = jax.nn.softmax(sorted_logits, axis=-1)
  # A token is in the nucleus iff the tokens ranked before it have mass < p.
  mass_before = jnp.cumsum(probs, axis=-1) - probs
  keep_sorted = mass_before < p
  # Undo the sort: inverse permutation of `order`.
  return jnp.take_along_axis(keep_sorted, jnp.argsort(order, axis=-1), axis=-1)


def sample_logits(
  logits: jax.Array,
  rng: jax.Array,
  temperature: float = 1.0,
  top_k: int | None = None,
  top_p: float | None = None,
  greedy: bool = False,
) -> jax.Array:
  """Picks one token per row: logits [B, V] -> int32 [B].

  greedy: argmax (the other settings are ignored). Otherwise samples from
  softmax(logits / temperature) restricted to the top_k most likely tokens and
  then to the top_p nucleus (either may be None = off).
  """
  logits = logits.astype(jnp.float32)
  if greedy:
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)
  logits = logits / temperature
  if top_k is not None:
    logits = jnp.where(top_k_mask(logits, top_k), logits, -jnp.inf)
  if top_p is not None:
    logits = jnp.where(top_p_mask(logits, top_p), logits, -jnp.inf)
  return jax.random.categorical(rng, logits, axis=-1).astype(jnp.int32)


def generate(
  model: Any,
  variables: Any,
  prompt: ArrayLike,
  *,
  max_new_tokens: int,
  rng: jax.Array | int,
  temperature: float = 1.0,
  top_k: int | None = None,
  top_p: float | None = None,
  greedy: bool = False,
) -> jax.Array:
  """Continues `prompt` int [B, P] (P >= 1; any array, e.g. numpy) by max_new_tokens tokens.

  Returns int32 [B, P + max_new_tokens] (the prompt, then the new tokens).
  `rng` is a PRNG key or an int seed; the same rng gives the same tokens.
  `model` is the unbound module (it is a static argument of the jitted
  function: equal modules share one compilation).
  """
  if max_new_tokens < 1:
    raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}.")
  if not greedy and not temperature > 0:
    raise ValueError(f"temperature must be > 0 (or use greedy=True), got {temperature}.")
  if top_k is not None and top_k < 1:
    raise ValueError(f"top_k must be >= 1, got {top_k}.")
  if top_k is not None:
    # As nanoGPT: a top_k above the vocabulary (e.g. 200 for 65 characters)
    # keeps every token.
    top_k = min(top_k, getattr(model, "vocab_size", top_k))
  if top_p is not None and not 0 < top_p <= 1:
    raise ValueError(f"top_p must be in (0, 1], got {top_p}.")
  if not supports_generation(model):
    missing = [m for m in _PROTOCOL if not hasattr(model, m)]
    raise TypeError(
      f"{type(model).__name__} does not implement the decoder protocol "
      f"(missing {missing}); see research.models.decoding."
    )
  prompt = jnp.asarray(prompt, jnp.int32)
  if prompt.ndim != 2 or prompt.shape[1] < 1:
    raise ValueError(f"prompt must be [batch, P >= 1], got shape {prompt.shape}.")
  if isinstance(rng, int):
    rng = jax.random.key(rng)
  return _generate_jit(
    model,
    variables,
    prompt,
    rng,
    max_new_tokens=max_new_tokens,
    temperature=float(temperature),
    top_k=top_k,
    top_p=None if top_p is None else float(top_p),
    greedy=bool(greedy),
  )


def _generate(model, variables, prompt, rng, *, max_new_tokens, temperature, top_k, top_p, greedy):
  batch, prompt_len = prompt.shape
  total = prompt_len + max_new_tokens
  max_len = model.decode_max_len
  sample = functools.partial(
    sample_logits, temperature=temperature, top_k=top_k, top_p=top_p, greedy=greedy
  )
  seq = jnp.zeros((batch, total), jnp.int32).at[:, :prompt_len].set(prompt)
  # Tokens sampled with the state (cached phase): step i feeds token P + i at
  # position P + i, which must be < max_len.
  if max_len is None:
    n_cached = max_new_tokens
  else:
    n_cached = min(max_new_tokens, max(max_len - prompt_len, 0))

  if n_cached:
    state = model.decode_init(variables, batch)
    logits, state = model.decode_step(variables, prompt, state)

    def cached_step(carry, i):
      seq, state, next_logits, rng = carry
      rng, key = jax.random.split(rng)
      token = sample(next_logits, key)
      seq = jax.lax.dynamic_update_slice(seq, token[:, None], (0, prompt_len + i))
      # The last step's forward is wasted; skipping it would need a second body.
      logits, state = model.decode_step(variables, token[:, None], state)
      return (seq, state, logits[:, -1], rng), None

    (seq, _, _, rng), _ = jax.lax.scan(
      cached_step, (seq, state, logits[:, -1], rng), jnp.arange(n_cached)
    )

  if n_cached < max_new_tokens:

    def window_step(carry, i):
      seq, rng = carry
      position = prompt_len + i  # Of the token sampled now.
      window = jax.lax.dynamic_slice_in_dim(seq, position - max_len, max_len, axis=1)
      logits = model.apply(variables, window, train=False)[:, -1]
      rng, key = jax.random.split(rng)
      token = sample(logits, key)
      return (jax.lax.dynamic_update_slice(seq, token[:, None], (0, position)), rng), None

    (seq, rng), _ = jax.lax.scan(window_step, (seq, rng), jnp.arange(n_cached, max_new_tokens))
  return seq


_generate_jit = jax.jit(
  _generate, static_argnames=("model", "max_new_tokens", "temperature", "top_k", "top_p", "greedy")
)
