"""Model names -> classes, and the two functions the training loop calls.

`MODELS` is a `Registry` written out here as one table (no registration
decorators), so the set of models is whatever this file says, independent of
import order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from research.core.registry import Registry
from research.models.bert import BertClassifier, BertMLM, TransformerClassifier
from research.models.cnn import CNN
from research.models.cnn1d import CNN1D
from research.models.dense import MLP, Logistic
from research.models.detector import CenterNet
from research.models.forecast import LSTMForecaster, TransformerForecaster
from research.models.gan import DCGAN
from research.models.gpt import GPT
from research.models.lenet import LeNet
from research.models.recsys import NCF, BiasedMF, TwoTower
from research.models.recurrent import GRULM, LSTMLM, GRUClassifier, LSTMClassifier
from research.models.resnet import ResNet18, ResNet34, ResNet50, ResNetTiny
from research.models.sasrec import SASRec
from research.models.seq2seq import Seq2Seq
from research.models.tabular import FTTransformer, TabularLogistic, TabularMLP
from research.models.unet import UNet

MODELS: Registry[type[nn.Module]] = Registry(
  "model",
  "config.model.name",
  {
    "logistic": Logistic,
    "mlp": MLP,
    "cnn": CNN,
    "lenet": LeNet,
    "cnn1d": CNN1D,
    "resnet18": ResNet18,
    "resnet34": ResNet34,
    "resnet50": ResNet50,
    "resnet_tiny": ResNetTiny,
    # Vision: per-pixel logits (images [B, H, W, C] -> [B, H, W, num_classes]).
    "unet": UNet,
    # NLP: language models (tokens [B, T] -> logits [B, T, vocab]).
    "gpt": GPT,
    "lstm_lm": LSTMLM,
    "gru_lm": GRULM,
    "bert_mlm": BertMLM,
    # NLP: text classifiers (tokens [B, T], 0 = padding -> logits [B, num_classes]).
    "bert_classifier": BertClassifier,
    "transformer_classifier": TransformerClassifier,
    "lstm_classifier": LSTMClassifier,
    "gru_classifier": GRUClassifier,
    # NLP: encoder-decoder ({'inputs', 'decoder_inputs'} -> logits [B, T, vocab]).
    "seq2seq": Seq2Seq,
    # Finance risk: table rows ({'numeric', 'categorical'} -> logits [B, num_classes]).
    "tabular_logistic": TabularLogistic,
    "tabular_mlp": TabularMLP,
    "ft_transformer": FTTransformer,
    # Finance risk: return windows [B, T, assets] -> [B, num_outputs].
    "lstm_forecaster": LSTMForecaster,
    "transformer_forecaster": TransformerForecaster,
    # Recommendation (index 0 of users/items = out of vocabulary).
    "biased_mf": BiasedMF,  # {'user', 'item'} [B] -> ratings [B]
    "ncf": NCF,  # GMF / MLP / NeuMF: {'user' [B], 'items' [B, C]} -> logits [B, C]
    "two_tower": TwoTower,  # {'user', 'item'} -> in-batch logits [B, B]; {'user'} -> [B, items]
    "sasrec": SASRec,  # {'history' [B, L], 'candidates'} -> [B, L, C]; else [B, items]
    # Detection: images [B, H, W, c] -> CenterNet maps [B, H/4, W/4, num_classes + 4].
    "centernet": CenterNet,
    # Generative: images [B, H, W, C] -> discriminator logits {'real', 'fake', ...} [B].
    "dcgan": DCGAN,
  },
)

# Fields every flax Module has that are not configuration.
_MODULE_INTERNALS = frozenset({"parent", "name"})
_DTYPE_FIELDS = ("dtype", "param_dtype")


def model_fields(name: str) -> tuple[str, ...]:
  """The configurable fields of model `name` (its dataclass fields), in order."""
  cls = _model_class(name)
  return tuple(
    f.name for f in dataclasses.fields(cls) if f.init and f.name not in _MODULE_INTERNALS
  )


def check_model_config(name: str, kwargs: Mapping[str, Any]) -> None:
  """Validates `build_model(name, **kwargs)` without building anything.

  `axis_name` is accepted for every model, as `build_model` accepts it for every
  model (it is only used by models with BatchNorm).

  Raises:
    ValueError: `name` is not a model (the message lists the valid names), a
      key of `kwargs` is not a field of that model (the message lists its
      fields), or a dtype field is not a floating dtype name.
  """
  fields = model_fields(name)
  unknown = sorted(set(kwargs) - set(fields) - {"axis_name"})
  if unknown:
    raise ValueError(f"Model {name!r} has no field(s) {unknown}; valid fields: {list(fields)}.")
  for key in _DTYPE_FIELDS:
    if key in kwargs:
      _canonical_dtype(kwargs[key], key)


def build_model(name: str, *, axis_name: str | None = None, **kwargs: Any) -> nn.Module:
  """Returns an (unbound) `MODELS[name](**kwargs)`.

  Args:
    name: a key of `MODELS`.
    axis_name: pmap axis name for BatchNorm statistics ('batch' under pmap),
      None under jit. Ignored by models without BatchNorm, so the training loop
      can pass it unconditionally.
    **kwargs: model fields. `dtype` / `param_dtype` may be dtype names from a
      config ('float32', 'bfloat16'); they become jnp dtypes here. Lists
      become tuples.
  """
  check_model_config(name, kwargs)
  # Configs give lists; tuples keep the module hashable (usable as a static jit argument).
  kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
  for key in _DTYPE_FIELDS:
    if key in kwargs:
      kwargs[key] = _canonical_dtype(kwargs[key], key)
  if "axis_name" in model_fields(name):
    kwargs["axis_name"] = axis_name
  return MODELS.get(name)(**kwargs)


def _model_class(name: str) -> type[nn.Module]:
  return MODELS.get(name)


# jnp scalar types by name, so configs may say 'bfloat16' and get jnp.bfloat16.
_DTYPES_BY_NAME = {
  "float32": jnp.float32,
  "bfloat16": jnp.bfloat16,
  "float16": jnp.float16,
}


def _canonical_dtype(value: Any, key: str) -> Any:
  """'bfloat16' / np.dtype / jnp.bfloat16 -> jnp.bfloat16 (etc.); ValueError otherwise."""
  try:
    # np.dtype(None) is float64, so None must be rejected before converting.
    name = None if value is None else np.dtype(value).name
  except TypeError:
    name = None
  if name not in _DTYPES_BY_NAME:
    raise ValueError(f"{key} must be one of {sorted(_DTYPES_BY_NAME)}, got {value!r}.")
  return _DTYPES_BY_NAME[name]
