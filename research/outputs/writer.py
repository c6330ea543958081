"""Scalar metrics and the resolved config, as every run leaves them.

workdir/
  metrics.jsonl   one JSON object per write: {"step": int, "time": unix, **scalars}
  tensorboard/    the same scalars as TensorBoard events (tensorboardX)
  config.json     the fully resolved config
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
import secrets
import time
import warnings
from collections.abc import Mapping
from typing import Any, TextIO

import numpy as np

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
CONFIG_FILE = "config.json"
_RESERVED = ("step", "time")


def json_safe(value: Any) -> Any:
  """`value` as plain JSON types (dict, list, str, int, float, bool, None).

  Tuples become lists, numpy/jax scalars and arrays become Python numbers and
  lists, non-finite floats become the strings 'nan' / 'inf' / '-inf' (JSON has
  no such numbers), anything else (dtypes, callables, classes) its name or str.
  """
  if value is None or isinstance(value, (bool, str)):
    return value
  if isinstance(value, enum.Enum):
    return value.name
  if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
    return int(value)
  if isinstance(value, np.bool_):
    return bool(value)
  if isinstance(value, (float, np.floating)):
    value = float(value)
    return value if math.isfinite(value) else str(value)
  if hasattr(value, "to_dict"):  # ml_collections ConfigDict / FrozenConfigDict
    return json_safe(value.to_dict())
  if dataclasses.is_dataclass(value) and not isinstance(value, type):
    return json_safe(dataclasses.asdict(value))
  if isinstance(value, Mapping):
    return {str(k): json_safe(v) for k, v in value.items()}
  if isinstance(value, (list, tuple, set, frozenset)):
    items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
    return [json_safe(v) for v in items]
  if hasattr(value, "__array__") and hasattr(value, "shape"):  # numpy / jax arrays
    return json_safe(np.asarray(value).tolist())
  if callable(value) and hasattr(value, "__qualname__"):
    return f"{getattr(value, '__module__', '')}.{value.__qualname__}".lstrip(".")
  return str(value)


def write_config(workdir: str, config: Any) -> str:
  """Writes `config` (ConfigDict or Mapping) as workdir/config.json; returns the path."""
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, CONFIG_FILE)
  atomic_write(path, json.dumps(json_safe(config), indent=2, sort_keys=True) + "\n")
  return path


def read_config(workdir: str) -> dict:
  with open(os.path.join(workdir, CONFIG_FILE)) as f:
    return json.load(f)


def atomic_write(path: str, text: str) -> None:
  # A crash mid-write must not leave a half file where a whole one was.
  tmp = f"{path}.tmp.{os.getpid()}"
  with open(tmp, "w") as f:
    f.write(text)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def _scalar(value: Any) -> float | None:
  value = float(np.asarray(value))  # also pulls 0-d jax arrays to host
  # Strict JSON has no NaN/inf; null keeps the line parseable everywhere and
  # still shows that the value was there but not finite.
  return value if math.isfinite(value) else None


def _read_lines(path: str) -> tuple[list[dict], int]:
  """Parsed records of a jsonl file and the number of unparseable lines."""
  records: list[dict] = []
  bad = 0
  if not os.path.exists(path):
    return records, bad
  with open(path) as f:
    for line in f:
      if not line.strip():
        continue
      try:
        records.append(json.loads(line))
      except json.JSONDecodeError:
        # Typically the last line of a run killed mid-write.
        bad += 1
  return records, bad


def read_metrics(workdir: str) -> list[dict]:
  """All records of workdir/metrics.jsonl in file order ([] if absent).

  Non-finite values were written as null and come back as None.
  """
  records, bad = _read_lines(os.path.join(workdir, METRICS_FILE))
  if bad:
    warnings.warn(f"{workdir}/{METRICS_FILE}: skipped {bad} unparseable line(s).", stacklevel=2)
  return records


class MetricWriter:
  """Appends scalars to metrics.jsonl and TensorBoard.

  Args:
    workdir: run directory; created if missing.
    enabled: False makes every method a no-op and creates no files (use on
      non-primary processes of a multi-host run).
  """

  def __init__(self, workdir: str, *, enabled: bool = True):
    self.workdir = workdir
    self.enabled = enabled
    self.path = os.path.join(workdir, METRICS_FILE)
    self.tb_dir = os.path.join(workdir, TENSORBOARD_DIR)
    self._file: TextIO | None = None
    self._tb: Any = None  # tensorboardX.SummaryWriter, imported on first use
    if enabled:
      os.makedirs(workdir, exist_ok=True)
      self._open()

  def _open(self, purge_step: int | None = None) -> None:
    # Imported here so that disabled writers never touch tensorboardX.
    import tensorboardX

    self._file = open(self.path, "a")  # noqa: SIM115  # held open for the writer's lifetime; close() closes it
    # tensorboardX names event files by the second and hostname and opens them
    # with 'wb': a writer reopened within the same second (resume, truncate)
    # would overwrite the earlier file. A unique suffix keeps both.
    suffix = f".{os.getpid()}.{secrets.token_hex(4)}"
    self._tb = tensorboardX.SummaryWriter(
      logdir=self.tb_dir, purge_step=purge_step, filename_suffix=suffix
    )

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    """Writes one line {"step", "time", **scalars}; values: Python/numpy/0-d jax numbers."""
    if not self.enabled:
      return
    if self._file is None:
      raise RuntimeError(f"MetricWriter for {self.workdir} is closed.")
    clash = [k for k in scalars if k in _RESERVED]
    if clash:
      raise ValueError(f"Scalar names {clash} are reserved in {METRICS_FILE}.")
    step = int(step)
    values = {str(k): _scalar(v) for k, v in scalars.items()}
    record = {"step": step, "time": time.time(), **values}
    self._file.write(json.dumps(record) + "\n")
    self._file.flush()  # a crashed run keeps everything written so far
    for k, v in values.items():
      self._tb.add_scalar(k, float("nan") if v is None else v, global_step=step)

  def truncate_after(self, step: int) -> None:
    """Keeps only metrics.jsonl lines with step <= `step` (call on every start).

    A run resumed from a checkpoint at `step` replays the steps after it; this
    drops their first copies. A run that starts from scratch in a workdir that
    already has metrics (killed before its first checkpoint) calls it with 0,
    which drops them all. TensorBoard's event files stay; the writer is
    reopened with purge_step=step+1, which tells TensorBoard to hide the old
    events after `step`.
    """
    if not self.enabled:
      return
    step = int(step)
    if not os.path.getsize(self.path):
      return  # nothing written yet (a fresh workdir): nothing to drop
    self.close()
    records, _ = _read_lines(self.path)  # drops a half-written last line too
    kept = [r for r in records if int(r.get("step", 0)) <= step]
    atomic_write(self.path, "".join(json.dumps(r) + "\n" for r in kept))
    self._open(purge_step=step + 1)

  def flush(self) -> None:
    if self.enabled and self._file is not None:
      self._file.flush()
      self._tb.flush()

  def close(self) -> None:
    if self._file is not None:
      self._file.close()
      self._file = None
    if self._tb is not None:
      self._tb.close()
      self._tb = None

  def __enter__(self) -> MetricWriter:
    return self

  def __exit__(self, *exc) -> None:
    self.close()


ARTIFACTS_DIR = "artifacts"


def save_artifacts(workdir: str, artifacts: Mapping[str, Any]) -> list[str]:
  """Saves each evaluator artifact '<split>/<kind>' as artifacts/<split>_<kind>.npz
  (an array under key 'value', a dict of arrays under its own keys), so tools
  can reload curves, forecasts and confusion matrices without rerunning."""
  paths = []
  for key, value in artifacts.items():
    arrays = (
      {k: np.asarray(v) for k, v in value.items()}
      if isinstance(value, Mapping)
      else {"value": np.asarray(value)}
    )
    os.makedirs(os.path.join(workdir, ARTIFACTS_DIR), exist_ok=True)
    path = os.path.join(workdir, ARTIFACTS_DIR, key.replace("/", "_") + ".npz")
    np.savez(path, **arrays)
    paths.append(path)
  return paths


def load_artifact(workdir: str, key: str) -> dict[str, np.ndarray]:
  """The arrays `save_artifacts` wrote for artifact `key` ('<split>/<kind>')."""
  path = os.path.join(workdir, ARTIFACTS_DIR, key.replace("/", "_") + ".npz")
  if not os.path.exists(path):
    raise FileNotFoundError(f"No artifact {key!r} in {workdir} (looked for {path}).")
  with np.load(path) as data:
    return {k: data[k] for k in data.files}
