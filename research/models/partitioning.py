"""Activation sharding constraints for models, in logical axis names.

`constrain(x, ('batch', 'length', 'embed'))` tells XLA how an activation
should be split when the step is traced for a mesh with FSDP or tensor
parallelism: the backend (research.train.parallel) traces the step inside
`activation_sharding(mesh, rules)`, and the rules
(research.train.sharding.ACTIVATION_RULES) map the names to mesh axes. Outside
that context (one device, data parallelism, pmap, tests calling `apply`) it
returns `x` unchanged, so models never depend on a mesh.

Why not flax's `nn.with_logical_constraint` alone: it applies constraints
only under jax's global abstract mesh (`jax.set_mesh`), which cannot be set
inside `jax.jit`; here the mesh is passed explicitly.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence

import flax.linen as nn
import jax

_ACTIVE: contextvars.ContextVar = contextvars.ContextVar("activation_sharding", default=None)


@contextlib.contextmanager
def activation_sharding(mesh: jax.sharding.Mesh, rules) -> Iterator[None]:
  """Within: `constrain` applies `rules` ((logical name, mesh axes) pairs) on `mesh`."""
  token = _ACTIVE.set((mesh, tuple(rules)))
  try:
    yield
  finally:
    _ACTIVE.reset(token)


def constrain(x: jax.Array, logical_axes: Sequence[str | None]) -> jax.Array:
  """x with a sharding constraint from its logical axes (a no-op outside the context)."""
  active = _ACTIVE.get()
  if active is None:
    return x
  mesh, rules = active
  return nn.with_logical_constraint(x, tuple(logical_axes), rules=rules, mesh=mesh)
