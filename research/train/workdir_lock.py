"""One training run per workdir: an advisory lock on `<workdir>/.lock`.

Two `tools.train` in one workdir would both resume from the same checkpoint,
both append to metrics.jsonl and crash each other inside orbax's saves. The
first run holds the lock for its whole life; a second is refused with one
line naming the holder (pid, host, since when).

`fcntl.flock` because neither `filelock` nor `portalocker` is a dependency
(constraints.txt) and flock already does what they would: the kernel drops
the lock when its process dies, however it dies (kill -9 included), so a lock
left by a dead process is free to take. The file's contents (pid, host, start
time) only serve the refusal message and the "taken over" note; on file
systems without flock (some FUSE mounts) the contents are the lock instead:
a holder on this host whose pid no longer runs is stale and taken over.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import json
import logging
import os
import socket
import time

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"


class WorkdirLockedError(RuntimeError):
  """Another live run holds the workdir."""


class WorkdirLock:
  """Held from `acquire()` to `release()` (or the end of a `with` block)."""

  def __init__(self, workdir: str):
    self.workdir = workdir
    self.path = os.path.join(workdir, LOCK_FILE)
    self._fd: int | None = None

  def acquire(self) -> WorkdirLock:
    os.makedirs(self.workdir, exist_ok=True)
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
        os.close(fd)
        raise WorkdirLockedError(self._refusal(_read_holder(self.path))) from None
      if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
        os.close(fd)
        raise
      holder = _read_holder(self.path)  # no flock here: the recorded pid decides
      if holder and _alive_here(holder) and holder.get("pid") != os.getpid():
        os.close(fd)
        raise WorkdirLockedError(self._refusal(holder)) from None
    previous = _read_holder(self.path)
    if previous and previous.get("pid") is not None:
      # A clean release empties the file: a record left in it means its run died.
      log.warning(
        "%s: taking over the lock left by pid %s on %s (started %s), which is no longer running.",
        self.workdir,
        previous.get("pid"),
        previous.get("host"),
        _when(previous),
      )
    record = dict(pid=os.getpid(), host=socket.gethostname(), since=time.time())
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
    os.fsync(fd)
    self._fd = fd
    return self

  def release(self) -> None:
    if self._fd is None:
      return
    try:
      os.ftruncate(self._fd, 0)  # empty = released cleanly, nothing stale to report
    finally:
      fcntl.flock(self._fd, fcntl.LOCK_UN)
      os.close(self._fd)
      self._fd = None

  def _refusal(self, holder: dict | None) -> str:
    who = (
      f"pid {holder.get('pid')} on {holder.get('host')}, running since {_when(holder)}"
      if holder
      else "another process (no holder recorded yet)"
    )
    return (
      f"Workdir {self.workdir} is in use by {who} (lock {self.path}). Two runs in one "
      "workdir would overwrite each other's checkpoints: wait for it to finish, stop it, "
      "or train in another --workdir."
    )

  def __enter__(self) -> WorkdirLock:
    return self.acquire()

  def __exit__(self, *exc) -> None:
    self.release()


def _read_holder(path: str) -> dict | None:
  try:
    with open(path) as f:
      text = f.read().strip()
    return json.loads(text) if text else None
  except (OSError, ValueError):
    return None


def _alive_here(holder: dict) -> bool:
  """True unless the holder ran on this host and its pid is gone. A holder on
  another host cannot be checked from here, so it counts as alive."""
  if holder.get("host") != socket.gethostname():
    return True
  try:
    os.kill(int(holder["pid"]), 0)
  except ProcessLookupError:
    return False
  except (PermissionError, KeyError, TypeError, ValueError):
    return True
  return True


def _when(holder: dict) -> str:
  since = holder.get("since")
  if not isinstance(since, (int, float)):
    return "an unknown time"
  return datetime.datetime.fromtimestamp(since).isoformat(sep=" ", timespec="seconds")


def lock_for_run(workdir: str) -> WorkdirLock | None:
  """Locks `workdir` for a training run: process 0 holds the lock (returned;
  None elsewhere). In a multi-process run every process learns whether
  process 0 got it and raises together, instead of the others waiting
  forever at their first collective for a process 0 that gave up."""
  import jax

  if jax.process_count() == 1:
    return WorkdirLock(workdir).acquire()
  import numpy as np
  from jax.experimental import multihost_utils

  lock, error = None, None
  if jax.process_index() == 0:
    try:
      lock = WorkdirLock(workdir).acquire()
    except Exception as e:  # noqa: BLE001  # re-raised on process 0 after every process has heard of it
      error = e
  if int(multihost_utils.broadcast_one_to_all(np.int32(error is not None))):
    if error is not None:
      raise error
    raise WorkdirLockedError(f"Process 0 could not lock {workdir}; its log says why.")
  return lock
