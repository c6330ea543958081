"""Beam search: exact on a space small enough to enumerate, greedy at beam 1."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from research.models import build_model
from research.models.beam_search import beam_search, length_penalty
from research.models.seq2seq import greedy_decode

VOCAB, PAD, BOS, EOS = 5, 0, 1, 2


def _model_and_vars(seed=0, vocab=VOCAB):
  model = build_model(
    "seq2seq", vocab_size=vocab, num_layers=1, num_heads=2, embed_dim=16, mlp_dim=16, dropout=0.0
  )
  x = jnp.zeros((2, 4), jnp.int32)
  variables = model.init(jax.random.key(seed), {"inputs": x, "decoder_inputs": x}, train=False)
  # Larger weights make the distributions peaky enough for ties to be impossible.
  params = jax.tree.map(lambda p: 3.0 * p, variables["params"])
  return model, {"params": params}


def _logprob(model, variables, src, target):
  """Teacher-forced log P(target | src) of one sequence (tokens after BOS)."""
  dec = jnp.asarray([[BOS, *target[:-1]]], jnp.int32)
  logits = model.apply(variables, {"inputs": src[None], "decoder_inputs": dec}, train=False)
  logp = jax.nn.log_softmax(logits[0])
  return float(sum(logp[i, t] for i, t in enumerate(target)))


@pytest.mark.slow  # enumerates every hypothesis; two beam compilations
@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_wide_beam_finds_the_best_hypothesis_by_enumeration(alpha):
  model, variables = _model_and_vars()
  src = jnp.asarray([[3, 4, 3, 0], [4, 4, 0, 0]], jnp.int32)
  max_len = 3
  out = np.asarray(
    beam_search(model, variables, src, beam_size=25, max_len=max_len, alpha=alpha, eos_id=EOS)
  )
  content = [t for t in range(VOCAB) if t not in (PAD, BOS, EOS)]
  for b in range(2):
    # Finished hypotheses: content tokens then EOS (PAD and BOS are real tokens
    # the model may emit too, so include them).
    tokens = [t for t in range(VOCAB) if t != EOS]
    best, best_seq = -np.inf, None
    for n in range(max_len):
      for body in itertools.product(tokens, repeat=n):
        seq = [*body, EOS]
        score = _logprob(model, variables, src[b], seq) / float(length_penalty(len(seq), alpha))
        if score > best:
          best, best_seq = score, seq
    assert content  # the enumeration covers sequences with content tokens
    got = [int(t) for t in out[b]]
    assert got[: len(best_seq)] == best_seq and all(t == 0 for t in got[len(best_seq) :])


@pytest.mark.slow  # a greedy and a beam compilation
def test_beam_of_one_without_penalty_is_greedy_up_to_eos():
  model, variables = _model_and_vars(seed=3, vocab=7)
  src = jnp.asarray(np.random.default_rng(0).integers(3, 7, (4, 5)), jnp.int32)
  greedy = np.asarray(greedy_decode(model, variables, src, max_len=6, bos_id=BOS))
  beam = np.asarray(beam_search(model, variables, src, beam_size=1, max_len=6, alpha=0.0))
  for g, b in zip(greedy, beam):
    # Beam 1 follows the greedy path; where that path ends with EOS the two agree
    # exactly. A path that never ends is cut at max_len by greedy decoding, while
    # the beam returns its best *finished* hypothesis: the greedy prefix + EOS.
    ends = np.flatnonzero(b == EOS)
    m = ends[0] if len(ends) else len(b)
    np.testing.assert_array_equal(b[:m], g[:m])
    if EOS in g:
      n = np.flatnonzero(g == EOS)[0] + 1
      np.testing.assert_array_equal(b[:n], g[:n])
      assert (b[n:] == 0).all()


def test_output_shape_dtype_and_padding_after_eos():
  model, variables = _model_and_vars(seed=1)
  src = jnp.asarray([[3, 4, 0, 0]] * 3, jnp.int32)
  out = beam_search(model, variables, src, beam_size=3, max_len=5)
  assert out.shape == (3, 5) and out.dtype == jnp.int32
  for row in np.asarray(out):
    ends = np.flatnonzero(row == EOS)
    if len(ends):
      assert (row[ends[0] + 1 :] == 0).all()
