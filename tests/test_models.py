"""Tests for research.models: shapes, dtypes, parameter counts, BatchNorm, dropout,
config checking, and pmap/jit agreement of BatchNorm across devices.

Everything runs on tiny inputs; the full-size ResNets are only traced with
jax.eval_shape (parameter counts and output shapes) so no real compute happens.
"""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from research.models import MODELS, build_model, check_model_config, model_fields

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name -> (tiny input shape [batch, ...], extra kwargs) for models cheap enough to run.
SMALL = {
  "logistic": ((2, 6, 6, 1), {}),
  "mlp": ((2, 6, 6, 1), {"hidden": (16, 8)}),
  "cnn": ((2, 28, 28, 1), {}),
  "lenet": ((2, 28, 28, 1), {}),
  "cnn1d": ((2, 40, 1), {}),
  "resnet_tiny": ((2, 16, 16, 3), {"stem": "small"}),
}
# resnet_tiny's first apply compiles BatchNorm for ~10 s on 2 cores: its cases run in the
# slow tier; test_zero_init_residual builds it in the fast one.
SMALL_FAST = [
  pytest.param(n, marks=pytest.mark.slow) if n == "resnet_tiny" else n for n in sorted(SMALL)
]
BIG_RESNETS = ("resnet18", "resnet34", "resnet50")
BN_MODELS = {"resnet18", "resnet34", "resnet50", "resnet_tiny"}


def param_count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def init(model, shape, key=0):
  return model.init(jax.random.key(key), jnp.zeros(shape), train=False)


def run(model, variables, x, *, train, key=0):
  """model.apply the way the training loop calls it; returns (logits, new batch_stats or None)."""
  # Eager, not jitted: for these tiny inputs, compiling whole ResNets costs more
  # than dispatching their ops one by one.
  return _apply(model, variables, x, train, jax.random.key(key))


def _apply(model, variables, x, train, key):
  rngs = {"dropout": key}
  if "batch_stats" in variables:
    out, state = model.apply(variables, x, train=train, rngs=rngs, mutable=["batch_stats"])
    return out, state["batch_stats"]
  return model.apply(variables, x, train=train, rngs=rngs), None


# Language models and seq2seq (tests/test_models_nlp.py) predict tokens, not classes.
TOKEN_MODELS = {"gpt", "lstm_lm", "gru_lm", "bert_mlm", "seq2seq"}
TEXT_CLASSIFIERS = {
  "bert_classifier",
  "transformer_classifier",
  "lstm_classifier",
  "gru_classifier",
}


# Recommendation models score users x items (tests/test_recsys_models.py).
RECSYS_MODELS = {"biased_mf", "ncf", "two_tower", "sasrec"}
# Finance risk: table classifiers (with num_classes) and return forecasters
# (num_outputs; tests/test_finance_*.py).
TABULAR_CLASSIFIERS = {"tabular_logistic", "tabular_mlp", "ft_transformer"}
FORECASTERS = {"lstm_forecaster", "transformer_forecaster"}
# Detection: images -> CenterNet maps [B, H/4, W/4, num_classes + 4] (tests/test_detection.py).
DETECTORS = {"centernet"}
# Segmentation: images -> per-pixel logits (tests/test_segmentation.py); generative: a GAN's two
# players under one parameter tree (tests/test_gan.py).
SEGMENTERS = {"unet"}
GENERATORS = {"dcgan"}


def test_registry_is_exactly_the_documented_models():
  assert set(MODELS) == (
    set(SMALL)
    | set(BIG_RESNETS)
    | TOKEN_MODELS
    | TEXT_CLASSIFIERS
    | RECSYS_MODELS
    | TABULAR_CLASSIFIERS
    | FORECASTERS
    | DETECTORS
    | SEGMENTERS
    | GENERATORS
  )
  for name in MODELS:
    fields = set(model_fields(name))
    assert {"dtype", "param_dtype"} <= fields
    no_classes = TOKEN_MODELS | RECSYS_MODELS | FORECASTERS | GENERATORS
    assert ("num_classes" in fields) == (name not in no_classes)
    # BatchNorm statistics are averaged over the mapped axis under pmap (the DCGAN's generator).
    assert ("axis_name" in fields) == (name in BN_MODELS | GENERATORS)


@pytest.mark.parametrize("name", SMALL_FAST)
@pytest.mark.parametrize("train", [False, True])
def test_output_shape_and_float32_logits(name, train):
  shape, kwargs = SMALL[name]
  model = build_model(name, num_classes=7, **kwargs)
  variables = init(model, shape)
  x = jax.random.normal(jax.random.key(1), shape)
  logits, _ = run(model, variables, x, train=train)
  assert logits.shape == (shape[0], 7)
  assert logits.dtype == jnp.float32
  assert np.all(np.isfinite(logits))
  for leaf in jax.tree.leaves(variables["params"]):
    assert leaf.dtype == jnp.float32


@pytest.mark.parametrize("name", BIG_RESNETS)
def test_big_resnet_output_shape_via_eval_shape(name):
  model = build_model(name, num_classes=10, stem="small")
  x = jax.ShapeDtypeStruct((3, 32, 32, 3), jnp.float32)
  variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)
  out = jax.eval_shape(
    lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]), variables, x
  )
  logits, state = out
  assert logits.shape == (3, 10) and logits.dtype == jnp.float32
  assert jax.tree.structure(state["batch_stats"]) == jax.tree.structure(variables["batch_stats"])


@pytest.mark.slow
def test_resnet_imagenet_stem_runs_on_small_input():
  model = build_model("resnet_tiny", num_classes=3, stem="imagenet")
  variables = init(model, (2, 32, 32, 3))
  logits, _ = run(model, variables, jnp.ones((2, 32, 32, 3)), train=True)
  assert logits.shape == (2, 3) and logits.dtype == jnp.float32


def test_cnn1d_accepts_inputs_without_channel_axis():
  model = build_model("cnn1d", num_classes=10)
  variables = init(model, (2, 40, 1))
  x = jax.random.normal(jax.random.key(1), (2, 40))
  a, _ = run(model, variables, x, train=False)
  b, _ = run(model, variables, x[..., None], train=False)
  np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", SMALL_FAST)
def test_bfloat16_compute_keeps_float32_params_and_logits(name):
  shape, kwargs = SMALL[name]
  model = build_model(name, num_classes=5, dtype="bfloat16", **kwargs)  # string as in a config
  assert model.dtype == jnp.bfloat16
  variables = init(model, shape)
  for leaf in jax.tree.leaves(variables):
    assert leaf.dtype == jnp.float32
  x = jax.random.normal(jax.random.key(1), shape)
  logits, stats = run(model, variables, x, train=True)
  assert logits.dtype == jnp.float32
  if stats is not None:
    for leaf in jax.tree.leaves(stats):
      assert leaf.dtype == jnp.float32
  # The matmuls / convolutions really run in bfloat16.
  jaxpr = str(
    jax.make_jaxpr(lambda v, x: _apply(model, v, x, False, jax.random.key(0))[0])(variables, x)
  )
  assert "bf16" in jaxpr


def eval_shape_params(name, shape, **kwargs):
  model = build_model(name, **kwargs)
  variables = jax.eval_shape(lambda: init(model, shape))
  return param_count(variables["params"])


@pytest.mark.parametrize(
  "name, stem, num_classes, shape, expected",
  [
    # torchvision's numbers (BatchNorm scale and bias are parameters).
    ("resnet18", "imagenet", 1000, (1, 224, 224, 3), 11_689_512),
    ("resnet34", "imagenet", 1000, (1, 224, 224, 3), 21_797_672),
    ("resnet50", "imagenet", 1000, (1, 224, 224, 3), 25_557_032),
    # The usual CIFAR ResNet-18 (3x3 stem, no pool).
    ("resnet18", "small", 10, (1, 32, 32, 3), 11_173_962),
  ],
)
def test_resnet_parameter_counts(name, stem, num_classes, shape, expected):
  assert eval_shape_params(name, shape, num_classes=num_classes, stem=stem) == expected


def test_resnet_running_stats_are_not_params():
  model = build_model("resnet_tiny", num_classes=10)
  variables = jax.eval_shape(lambda: init(model, (1, 16, 16, 3)))
  assert set(variables) == {"params", "batch_stats"}
  stats = jax.tree_util.tree_leaves_with_path(variables["batch_stats"])
  assert {path[-1].key for path, _ in stats} == {"mean", "var"}


@pytest.mark.parametrize(
  "name, shape, expected",
  [
    ("cnn", (1, 28, 28, 1), 824_458),
    ("lenet", (1, 28, 28, 1), 61_706),  # the classic LeNet-5 count
    ("cnn1d", (1, 40, 1), 5_210),  # greydanus/mnist1d ConvBase: 150 + 1900 + 1900 + 1260
    ("logistic", (1, 28, 28, 1), 7_850),
  ],
)
def test_small_model_parameter_counts(name, shape, expected):
  assert eval_shape_params(name, shape, num_classes=10) == expected


@pytest.mark.parametrize("zero", [True, False])
def test_zero_init_residual(zero):
  model = build_model("resnet_tiny", num_classes=10, zero_init_residual=zero)
  params = init(model, (1, 8, 8, 3))["params"]
  # Basic block's BatchNorms are BatchNorm_0 (after conv 1) and BatchNorm_1 (last).
  for block in ("stage1_block1", "stage2_block1"):
    last = params[block]["BatchNorm_1"]["scale"]
    np.testing.assert_array_equal(last, np.zeros_like(last) if zero else np.ones_like(last))
    np.testing.assert_array_equal(params[block]["BatchNorm_0"]["scale"], 1.0)
  # Only stage 2 changes shape, so only it has a projection shortcut.
  assert "proj_conv" in params["stage2_block1"] and "proj_conv" not in params["stage1_block1"]


@pytest.mark.slow
def test_batchnorm_stats_update_in_train_not_in_eval():
  model = build_model("resnet_tiny", num_classes=4)
  variables = init(model, (4, 8, 8, 3))
  x = 3.0 + jax.random.normal(jax.random.key(1), (4, 8, 8, 3))
  _, train_stats = run(model, variables, x, train=True)
  _, eval_stats = run(model, variables, x, train=False)
  before = jax.tree.leaves(variables["batch_stats"])
  assert all(not np.allclose(a, b) for a, b in zip(before, jax.tree.leaves(train_stats)))
  for a, b in zip(before, jax.tree.leaves(eval_stats)):
    np.testing.assert_array_equal(a, b)
  # Eval needs no mutable collection, and uses the running averages: the
  # output then does not depend on the rest of the batch.
  single = model.apply(variables, x[:1], train=False)
  batch = model.apply(variables, x, train=False)
  np.testing.assert_allclose(single, batch[:1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_dropout_uses_rng_in_train_and_is_off_in_eval(name):
  shape, kwargs = SMALL[name]
  model = build_model(name, num_classes=6, **{**kwargs, "dropout": 0.5})
  variables = init(model, shape)
  x = jax.random.normal(jax.random.key(1), shape)
  a, _ = run(model, variables, x, train=True, key=0)
  a2, _ = run(model, variables, x, train=True, key=0)
  b, _ = run(model, variables, x, train=True, key=1)
  np.testing.assert_array_equal(a, a2)
  assert not np.allclose(a, b)
  e1, _ = run(model, variables, x, train=False, key=0)
  e2, _ = run(model, variables, x, train=False, key=1)
  np.testing.assert_array_equal(e1, e2)
  np.testing.assert_array_equal(e1, model.apply(variables, x, train=False))  # no rng needed
  assert not np.allclose(a, e1)


def test_check_model_config_unknown_name_lists_valid_names():
  with pytest.raises(ValueError) as err:
    check_model_config("resnet19", {})
  for name in MODELS:
    assert repr(name) in str(err.value)
  with pytest.raises(ValueError, match="valid names"):
    build_model("nope", num_classes=10)


def test_check_model_config_unknown_field_lists_valid_fields():
  with pytest.raises(ValueError) as err:
    check_model_config("mlp", {"num_classes": 10, "hiden": (8,), "depth": 3})
  message = str(err.value)
  assert "'depth'" in message and "'hiden'" in message
  for field in model_fields("mlp"):
    assert repr(field) in message
  assert "'parent'" not in message and "'name'" not in message
  with pytest.raises(ValueError, match="valid fields"):
    build_model("cnn", num_classes=10, width=3)


def test_check_model_config_accepts_valid_configs():
  check_model_config("resnet50", {"num_classes": 10, "stem": "small", "dtype": "bfloat16"})
  check_model_config("mlp", {"num_classes": 2, "hidden": [4], "dropout": 0.1})
  # build_model takes axis_name for every model, so the check accepts it too.
  check_model_config("logistic", {"num_classes": 2, "axis_name": "batch"})
  with pytest.raises(ValueError, match="dtype"):
    check_model_config("cnn", {"dtype": "int8"})
  with pytest.raises(ValueError, match="param_dtype"):
    check_model_config("cnn", {"param_dtype": None})


def test_build_model_axis_name_and_dtypes():
  assert build_model("resnet_tiny", num_classes=2, axis_name="batch").axis_name == "batch"
  assert build_model("resnet_tiny", num_classes=2).axis_name is None
  model = build_model("cnn", num_classes=2, axis_name="batch", dtype="float32")
  assert model.dtype == jnp.float32 and not hasattr(model, "axis_name")
  assert build_model("mlp", num_classes=2, dtype=jnp.bfloat16).dtype == jnp.bfloat16
  mlp = build_model("mlp", num_classes=2, hidden=[4, 3])
  assert mlp.hidden == (4, 3) and hash(mlp) is not None


# Runs in a fresh interpreter with 8 fake CPU devices, so the result does not
# depend on how many devices the pytest process happens to have.
PMAP_VS_JIT = textwrap.dedent("""
  import jax, jax.numpy as jnp, numpy as np
  from research.models import build_model

  n = jax.device_count()
  assert n == 8, n
  x = jax.random.normal(jax.random.key(1), (16, 8, 8, 3))
  # zero_init_residual=False so every BatchNorm affects the output.
  kwargs = dict(num_classes=5, zero_init_residual=False)
  jit_model = build_model('resnet_tiny', axis_name=None, **kwargs)
  pmap_model = build_model('resnet_tiny', axis_name='batch', **kwargs)
  variables = jit_model.init(jax.random.key(0), x, train=False)

  def loss(model, params, stats, x):
    logits, state = model.apply({'params': params, 'batch_stats': stats}, x, train=True,
                                mutable=['batch_stats'])
    return jnp.mean(logits ** 2), (logits, state['batch_stats'])

  def jit_step(params, stats, x):
    return jax.grad(lambda p: loss(jit_model, p, stats, x), has_aux=True)(params)

  def pmap_step(params, stats, x):
    grads, aux = jax.grad(lambda p: loss(pmap_model, p, stats, x), has_aux=True)(params)
    return jax.lax.pmean(grads, 'batch'), aux

  grads, (logits, stats) = jax.jit(jit_step)(variables['params'], variables['batch_stats'], x)
  replicated = jax.tree.map(lambda a: jnp.stack([a] * n), variables)
  p_grads, (p_logits, p_stats) = jax.pmap(pmap_step, axis_name='batch')(
      replicated['params'], replicated['batch_stats'], x.reshape(n, -1, *x.shape[1:]))

  np.testing.assert_allclose(np.asarray(p_logits).reshape(logits.shape), logits, atol=1e-5)
  for a, b in zip(jax.tree.leaves(p_stats), jax.tree.leaves(stats)):
    for device in range(n):
      np.testing.assert_allclose(a[device], b, rtol=1e-5, atol=1e-6)
  for a, b in zip(jax.tree.leaves(p_grads), jax.tree.leaves(grads)):
    np.testing.assert_allclose(a[0], b, rtol=1e-4, atol=1e-6)
  assert jax.tree.structure(p_stats) == jax.tree.structure(stats)
  print('PMAP_MATCHES_JIT')
""")


@pytest.mark.slow
def test_pmap_batchnorm_matches_jit_on_global_batch():
  env = dict(os.environ)
  env["XLA_FLAGS"] = (
    env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
  ).strip()
  env["JAX_PLATFORMS"] = "cpu"
  env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
  proc = subprocess.run(
    [sys.executable, "-c", PMAP_VS_JIT],
    cwd=REPO_ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert proc.returncode == 0, proc.stdout + proc.stderr
  assert "PMAP_MATCHES_JIT" in proc.stdout
