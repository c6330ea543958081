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

A finished step can still be damaged later (a full disk, a bad copy, a file
truncated by hand). `restore_newest_good` tells the two ways a restore fails
apart: a saved tree that differs from the abstract state (paths, shapes) is a
changed config and stops with that message, the checkpoint untouched; a step
that fails to read while its tree matches (or whose metadata cannot be read)
is corrupt: one WARNING names the step, the file and the error, the step is
moved to `checkpoints/corrupt/<step>`, and the step before it is tried.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as ocm

log = logging.getLogger(__name__)

CORRUPT_DIR = "corrupt"  # under the checkpoints directory; not a step number, so orbax skips it


class CorruptCheckpointError(RuntimeError):
  """A saved step that cannot be read back (damaged or incomplete files)."""

  def __init__(self, step: int, directory: str, error: BaseException | str):
    _quiet_closed_loop_callbacks()
    self.step, self.directory = step, directory
    self.file = _damaged_file(error, os.path.join(directory, str(step)))
    self.detail = _innermost(error)
    where = f" ({self.file})" if self.file else ""
    super().__init__(f"Checkpoint step {step} in {directory} is unreadable{where}: {self.detail}")


class NoGoodCheckpointError(RuntimeError):
  """Every saved step tried was unreadable."""


class CheckpointMismatchError(ValueError):
  """A readable checkpoint whose tree differs from the state this config builds."""


class Checkpointer:
  """Keeps the last `keep` checkpoints plus the best one by `best_metric`."""

  def __init__(
    self,
    directory: str,
    *,
    keep: int = 2,
    best_metric: str | None = None,
    best_mode: str = "max",
    async_save: bool = True,
  ):
    if best_mode not in ("max", "min"):
      raise ValueError(f"ckpt.best_mode must be 'max' or 'min', got {best_mode!r}.")
    self.directory = os.path.abspath(directory)
    self.best_metric, self.best_mode = best_metric, best_mode
    policies = [ocm.LatestN(n=max(int(keep), 1))]
    if best_metric:
      policies.append(
        ocm.BestN(
          get_metric_fn=lambda m: m[best_metric],
          reverse=best_mode == "min",
          n=1,
          keep_checkpoints_without_metrics=False,
        )
      )
    options = ocp.CheckpointManagerOptions(
      preservation_policy=ocm.AnyPreservationPolicy(policies),
      enable_async_checkpointing=async_save,
      cleanup_tmp_directories=True,
      create=True,
    )
    # Handlers named up front (not learnt from the first save or restore) so
    # that `item_metadata` reads a step's saved tree before anything is restored.
    self._manager = ocp.CheckpointManager(
      self.directory,
      options=options,
      item_handlers=dict(
        state=ocp.StandardCheckpointHandler(),
        data=ocp.JsonCheckpointHandler(),
        meta=ocp.JsonCheckpointHandler(),
      ),
    )

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
      try:
        meta = self.read_meta(step)
      except Exception:  # noqa: BLE001  # a damaged step is reported when it is restored, not here
        continue  # a damaged step is reported when it is restored, not here
      value = meta.get("metrics", {}).get(self.best_metric)
      if value is not None and np.isfinite(value):
        scored.append((value if self.best_mode == "max" else -value, step))
    return max(scored)[1] if scored else None

  def save(
    self,
    step: int,
    state: Any,
    *,
    data_state: Mapping[str, Any] | None,
    meta: Mapping[str, Any],
    metrics: Mapping[str, float] | None = None,
  ) -> None:
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
      meta=ocp.args.JsonSave(_json_safe(meta)),
    )
    self._manager.save(step, args=args, metrics=usable, force=True)

  def restore(self, step: int, abstract_state: Any):
    """Returns (state placed like `abstract_state`, data_state dict, meta dict).

    Raises CheckpointMismatchError when the saved tree differs from
    `abstract_state` (a changed config), CorruptCheckpointError when the step
    cannot be read.
    """
    saved = self._saved_tree(step)  # unreadable metadata: corrupt
    try:
      restored = self._manager.restore(
        step,
        args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state),
          data=ocp.args.JsonRestore(),
          meta=ocp.args.JsonRestore(),
        ),
      )
    except Exception as e:
      # The trees are compared only once the restore failed, so a healthy
      # checkpoint restores whatever this comparison would have said.
      mismatch = _tree_mismatch(saved, abstract_state)
      if mismatch:
        raise CheckpointMismatchError(
          f"Checkpoint step {step} in {self.directory} does not match the state this config "
          f"builds ({mismatch}): was the model or optimizer changed since it was written? "
          "Train in a new --workdir, or rerun with the workdir's own config.json."
        ) from e
      raise CorruptCheckpointError(step, self.directory, e) from e
    return restored["state"], dict(restored["data"] or {}), dict(restored["meta"] or {})

  def restore_newest_good(self, abstract_state: Any, *, move_corrupt: bool = True):
    """(step, state, data_state, meta) of the newest readable step; None when
    there is no checkpoint at all. Corrupt steps are handled as `first_good` says."""
    steps = self.all_steps()[::-1]
    if not steps:
      return None
    step, restored = self.first_good(
      steps, lambda s: self.restore(s, abstract_state), move_corrupt=move_corrupt
    )
    return (step, *restored)

  def first_good(
    self, steps: Sequence[int], read: Callable[[int], Any], *, move_corrupt: bool = False
  ):
    """(step, read(step)) for the first of `steps` that reads. Each corrupt one
    gets one WARNING (step, file, error) and, with `move_corrupt`, is moved to
    `checkpoints/corrupt/<step>` so no later run trips on it again.

    Raises NoGoodCheckpointError when none reads, rather than training from
    scratch on its own: that would quietly replace all the training those
    checkpoints held. The message says how to start over deliberately.
    """
    failures = []
    for step in steps:
      try:
        return step, read(step)
      except CorruptCheckpointError as e:
        failures.append(e)
        moved = self._move_aside(step) if move_corrupt else None
        log.warning(
          "%s. %s",
          e,
          f"Moved it to {moved}; trying the step before it."
          if moved
          else "Trying the step before it.",
        )
    where = os.path.join(self.directory, CORRUPT_DIR)
    raise NoGoodCheckpointError(
      f"No readable checkpoint in {self.directory}: step(s) "
      f"{', '.join(str(e.step) for e in failures)} failed to read (the first: {failures[0]})."
      + (
        f" They were moved to {where}; rerun the same command to train from scratch, or put "
        "back a good copy."
        if move_corrupt
        else ""
      )
    )

  def _move_aside(self, step: int) -> str | None:
    """Moves step `step` to corrupt/<step> on process 0 (the others only forget
    it); returns the new path there."""
    target = None
    if jax.process_index() == 0:
      folder = os.path.join(self.directory, CORRUPT_DIR)
      os.makedirs(folder, exist_ok=True)
      target, n = os.path.join(folder, str(step)), 1
      while os.path.exists(target):  # the same step damaged again after a rerun
        target, n = os.path.join(folder, f"{step}.{n}"), n + 1
      shutil.move(os.path.join(self.directory, str(step)), target)
    self._manager.reload()
    return target

  def _saved_tree(self, step: int):
    """The saved train state's tree of orbax ArrayMetadata (shape, dtype per leaf)."""
    try:
      # Quiet: without its metadata orbax logs advice about handler registries
      # that has nothing to do with a damaged step; the error below says it.
      with _quiet_orbax():
        metadata = self._manager.item_metadata(step)
      item = metadata.get("state")
    except Exception as e:
      raise CorruptCheckpointError(step, self.directory, e) from e
    if item is None:
      folder = os.path.join(self.directory, str(step), "state")
      raise CorruptCheckpointError(
        step,
        self.directory,
        (
          f"the train state's metadata in {folder} is missing or unreadable"
          if os.path.isdir(folder)
          else f"the train state {folder} is missing"
        ),
      )
    return item.tree if hasattr(item, "tree") else item

  def restore_raw(self, step: int) -> dict:
    """The saved train state as a plain dict of arrays, without a target
    structure (for reading part of another run's checkpoint).

    Every array lands on this process's first device, whatever device layout
    wrote it: a run trained on 2 host devices is read by tools that run on 1
    (orbax refuses a topology change unless the target names the shardings).
    Raises CorruptCheckpointError when the step cannot be read.
    """
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    # The manager's item metadata, not StandardCheckpointer().metadata(<step>/state):
    # that one looks for a step-level metadata file inside the item folder and
    # logs "Metadata file does not exist", which reads like a damaged checkpoint.
    target = jax.tree.map(
      lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), self._saved_tree(step)
    )
    try:
      restored = self._manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target))
      )
    except Exception as e:
      raise CorruptCheckpointError(step, self.directory, e) from e
    return dict(restored["state"])

  def read_meta(self, step: int) -> dict:
    restored = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    return dict(restored["meta"] or {})

  def reached_preemption(self, step: int) -> bool:
    """True when the multi-process runtime says this job is being preempted."""
    return jax.process_count() > 1 and self._manager.reached_preemption(step)

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def last_finished_step(self) -> int | None:
    """The newest step whose save has finished, after waiting for the one in
    flight: the only kind a message about "the last good checkpoint" may name."""
    with _quiet_orbax():
      try:
        self._manager.wait_until_finished()
      except Exception as e:  # noqa: BLE001  # reported as a warning; the caller's message names the last good step
        log.warning("The checkpoint save in flight failed: %s", _innermost(e))
    self._manager.reload()  # what is on disk, not the steps this process started saving
    return self._manager.latest_step()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()
    self._closed = True

  def close_after_error(self) -> None:
    """`close` while an exception propagates: lets the save in flight finish
    (or fail) now, instead of dying in orbax's threads at interpreter
    shutdown with pages of tracebacks that bury the real error. Orbax's own
    error logs are held back meanwhile; a failure here is one WARNING, never
    raised over the error being handled."""
    if getattr(self, "_closed", False):
      return
    with _quiet_orbax():
      try:
        self.close()
      except Exception as e:  # noqa: BLE001  # never raised over the error being handled
        log.warning(
          "The checkpoint save in flight did not finish (%s); the steps saved before "
          "it are intact.",
          _innermost(e),
        )


@contextlib.contextmanager
def _quiet_orbax():
  """Orbax logs through absl's logger, a failed background save at ERROR with
  full tracebacks; while an error is already on its way out, those are noise."""
  logger = logging.getLogger("absl")
  level = logger.level
  logger.setLevel(logging.CRITICAL)
  try:
    yield
  finally:
    logger.setLevel(level)


def _quiet_closed_loop_callbacks() -> None:
  """Drops one known artefact of a failed orbax read from the log: after one
  array fails, tensorstore still completes the other reads and calls back
  into the asyncio loop orbax has already closed; each callback prints a
  'RuntimeError: Event loop is closed' traceback (dozens per damaged step)
  through sys.unraisablehook, burying the one-line report of the damage.
  Installed once, after the first failed read; every other unraisable
  exception still goes to the previous hook."""
  if not isinstance(sys.unraisablehook, _QuietClosedLoopHook):
    sys.unraisablehook = _QuietClosedLoopHook(sys.unraisablehook)


class _QuietClosedLoopHook:
  """sys.unraisablehook that drops "Event loop is closed" and passes the rest on."""

  def __init__(self, previous: Callable[[Any], object]):
    self.previous = previous

  def __call__(self, info: Any) -> None:
    if isinstance(info.exc_value, RuntimeError) and str(info.exc_value) == "Event loop is closed":
      return
    self.previous(info)


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


def _tree_mismatch(saved, abstract_state) -> str:
  """How the saved tree differs from `abstract_state` ('' when it does not):
  leaves missing on either side, or with another shape. Dtypes are not
  compared (restoring casts them)."""

  def flat(tree):
    leaves = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: hasattr(x, "shape"))[0]
    return {
      "/".join(_key_name(k) for k in path): tuple(getattr(leaf, "shape", ()) or ())
      for path, leaf in leaves
    }

  have, want = flat(saved), flat(abstract_state)

  def listed(items):
    return ", ".join(items[:3]) + (f" and {len(items) - 3} more" if len(items) > 3 else "")

  problems = []
  missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
  if missing:
    problems.append(f"not in the checkpoint: {listed(missing)}")
  if extra:
    problems.append(f"only in the checkpoint: {listed(extra)}")
  shapes = [
    f"{k} {have[k]} -> {want[k]}" for k in sorted(set(have) & set(want)) if have[k] != want[k]
  ]
  if shapes:
    problems.append(f"shapes saved -> built: {listed(shapes)}")
  return "; ".join(problems)


def _key_name(key) -> str:
  """A key-path entry as orbax names it: dict key, attribute (dataclass,
  namedtuple field) or list index."""
  for attr in ("key", "name", "idx"):
    if hasattr(key, attr):
      return str(getattr(key, attr))
  return str(key)


def _chain(error: BaseException | str) -> list:
  chain = [error]
  while (
    isinstance(chain[-1], BaseException) and chain[-1].__cause__ is not None and len(chain) < 10
  ):
    chain.append(chain[-1].__cause__)
  return chain


def _innermost(error: BaseException | str) -> str:
  """The most specific message of an exception chain on one short line
  (orbax wraps tensorstore's errors in pages of spec dumps)."""
  if isinstance(error, str):
    return error
  inner = next((e for e in reversed(_chain(error)) if str(e).strip()), error)
  text = " ".join(str(inner).split()) or repr(inner)
  text = text.split(" [tensorstore_spec", 1)[0]  # a page of JSON spec, no news
  return f"{type(inner).__name__}: {text[:400]}{'...' if len(text) > 400 else ''}"


def _damaged_file(error: BaseException | str, step_dir: str) -> str | None:
  """The file an orbax / tensorstore error names (and the array, when it says), if any."""
  for text in map(str, reversed(_chain(error))):  # the innermost error is the most specific
    array = re.search(
      r'Error reading "([^"/]+)[^"]*" in OCDBT database at local file "([^"]+)"', text
    )
    files = [f for f in re.findall(r'local file "([^"]+)"', text) if not f.endswith("/")]
    where = files[-1] if files else (array.group(2).rstrip("/") if array else None)
    if where is not None:
      return f"{where}, array {array.group(1)}" if array else where
    m = re.search(r"named (\S+)\) does not exist at (\S+)", text)
    if m:
      return os.path.join(m.group(2).rstrip("."), m.group(1))
    m = re.search(re.escape(step_dir) + r"""[^\s"',;)\]]*""", text)
    if m:
      return m.group(0)
  return None
