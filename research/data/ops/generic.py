"""Key-level ops that work on any example: keep, rename, cast.

Each works unchanged on a batch `{key: [b, ...]}` (nothing depends on the
leading dimension), so its function is also its batched implementation.

`research.data.ops.OPS` names them.
"""

from __future__ import annotations

import numpy as np

from research.data.ops import base


def keep(*keys: str) -> base.NamedOp:
  """Drops every key except `keys` (all of which must exist)."""
  spec = base.spec_string("keep", *keys)
  if not keys or not all(isinstance(k, str) for k in keys):
    raise ValueError(f"{spec}: give one or more key names as strings.")

  def fn(example, rng):
    del rng
    return {k: base.get(example, k, spec) for k in keys}

  return base.NamedOp(spec, fn, batch_fn=fn, keys_only=True)


def rename(**new_from_old: str) -> base.NamedOp:
  """`rename(label='y')` renames key `y` to `label`; other keys stay."""
  spec = base.spec_string("rename", **new_from_old)
  if not new_from_old or not all(isinstance(v, str) for v in new_from_old.values()):
    raise ValueError(f"{spec}: give new=old pairs with string key names.")
  olds = set(new_from_old.values())
  if len(olds) != len(new_from_old):
    raise ValueError(f"{spec}: each old key may be renamed only once.")

  def fn(example, rng):
    del rng
    out = {k: v for k, v in example.items() if k not in olds}
    for new, old in new_from_old.items():
      # Silently replacing a key that was not renamed away would lose data.
      if new in out:
        raise ValueError(f"Op '{spec}': key {new!r} already exists; keys are {sorted(example)}.")
      out[new] = base.get(example, old, spec)
    return out

  return base.NamedOp(spec, fn, batch_fn=fn, keys_only=True)


def cast(key: str, dtype: str) -> base.NamedOp:
  """Casts `example[key]` to `dtype` (any numpy dtype name, e.g. 'float32')."""
  spec = base.spec_string("cast", key, dtype)
  try:
    np_dtype = np.dtype(dtype)
  except TypeError as e:
    raise ValueError(f"{spec}: unknown dtype {dtype!r} ({e}).") from None

  def fn(example, rng):
    del rng
    return base.replace(example, key, base.get(example, key, spec).astype(np_dtype))

  return base.NamedOp(spec, fn, batch_fn=fn)
