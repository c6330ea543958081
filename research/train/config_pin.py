"""A workdir's config.json is its run's identity: a resume may not change it silently.

`check` compares the config a command builds with the workdir's config.json
and refuses any difference not named in `--allow_config_change` (dotted keys;
a section name covers every key under it). Changes that are allowed are
appended to `config_changes.jsonl` with the step they take effect at, and
config.json is rewritten, so the workdir always says what the run ran with
and from when.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from typing import Any

from research.core import config as config_lib
from research.outputs import writer as writer_lib

CHANGES_FILE = "config_changes.jsonl"
# Keys that cannot change what a run computes; differences in them are taken
# without asking (and config.json updated). Keep this list tiny and obvious.
EXEMPT = ("progress", "ckpt.async_save")
_ABSENT = "(absent)"


class ConfigChangedError(ValueError):
  """The config differs from the workdir's config.json in keys not allowed to change."""


def check(workdir: str, config: Any, allow: Iterable[str] = ()) -> dict[str, tuple[Any, Any]]:
  """The differences `config` makes to workdir/config.json, as {dotted key: (old, new)}
  ({} when there is no config.json yet). Reads only; writes nothing.

  Raises ConfigChangedError listing every changed key (old -> new) unless each
  is exempt or named in `allow`; ValueError when `allow` names no config key.
  """
  allow = tuple(a.strip() for a in allow if a.strip())
  new = _flat(json.loads(json.dumps(writer_lib.json_safe(config))))
  for key in allow:
    if not any(_covers(key, k) for k in new):
      raise ValueError(
        f"--allow_config_change names {key!r}, which is not a config key "
        "(use dotted keys, e.g. optimizer.lr)."
      )
  path = os.path.join(workdir, writer_lib.CONFIG_FILE)
  if not os.path.exists(path):
    return {}
  try:
    old = _flat(writer_lib.read_config(workdir))
  except (OSError, ValueError) as e:
    raise ValueError(
      f"{path} is unreadable ({e}); it names the run this workdir holds. Put back "
      "a good copy, or train in a new --workdir."
    ) from None
  changed = {
    k: (old.get(k, _ABSENT), new.get(k, _ABSENT))
    for k in sorted(set(old) | set(new))
    if old.get(k, _ABSENT) != new.get(k, _ABSENT)
  }
  changed = {k: v for k, v in changed.items() if not any(_covers(e, k) for e in EXEMPT)}
  # A key the workdir's config.json lacks because it was written by older code
  # (e.g. mesh, precision, early_stopping) at its default value describes the
  # run the older code ran: taken (and recorded) without asking.
  defaults = _flat(json.loads(json.dumps(writer_lib.json_safe(config_lib.base_config()))))
  added_at_default = {
    k
    for k, (was, now) in changed.items()
    if was == _ABSENT and k in defaults and now == defaults[k]
  }
  refused = [
    k for k in changed if k not in added_at_default and not any(_covers(a, k) for a in allow)
  ]
  if refused:
    shown = "\n".join(
      f"  {k}: {_show(changed[k][0])} -> {_show(changed[k][1])}" for k in refused[:20]
    )
    more = f"\n  ... and {len(refused) - 20} more" if len(refused) > 20 else ""
    raise ConfigChangedError(
      f"Refusing to resume {workdir}: this config differs from its config.json (the run's "
      f"identity) in {len(refused)} key(s), config.json -> now:\n{shown}{more}\n"
      "Rerun with the workdir's own config (drop these overrides), train in a new --workdir, "
      f"or allow the change from the resume step on with --allow_config_change="
      f"{','.join(refused)} (recorded in {CHANGES_FILE})."
    )
  return changed


def record(workdir: str, step: int, changes: dict[str, tuple[Any, Any]]) -> None:
  """Appends one line to config_changes.jsonl: the step the changes take effect
  at (the step the run resumes from) and each key's old and new value."""
  if not changes:
    return
  line = dict(
    step=int(step),
    time=time.time(),
    changes={k: dict(old=old, new=new) for k, (old, new) in changes.items()},
  )
  with open(os.path.join(workdir, CHANGES_FILE), "a") as f:
    f.write(json.dumps(line) + "\n")
    f.flush()
    os.fsync(f.fileno())


def read_changes(workdir: str) -> list[dict]:
  path = os.path.join(workdir, CHANGES_FILE)
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def _covers(allowed: str, key: str) -> bool:
  return key == allowed or key.startswith(allowed + ".")


def _flat(tree: dict, prefix: str = "") -> dict[str, Any]:
  """{'a': {'b': 1}} -> {'a.b': 1}; an empty section stays a key ({}), lists stay whole."""
  out = {}
  for key, value in tree.items():
    name = f"{prefix}{key}"
    if isinstance(value, dict) and value:
      out.update(_flat(value, name + "."))
    else:
      out[name] = value
  return out


def _show(value: Any) -> str:
  return value if value is _ABSENT else json.dumps(value)
