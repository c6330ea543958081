"""summary.json: the final numbers of a run in one flat JSON object.

  {"test/accuracy": 0.93, "test/loss": 0.21, ..., "step": 10000,
   "train_seconds": 812.4, "params_fingerprint": "9f2c..."}

Flat so that tools can compare runs with a dict lookup, no schema.

The metrics are those of one checkpoint, the one the tools default to, named by
'checkpoint_step' and 'checkpoint' ('best by <ckpt.best_metric>' or 'last
step'; see research.train.final_eval). 'step' is where training ended and
'params_fingerprint' hashes the weights of that last step.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import subprocess
import warnings
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from research.outputs import writer

SUMMARY_FILE = "summary.json"
_RESERVED = ("step", "train_seconds", "params_fingerprint")


def params_fingerprint(tree: Any) -> str:
  """sha256 hex digest over every leaf's key path, dtype, shape and bytes.

  Leaves are visited in `jax.tree_util.tree_flatten_with_path` order (dict keys
  sorted), so equal trees hash equally whatever their insertion order. Each
  leaf is pulled with np.asarray; in multi-host runs pass host-local, fully
  replicated arrays.
  """
  h = hashlib.sha256()
  leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
  for path, leaf in leaves:
    arr = np.asarray(leaf)
    # Little-endian C order so the bytes do not depend on how the array was made.
    if arr.dtype.byteorder == ">":
      arr = arr.astype(arr.dtype.newbyteorder("<"))
    data = np.ascontiguousarray(arr).tobytes()
    # Length-prefixed header: no two different (path, dtype, shape, data)
    # sequences can produce the same byte stream.
    header = json.dumps(
      [jax.tree_util.keystr(path), str(arr.dtype), list(arr.shape), len(data)]
    ).encode()
    h.update(len(header).to_bytes(8, "little"))
    h.update(header)
    h.update(data)
  return h.hexdigest()


@functools.cache
def code_commit() -> str:
  """The git commit of this code ('<sha>', '<sha>-dirty' when research/ or
  experiments/ differ from it), or 'unknown' outside a git checkout.

  Recorded in summary.json so a results page can say which code made a number.
  Asked once per process, at import (below): the code a run executes is the
  code it imported, whatever is checked out by the time it ends.
  """
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  try:
    sha = subprocess.run(
      ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=True
    ).stdout.strip()
    # Only the code a run executes decides "dirty"; docs and tests do not.
    diff = subprocess.run(
      ["git", "status", "--porcelain", "--untracked-files=no", "--", "research", "experiments"],
      cwd=root,
      capture_output=True,
      text=True,
      timeout=10,
      check=True,
    ).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return "unknown"
  return f"{sha}-dirty" if diff else (sha or "unknown")


def _number(key: str, value: Any) -> float | int:
  """value as a Python int/float (possibly non-finite); TypeError if not a scalar number."""
  if isinstance(value, (bool, np.bool_, int, np.integer)):
    return int(value)
  try:
    if not isinstance(value, (str, bytes)) and np.ndim(value) == 0:
      return float(np.asarray(value))
  except (TypeError, ValueError):
    pass
  raise TypeError(f"summary[{key!r}] must be a scalar number (summary is flat), got {value!r}.")


def write_summary(
  workdir: str,
  metrics: Mapping[str, Any],
  *,
  step: int,
  train_seconds: float,
  params_fingerprint: str,
  extra: Mapping[str, Any] | None = None,
) -> dict:
  """Writes workdir/summary.json and returns the dict written.

  Args:
    metrics: {'<split>/<metric>': number}; non-finite values are dropped with
      a warning (JSON has no NaN), non-numbers raise TypeError.
    step: final train step.
    train_seconds: wall-clock training time.
    params_fingerprint: from `params_fingerprint(params)`.
    extra: more flat run facts, numbers or strings, e.g. {'device_count': 8,
      'device_kind': 'TPU v4'}.
  """
  out: dict[str, Any] = {}
  items = [(k, v, False) for k, v in metrics.items()]
  items += [(k, v, True) for k, v in (extra or {}).items()]
  for key, value, strings_ok in items:
    key = str(key)
    if key in out:
      raise ValueError(f"summary key {key!r} given twice (metrics and extra).")
    if strings_ok and isinstance(value, str):
      out[key] = value
      continue
    num = _number(key, value)
    if not math.isfinite(num):
      warnings.warn(f"summary: dropping non-finite {key!r} = {num!r}.", stacklevel=2)
      continue
    out[key] = num
  clash = [k for k in _RESERVED if k in out]
  if clash:
    raise ValueError(f"Keys {clash} are reserved in {SUMMARY_FILE}.")
  out["step"] = int(step)
  out["train_seconds"] = float(train_seconds)
  out["params_fingerprint"] = str(params_fingerprint)
  os.makedirs(workdir, exist_ok=True)
  writer.atomic_write(
    os.path.join(workdir, SUMMARY_FILE),
    json.dumps(out, indent=2, sort_keys=True, allow_nan=False) + "\n",
  )
  return out


def read_summary(workdir: str) -> dict:
  with open(os.path.join(workdir, SUMMARY_FILE)) as f:
    return json.load(f)


code_commit()  # at import: the commit of the code this process runs
