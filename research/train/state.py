"""The train state: everything that changes during training, as one pytree.

Static things (the model, the optax transformation) stay outside so the state
is plain arrays that orbax can save and `jax.jit` can donate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from research.core import distributed


@flax.struct.dataclass
class TrainState:
  """step: int32 []; params and model_state (mutable collections such as
  `batch_stats`): pytrees of float32; opt_state: optax state; rng: uint32 [2]
  base key (each step derives its own with `fold_in(rng, step)`)."""

  step: jax.Array
  params: Any
  model_state: Any
  opt_state: Any
  rng: jax.Array


def make_init_fn(
  model: nn.Module, tx: optax.GradientTransformation, sample_input: Any, seed: int
) -> Callable[[], TrainState]:
  """A pure, argument-free init so it can go through `jax.eval_shape` first
  and then `jax.jit(..., out_shardings=...)` (flax lm1b habit)."""

  def init() -> TrainState:
    root = jax.random.PRNGKey(seed)
    params_rng, dropout_rng, train_rng = jax.random.split(root, 3)
    # `sample_input`: ShapeDtypeStruct(s) of the model input, batch dimension 1.
    x = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), sample_input)
    variables = model.init({"params": params_rng, "dropout": dropout_rng}, x, train=False)
    # Plain arrays in the state: the logical axis names some models attach
    # (nn.with_logical_partitioning) are read separately by `param_logical_axes`.
    variables = flax.core.unfreeze(nn.meta.unbox(variables))
    params = variables.pop("params")
    return TrainState(
      step=jnp.zeros((), jnp.int32),
      params=params,
      model_state=variables,
      opt_state=tx.init(params),
      rng=train_rng,
    )

  return init


def host_variables(state: TrainState) -> dict:
  """{'params', 'model_state'} as host numpy, whole: leaves split over fsdp /
  tensor are gathered (across processes too), replicated ones copied once."""
  return jax.tree.map(
    distributed.to_host, {"params": state.params, "model_state": state.model_state}
  )


def param_logical_axes(model: nn.Module, sample_input: Any) -> dict[tuple[str, ...], tuple]:
  """The logical axis names of each annotated parameter, by its path in `params`:
  {('h_0', 'mlp', 'fc', 'kernel'): ('embed', 'mlp'), ...}. Parameters the model
  does not annotate (nn.with_logical_partitioning) are absent. Shapes only:
  nothing is initialised."""

  def init():
    x = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), sample_input)
    rngs = {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)}
    return model.init(rngs, x, train=False)["params"]

  boxed = jax.eval_shape(init)
  leaves, _ = jax.tree_util.tree_flatten_with_path(
    flax.core.unfreeze(boxed), is_leaf=lambda x: isinstance(x, nn.meta.AxisMetadata)
  )
  return {
    path_names(path): tuple(leaf.names)
    for path, leaf in leaves
    if isinstance(leaf, nn.LogicallyPartitioned)
  }


def path_names(path) -> tuple[str, ...]:
  """A jax tree path -> its keys as strings (dict keys, attribute names, indices)."""
  names = []
  for key in path:
    for attr in ("key", "name", "idx"):
      if hasattr(key, attr):
        names.append(str(getattr(key, attr)))
        break
  return tuple(names)
