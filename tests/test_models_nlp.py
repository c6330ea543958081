"""Tests for the NLP models (gpt, bert, seq2seq, recurrent), their Transformer
building blocks, and generation (research.models.decoding).

All models are tiny (vocab <= 50, dims <= 32, seq <= 16, 1-2 layers); full-size
parameter counts are checked with jax.eval_shape only (no compute).

Compilation dominates the run time, so the tests share compiled functions:
`apply` is one jitted function with the (hashable) model static, `init` is
cached per (model, input shapes), and most calls use the same [B, T] shape.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from research.models import build_model, check_model_config, decoding, model_fields
from research.models.bert import BertEncoder
from research.models.gpt import GPT
from research.models.seq2seq import greedy_decode
from research.models.transformer import TransformerBlock, causal_mask, padding_mask
from research.platforms.cpu import softmax_attention

# The tests compile many tiny programs once each: XLA's backend optimisations
# cost several times more than they save there.
FAST_COMPILE = {"xla_backend_optimization_level": 0}
fast_jit = functools.partial(jax.jit, compiler_options=FAST_COMPILE)

V = 29  # Vocabulary of the tiny models.
B, T = 2, 8

# name -> tiny fields. Every LM/classifier takes tokens [B, T]. Dropout is on
# (it is off in eval), so the tests of one model share its compilations.
LMS = {
  "gpt": dict(vocab_size=V, block_size=T, num_layers=2, num_heads=2, embed_dim=16, dropout=0.1),
  "lstm_lm": dict(vocab_size=V, embed_dim=8, hidden=16, num_layers=2, dropout=0.1),
  "gru_lm": dict(vocab_size=V, embed_dim=8, hidden=16, num_layers=2, dropout=0.1),
  "bert_mlm": dict(
    vocab_size=V, num_layers=2, num_heads=2, embed_dim=16, max_len=16, type_vocab_size=2
  ),
}
CLASSIFIERS = {
  # The same encoder fields as bert_mlm: pretrained encoders restore into it.
  "bert_classifier": dict(LMS["bert_mlm"], num_classes=3),
  "transformer_classifier": dict(vocab_size=V, num_classes=3, max_len=16, embed_dim=16),
  "lstm_classifier": dict(
    vocab_size=V, num_classes=3, embed_dim=8, hidden=16, num_layers=2, dropout=0.1
  ),
  "gru_classifier": dict(
    vocab_size=V, num_classes=3, embed_dim=8, hidden=16, dropout=0.1, pooling="mean"
  ),
}
SEQ2SEQ = dict(vocab_size=V, num_layers=1, num_heads=2, embed_dim=16, dropout=0.1)
NLP_MODELS = {**LMS, **CLASSIFIERS, "seq2seq": SEQ2SEQ}


def tokens(key=1, shape=(B, T), low=1):
  # numpy, not jax.random: every new shape of a jax.random call compiles threefry.
  return jnp.asarray(np.random.default_rng(key).integers(low, V, shape), jnp.int32)


def normal(key, shape):
  return jnp.asarray(np.random.default_rng(key).normal(size=shape), jnp.float32)


def right_padded(key=1):
  """[B, T] tokens with rows of length 5 and T, 0 = padding after the length."""
  x = tokens(key)
  return x.at[0, 5:].set(0)


def model_input(name, x):
  if name == "seq2seq":
    return {"inputs": x, "decoder_inputs": x[:, ::-1]}
  return x


def init(model, x, key=0):
  """Variables of `model` for inputs shaped like `x` (cached: init depends on shapes only)."""
  shapes = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), x)
  leaves, treedef = jax.tree.flatten(shapes)
  return _init(model, treedef, tuple(leaves), key)


@functools.cache
def _init(model, treedef, leaves, key):
  x = jax.tree.unflatten(treedef, [jnp.zeros(leaf.shape, leaf.dtype) for leaf in leaves])
  return nn.meta.unbox(fast_jit(lambda k: model.init(k, x, train=False))(jax.random.key(key)))


@functools.partial(jax.jit, static_argnames=("model", "train"), compiler_options=FAST_COMPILE)
def apply(model, variables, x, *, train=False, key=None):
  """model.apply as the train step calls it, compiled once per (model, shapes, train)."""
  return model.apply(variables, x, train=train, rngs=None if key is None else {"dropout": key})


def param_count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


# --------------------------------------------------------------------------- registry


@pytest.mark.parametrize("name", sorted(NLP_MODELS))
def test_registry_accepts_every_field_and_rejects_unknown(name):
  fields = model_fields(name)
  assert {"dtype", "param_dtype"} <= set(fields)
  kwargs = dict(NLP_MODELS[name], dtype="bfloat16", param_dtype="float32")
  check_model_config(name, kwargs)
  check_model_config(
    name, {f: NLP_MODELS[name].get(f, None) for f in fields if f not in ("dtype", "param_dtype")}
  )
  with pytest.raises(ValueError, match="no field"):
    check_model_config(name, dict(kwargs, not_a_field=1))
  assert build_model(name, axis_name="batch", **kwargs).dtype == jnp.bfloat16


# --------------------------------------------------------------------------- shapes / dtypes


@pytest.mark.parametrize("name", sorted(NLP_MODELS))
def test_output_shapes_float32_logits_and_params(name):
  model = build_model(name, **NLP_MODELS[name])
  x = model_input(name, right_padded() if name in CLASSIFIERS else tokens())
  variables = init(model, x)
  assert set(variables) == {"params"}
  for leaf in jax.tree.leaves(variables):
    assert leaf.dtype == jnp.float32
  expected = (B, 3) if name in CLASSIFIERS else (B, T, V)
  out = apply(model, variables, x)
  assert out.shape == expected and out.dtype == jnp.float32
  assert np.all(np.isfinite(out))
  # Train mode (dropout): shapes by tracing; computed for a Transformer and an RNN
  # below (each dropout program costs a second or more to compile).
  out = jax.eval_shape(
    lambda v: model.apply(v, x, train=True, rngs={"dropout": jax.random.key(2)}), variables
  )
  assert out.shape == expected and out.dtype == jnp.float32


@pytest.mark.parametrize("name", ["gpt", "lstm_lm"])
def test_dropout_in_train_mode_only(name):
  model = build_model(name, **LMS[name])
  x = tokens()
  variables = init(model, x)
  run = lambda key: apply(model, variables, x, train=True, key=jax.random.key(key))
  a = run(0)
  assert a.shape == (B, T, V) and np.all(np.isfinite(a))
  np.testing.assert_array_equal(run(0), a)
  assert not np.allclose(run(1), a)
  assert not np.allclose(apply(model, variables, x), a)


@pytest.mark.parametrize("name", sorted(NLP_MODELS))
def test_bfloat16_compute_keeps_float32_params_and_logits(name):
  # Traced only (eval_shape / make_jaxpr): dtypes, no compute.
  model = build_model(name, **NLP_MODELS[name], dtype="bfloat16")
  x = model_input(name, tokens())
  variables = nn.meta.unbox(jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False)))
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(variables))
  out = jax.eval_shape(lambda v: model.apply(v, x, train=False), variables)
  assert out.dtype == jnp.float32
  jaxpr = str(jax.make_jaxpr(lambda v: model.apply(v, x, train=False))(variables))
  assert "bf16" in jaxpr


def test_full_size_parameter_counts():
  def count(name, x, **kwargs):
    model = build_model(name, **kwargs)
    return param_count(
      jax.eval_shape(lambda: nn.meta.unbox(model.init(jax.random.key(0), x, train=False)))["params"]
    )

  one = jnp.zeros((1, 8), jnp.int32)
  # GPT-2 small (HF GPT2LMHeadModel, tied head): 124,439,808.
  assert (
    count("gpt", one, vocab_size=50257, block_size=1024, num_layers=12, num_heads=12, embed_dim=768)
    == 124_439_808
  )
  # BERT-base uncased: HF BertForMaskedLM 109,514,298; BertForSequenceClassification
  # (2 labels, includes the pooler) 109,483,778.
  bert = dict(vocab_size=30522, num_layers=12, num_heads=12, embed_dim=768, type_vocab_size=2)
  assert count("bert_mlm", one, **bert) == 109_514_298
  assert count("bert_classifier", one, **bert, num_classes=2) == 109_483_778
  # The Keras "Text classification with Transformer" example.
  assert (
    count("transformer_classifier", jnp.zeros((1, 200), jnp.int32), vocab_size=20000, num_classes=2)
    == 657_758
  )


# --------------------------------------------------------------------------- masking


@pytest.mark.parametrize("name", ["gpt", "lstm_lm"])
def test_lm_output_at_t_ignores_later_tokens(name):
  model = build_model(name, **LMS[name])
  x = tokens()
  variables = init(model, x)
  t = 4
  y = x.at[:, t + 1 :].set((x[:, t + 1 :] + 7) % V)
  a = apply(model, variables, x)
  b = apply(model, variables, y)
  np.testing.assert_allclose(a[:, : t + 1], b[:, : t + 1], atol=1e-6)
  assert not np.allclose(a[:, t + 1 :], b[:, t + 1 :])


def is_token_table(path, leaf):
  return path[-1].key == "embedding" and leaf.shape[0] == V


@pytest.mark.parametrize("name", sorted(CLASSIFIERS))  # gru_classifier pools by the mean.
def test_classifier_ignores_padding(name):
  model = build_model(name, **CLASSIFIERS[name])
  x = right_padded()
  variables = init(model, x)
  logits = apply(model, variables, x)
  # More padding columns change nothing.
  longer = jnp.pad(x, ((0, 0), (0, 4)))
  np.testing.assert_allclose(apply(model, variables, longer), logits, atol=1e-5)
  # Nor does what the padding id embeds to (row 0 of the token table).
  params = jax.tree_util.tree_map_with_path(
    lambda path, p: p.at[0].add(5.0) if is_token_table(path, p) else p, variables["params"]
  )
  assert (
    sum(
      is_token_table(path, p)
      for path, p in jax.tree_util.tree_leaves_with_path(variables["params"])
    )
    == 1
  )
  np.testing.assert_allclose(apply(model, {"params": params}, x), logits, atol=1e-5)
  # While a real token does matter.
  assert not np.allclose(
    apply(model, variables, x.at[0, 1].set(x[0, 1] % (V - 1) + 1))[0], logits[0]
  )


def test_padding_and_causal_masks():
  pad = padding_mask(jnp.array([[3, 4, 0]]))
  assert pad.shape == (1, 1, 1, 3) and pad.tolist() == [[[[True, True, False]]]]
  c = causal_mask(2, 4)[0, 0]  # Two queries at the end of four keys.
  assert c.tolist() == [[True, True, True, False], [True, True, True, True]]


# --------------------------------------------------------------------------- building blocks


def test_softmax_attention_matches_jax_dot_product_attention():
  q, k, v = (normal(i, (2, 5, 2, 4)) for i in range(3))
  mask = jnp.logical_and(
    causal_mask(5), padding_mask(jnp.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]))
  )
  np.testing.assert_allclose(
    fast_jit(softmax_attention)(q, k, v, mask),
    fast_jit(jax.nn.dot_product_attention)(q, k, v, mask=mask),
    atol=1e-5,
  )


def test_transformer_block_on_embeddings_self_and_cross():
  # Post-LN here; pre-LN blocks with cross-attention run in seq2seq.
  x = normal(0, (2, 5, 16))
  context = normal(1, (2, 3, 8))
  block = TransformerBlock(
    num_heads=2, mlp_ratio=2, pre_ln=False, cross_attention=True, use_bias=False
  )
  variables = fast_jit(
    lambda: nn.meta.unbox(block.init(jax.random.key(2), x, context=context, train=False))
  )()
  params = variables["params"]
  assert set(params) == {"attn", "cross_attn", "mlp", "ln_1", "ln_cross", "ln_2"}
  assert params["mlp"]["fc"]["kernel"].shape == (16, 32) and "bias" not in params["mlp"]["fc"]
  assert params["cross_attn"]["key"]["kernel"].shape == (8, 2, 8)
  out = fast_jit(lambda v: block.apply(v, x, context=context, train=False))(variables)
  assert out.shape == x.shape
  # Post-LN ends with a LayerNorm: every position has mean 0 over features.
  np.testing.assert_allclose(out.mean(-1), 0.0, atol=1e-5)


# --------------------------------------------------------------------------- GPT decoding


def tiny_gpt(**kwargs):
  return build_model("gpt", **{**LMS["gpt"], **kwargs})


def test_gpt_kv_cache_matches_full_recomputation():
  model = tiny_gpt()
  x = tokens()
  variables = init(model, x)
  full = apply(model, variables, x)
  state = model.decode_init(variables, B)
  step = fast_jit(model.decode_step)
  chunks = []
  for start, stop in [(0, 3), (3, 4), (4, 5), (5, 8)]:  # Prefill, then 1, 1 and 3 tokens.
    logits, state = step(variables, x[:, start:stop], state)
    chunks.append(logits)
  np.testing.assert_allclose(jnp.concatenate(chunks, axis=1), full, atol=1e-5)


def test_generate_same_seed_same_tokens_and_compiles_once(monkeypatch):
  traces = []
  original = GPT.decode_step
  monkeypatch.setattr(
    GPT, "decode_step", lambda self, *a: (traces.append(1), original(self, *a))[1]
  )
  model = tiny_gpt()
  prompt = tokens(shape=(B, 5))
  variables = init(model, tokens())
  # Sampling settings no other test uses, so the first call compiles. 5 + 6 > block_size:
  # both the cached and the window phase run.
  run = lambda p, seed: decoding.generate(
    model, variables, p, max_new_tokens=6, rng=seed, temperature=1.5, top_k=10
  )
  a = run(prompt, 0)
  assert a.shape == (B, 11) and a.dtype == jnp.int32
  np.testing.assert_array_equal(a[:, :5], prompt)
  assert len(traces) == 2  # Prefill + the scan body, whatever the number of tokens.
  cache_size = decoding._generate_jit._cache_size()
  np.testing.assert_array_equal(run(prompt, 0), a)
  b = run(prompt, jax.random.key(1))
  assert not np.array_equal(a, b)
  run((prompt + 1) % V, 2)
  assert len(traces) == 2 and decoding._generate_jit._cache_size() == cache_size


def reference_greedy(model, variables, prompt, n, context):
  """Greedy continuation by full recomputation on the last `context` tokens (nanoGPT).

  The window is right-padded to `context` so every forward has one shape (one
  compilation); the models are causal, so the padding cannot change the logits
  read at the last real position.
  """
  seq = np.asarray(prompt)
  for _ in range(n):
    window = seq[:, -context:]
    length = window.shape[1]
    padded = np.pad(window, ((0, 0), (0, context - length)))
    logits = apply(model, variables, jnp.asarray(padded))
    seq = np.concatenate([seq, np.argmax(logits[:, length - 1], -1)[:, None]], 1)
  return seq


def test_gpt_greedy_equals_stepwise_argmax_beyond_block_size():
  model = tiny_gpt()
  prompt = tokens(shape=(B, 5))
  variables = init(model, tokens())
  n = 6  # 5 + 6 = 11 > block_size 8: 3 cached steps, then 3 window steps.
  out = decoding.generate(model, variables, prompt, max_new_tokens=n, rng=0, greedy=True)
  assert out.shape == (B, 11)
  np.testing.assert_array_equal(out, reference_greedy(model, variables, prompt, n, T))
  # A prompt longer than block_size is cropped to the last block_size tokens.
  long_prompt = tokens(shape=(B, 10))
  out = decoding.generate(model, variables, long_prompt, max_new_tokens=2, rng=0, greedy=True)
  np.testing.assert_array_equal(out, reference_greedy(model, variables, long_prompt, 2, T))


@pytest.mark.parametrize("name", ["lstm_lm", "gru_lm"])
def test_recurrent_lm_carries_state(name):
  model = build_model(name, **LMS[name])
  x = tokens()
  variables = init(model, x)
  # Carrying the state chunk by chunk equals one pass.
  state = model.decode_init(variables, B)
  step = fast_jit(model.decode_step)
  a, state = step(variables, x[:, :4], state)
  b, _ = step(variables, x[:, 4:], state)
  np.testing.assert_allclose(jnp.concatenate([a, b], 1), apply(model, variables, x), atol=1e-5)


def test_recurrent_lm_greedy_generation_equals_stepwise_argmax():
  model = build_model("lstm_lm", **LMS["lstm_lm"])
  x = tokens()
  variables = init(model, x)
  # No length limit: the state carries everything.
  out = decoding.generate(model, variables, x[:, :3], max_new_tokens=12, rng=0, greedy=True)
  np.testing.assert_array_equal(out, reference_greedy(model, variables, x[:, :3], 12, 16))


def test_generate_rejects_models_without_the_protocol_and_bad_settings():
  model = build_model("bert_mlm", **LMS["bert_mlm"])
  assert [
    n for n in sorted(NLP_MODELS) if decoding.supports_generation(build_model(n, **NLP_MODELS[n]))
  ] == ["gpt", "gru_lm", "lstm_lm"]
  with pytest.raises(TypeError, match="decoder protocol"):
    decoding.generate(model, {}, tokens(), max_new_tokens=2, rng=0)
  with pytest.raises(ValueError, match="temperature"):
    decoding.generate(tiny_gpt(), {}, tokens(), max_new_tokens=2, rng=0, temperature=0.0)
  with pytest.raises(ValueError, match="top_p"):
    decoding.generate(tiny_gpt(), {}, tokens(), max_new_tokens=2, rng=0, top_p=1.5)


# --------------------------------------------------------------------------- sampling
# Each test compiles one program for all its cases (random sampling is costly to compile).


def test_top_p_keeps_smallest_set_reaching_p():
  logits = jnp.log(jnp.array([[0.05, 0.5, 0.15, 0.3]]))
  ps = (0.75, 0.85, 0.4, 1.0)

  @fast_jit
  def run(keys):
    masks = [decoding.top_p_mask(logits, p) for p in ps]
    return masks, jax.vmap(lambda k: decoding.sample_logits(logits, k, top_p=0.75))(keys)

  masks, draws = run(jax.random.split(jax.random.key(0), 400))
  assert [m.tolist() for m in masks] == [
    [[False, True, False, True]],
    [[False, True, True, True]],
    [[False, True, False, False]],
    [[True, True, True, True]],
  ]
  assert set(np.unique(draws).tolist()) == {1, 3}
  # Renormalised over the nucleus: 0.5 / 0.8 of the draws are token 1.
  assert abs(float((draws == 1).mean()) - 0.625) < 0.08


def test_sample_logits_top_k_temperature_and_greedy():
  logits = jnp.log(jnp.array([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]]))
  noisy = normal(1, (8, V))

  @fast_jit
  def run(keys):
    sample = lambda logits, **kw: jax.vmap(lambda k: decoding.sample_logits(logits, k, **kw))(keys)
    return (
      sample(logits, top_k=2),
      sample(logits, greedy=True),
      sample(logits, temperature=1e-3),
      sample(noisy, top_k=1),
    )

  top2, greedy, cold, top1 = run(jax.random.split(jax.random.key(0), 300))
  assert set(np.unique(top2[:, 0]).tolist()) == {2, 3}
  assert set(np.unique(top2[:, 1]).tolist()) == {0, 1}
  assert (greedy == jnp.array([3, 0])).all()
  # A very low temperature is greedy, and so is top_k=1 whatever the rng.
  assert (cold == jnp.array([3, 0])).all()
  assert (top1 == jnp.argmax(noisy, -1)).all()


# --------------------------------------------------------------------------- BERT


def test_bert_mlm_encoder_restores_into_classifier_by_path():
  mlm = build_model("bert_mlm", **LMS["bert_mlm"])
  clf = build_model("bert_classifier", **CLASSIFIERS["bert_classifier"])
  x = right_padded()
  mlm_params = init(mlm, x)["params"]
  clf_params = init(clf, x)["params"]
  assert jax.tree.structure(mlm_params["encoder"]) == jax.tree.structure(clf_params["encoder"])
  assert jax.tree.map(jnp.shape, mlm_params["encoder"]) == jax.tree.map(
    jnp.shape, clf_params["encoder"]
  )
  assert "segment_embed" in mlm_params["encoder"]
  # "Pretrained" weights: the MLM's, moved away from anything an init holds.
  pretrained = jax.tree.map(lambda p: p + 0.1, mlm_params["encoder"])
  restored = dict(clf_params, encoder=pretrained)
  logits = apply(clf, {"params": restored}, x)
  assert logits.shape == (B, 3)
  # The restored classifier sees exactly the pretrained encoder's features.
  h = apply(BertEncoder(**LMS["bert_mlm"]), {"params": pretrained}, x)
  pooled = jnp.tanh(h[:, 0] @ restored["pooler"]["kernel"] + restored["pooler"]["bias"])
  expected = pooled @ restored["classifier"]["kernel"] + restored["classifier"]["bias"]
  np.testing.assert_allclose(logits, expected, atol=1e-5)


def test_bert_mlm_ties_decoder_to_token_embedding_and_takes_segments():
  model = build_model("bert_mlm", **LMS["bert_mlm"])
  x = tokens()
  variables = init(model, x)
  params = variables["params"]
  assert params["mlm_bias"].shape == (V,)
  # Tied: the only [*, V]-sized parameters are the token table and the output bias.
  with_vocab = {
    jax.tree_util.keystr(path)
    for path, p in jax.tree_util.tree_leaves_with_path(params)
    if V in p.shape
  }
  assert with_vocab == {"['encoder']['token_embed']['embedding']", "['mlm_bias']"}
  segments = jnp.zeros_like(x).at[:, 4:].set(1)
  a = apply(model, variables, {"tokens": x, "segment_ids": segments})
  b = apply(model, variables, x)  # Segment 0 everywhere.
  assert a.shape == (B, T, V) and not np.allclose(a, b)
  # BERT is post-LN; the pre-LN variant ends with a final LayerNorm (traced only).
  assert "final_ln" not in params["encoder"]
  pre_ln = build_model("bert_mlm", **LMS["bert_mlm"], pre_ln=True)
  shapes = nn.meta.unbox(jax.eval_shape(lambda: pre_ln.init(jax.random.key(0), x, train=False)))
  assert "final_ln" in shapes["params"]["encoder"]
  assert jax.eval_shape(lambda v: pre_ln.apply(v, x, train=False), shapes).shape == (B, T, V)


def test_bert_mlm_positions_give_the_dense_logits_at_those_positions():
  model = build_model("bert_mlm", **LMS["bert_mlm"])
  x = tokens()
  variables = init(model, x)
  positions = jnp.asarray(np.random.default_rng(0).integers(0, T, (B, 3)), jnp.int32)
  dense = apply(model, variables, x)
  gathered = apply(model, variables, {"tokens": x, "positions": positions})
  assert gathered.shape == (B, 3, V)
  np.testing.assert_allclose(
    gathered,
    np.take_along_axis(np.asarray(dense), np.asarray(positions)[..., None], 1),
    rtol=1e-5,
    atol=1e-5,
  )


# --------------------------------------------------------------------------- seq2seq


@pytest.mark.slow
def test_seq2seq_learns_to_reverse():
  vocab, length, batch = 12, 6, 64  # 0 = pad, 1 = bos, 2..11 content.
  model = build_model(
    "seq2seq", vocab_size=vocab, num_layers=1, num_heads=2, embed_dim=32, mlp_dim=32, dropout=0.0
  )

  def make_batch(key):
    src = jax.random.randint(key, (batch, length), 2, vocab)
    tgt = src[:, ::-1]
    dec = jnp.concatenate([jnp.ones((batch, 1), jnp.int32), tgt[:, :-1]], axis=1)
    return {"inputs": src, "decoder_inputs": dec}, tgt

  zeros = jnp.zeros((batch, length), jnp.int32)
  params = init(model, {"inputs": zeros, "decoder_inputs": zeros})["params"]
  tx = optax.adam(3e-3)

  @functools.partial(jax.jit, compiler_options=FAST_COMPILE)
  def train(params, key):
    def step(carry, key):
      params, opt_state = carry
      x, y = make_batch(key)
      loss_fn = lambda p: optax.softmax_cross_entropy_with_integer_labels(
        model.apply({"params": p}, x, train=True), y
      ).mean()
      loss, grads = jax.value_and_grad(loss_fn)(params)
      updates, opt_state = tx.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), loss

    (params, _), losses = jax.lax.scan(step, (params, tx.init(params)), jax.random.split(key, 300))
    return params, losses

  params, losses = train(params, jax.random.key(1))
  assert losses[-20:].mean() < 0.1 * losses[:5].mean()
  x, y = fast_jit(make_batch)(jax.random.key(2))
  pred = greedy_decode(model, {"params": params}, x["inputs"], max_len=length)
  assert pred.shape == (batch, length) and pred.dtype == jnp.int32
  assert float((pred == y).all(axis=1).mean()) > 0.9


def test_seq2seq_pointer_generator_is_a_normalised_mixture_and_decodes_like_the_full_pass():
  """pointer_generator=True: exp(output) sums to 1 over the vocabulary; with the gate forced
  shut (p_gen = 0) all mass sits on source tokens; greedy decoding with the KV
  cache matches the teacher-forced full pass on its own output."""
  vocab, batch = 11, 3
  model = build_model(
    "seq2seq", vocab_size=vocab, num_layers=1, num_heads=2, embed_dim=16, mlp_dim=16,
    dropout=0.0, pointer_generator=True,
  )  # fmt: skip
  src = jnp.asarray([[3, 4, 5, 0], [6, 6, 0, 0], [7, 8, 9, 10]], jnp.int32)
  dec = jnp.asarray([[1, 3, 4], [1, 6, 2], [1, 7, 8]], jnp.int32)
  variables = model.init(jax.random.key(0), {"inputs": src, "decoder_inputs": dec}, train=False)
  logp = model.apply(variables, {"inputs": src, "decoder_inputs": dec}, train=False)
  np.testing.assert_allclose(jnp.exp(logp).sum(-1), 1.0, atol=1e-5)

  shut = jax.tree.map(lambda x: x, variables)
  shut["params"]["copy_gate"]["bias"] = jnp.full((1,), -1e4)
  p = jnp.exp(model.apply(shut, {"inputs": src, "decoder_inputs": dec}, train=False))
  for b in range(batch):
    on_source = np.zeros(vocab, bool)
    on_source[[int(t) for t in src[b] if t != 0]] = True
    np.testing.assert_allclose(p[b][:, on_source].sum(-1), 1.0, atol=1e-5)

  out = greedy_decode(model, variables, src, max_len=4)
  full = model.apply(
    variables,
    {"inputs": src, "decoder_inputs": jnp.concatenate([jnp.ones((batch, 1), jnp.int32), out[:, :-1]], 1)},
    train=False,
  )  # fmt: skip
  np.testing.assert_array_equal(jnp.argmax(full, -1), out)
