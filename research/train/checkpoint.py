"""Checkpoints through orbax: train state, data-iterator position and run metadata together.

Layout: `<workdir>/checkpoints/<step>/{state,data,meta}`.

Resume order (MaxText habit: write it down once, here):
  1. build model, optimizer and an *abstract* state (shapes + shardings);
  2. `latest_step()`; if None, fresh init and the data iterator from its start;
  3. otherwise restore `state` into the abstract state's shardings, then set
     the data iterator to the saved position (`data`), then restore the
     loop's own counters (`meta`: train seconds so far, last eval metrics);
  4. the step's RNG is `fold_in(state.rng, state.step)`, so nothing else is
     needed for the continuation to be bitwise identical on CPU.

Saves are asynchronous (the step keeps running while orbax writes) and atomic:
a save interrupted by `kill -9` leaves only a temporary directory that is
ignored and cleaned up, so the last *finished* checkpoint is what resumes.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Mapping

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as ocm

log = logging.getLogger(__name__)


class Checkpointer:
  """Keeps the last `keep` checkpoints plus the best one by `best_metric`."""

  def __init__(self, directory: str, *, keep: int = 2, best_metric: str | None = None,
               best_mode: str = "max", async_save: bool = True):
    if best_mode not in ("max", "min"):
      raise ValueError(f"ckpt.best_mode must be 'max' or 'min', got {best_mode!r}.")
    self.directory = os.path.abspath(directory)
    self.best_metric, self.best_mode = best_metric, best_mode
    policies = [ocm.LatestN(n=max(int(keep), 1))]
    if best_metric:
      policies.append(ocm.BestN(get_metric_fn=lambda m: m[best_metric], reverse=best_mode == "min",
                                n=1, keep_checkpoints_without_metrics=False))
    options = ocp.CheckpointManagerOptions(
        preservation_policy=ocm.AnyPreservationPolicy(policies),
        enable_async_checkpointing=async_save, cleanup_tmp_directories=True, create=True)
    self._manager = ocp.CheckpointManager(self.directory, options=options,
                                          item_names=("state", "data", "meta"))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def best_step(self) -> int | None:
    """The kept step with the best `best_metric` (from the metadata saved with it)."""
    if not self.best_metric:
      return None
    scored = []
    for step in self.all_steps():
      value = self.read_meta(step).get("metrics", {}).get(self.best_metric)
      if value is not None and np.isfinite(value):
        scored.append((value if self.best_mode == "max" else -value, step))
    return max(scored)[1] if scored else None

  def save(self, step: int, state: Any, *, data_state: Mapping[str, Any] | None,
           meta: Mapping[str, Any], metrics: Mapping[str, float] | None = None) -> None:
    """Saves (asynchronously) unless this step is already saved."""
    if step in self._manager.all_steps():
      return
    usable = None
    if metrics and self.best_metric and self.best_metric in metrics:
      usable = {self.best_metric: float(metrics[self.best_metric])}
    meta = dict(meta, metrics={k: float(v) for k, v in (metrics or {}).items()})
    args = ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data=ocp.args.JsonSave(dict(data_state or {})),
        meta=ocp.args.JsonSave(_json_safe(meta)))
    self._manager.save(step, args=args, metrics=usable, force=True)

  def restore(self, step: int, abstract_state: Any):
    """Returns (state placed like `abstract_state`, data_state dict, meta dict)."""
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state),
          data=ocp.args.JsonRestore(), meta=ocp.args.JsonRestore()))
    except ValueError as e:
      raise ValueError(
          f"Checkpoint step {step} in {self.directory} does not match the state this config "
          "builds (was the model or optimizer changed since it was written?). Train in a new "
          f"--workdir, or rerun with the workdir's own config.json. Orbax: {str(e)[:500]}"
      ) from e
    return restored["state"], dict(restored["data"] or {}), dict(restored["meta"] or {})

  def restore_raw(self, step: int) -> dict:
    """The saved train state as a plain dict of arrays, without a target
    structure (for reading part of another run's checkpoint).

    Every array lands on this process's first device, whatever device layout
    wrote it: a run trained on 2 host devices is read by tools that run on 1
    (orbax refuses a topology change unless the target names the shardings).
    """
    path = os.path.join(self.directory, str(step), "state")  # orbax's default step layout
    target = None
    if os.path.isdir(path):
      device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
      metadata = ocp.StandardCheckpointer().metadata(path).item_metadata
      target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                            metadata.tree if hasattr(metadata, "tree") else metadata)
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target)))
    return dict(restored["state"])

  def read_meta(self, step: int) -> dict:
    restored = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    return dict(restored["meta"] or {})

  def reached_preemption(self, step: int) -> bool:
    """True when the multi-process runtime says this job is being preempted."""
    return jax.process_count() > 1 and self._manager.reached_preemption(step)

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def _json_safe(value):
  if isinstance(value, Mapping):
    return {str(k): _json_safe(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_json_safe(v) for v in value]
  if isinstance(value, (np.integer,)):
    return int(value)
  if isinstance(value, (np.floating,)):
    return float(value)
  return value
