"""Command-line plumbing shared by the tools: log levels and config-override checks."""
from __future__ import annotations

import sys

from absl import flags, logging

from research import config as config_lib


def quiet_logs() -> None:
  """WARNING unless `--verbosity` was given: orbax and grain log every save at
  INFO, which buries the progress bar. Call inside `main` (after flag parsing)."""
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)


def check_config_overrides(argv: list[str] | None = None, flag: str = "config") -> None:
  """Exits with a clear message when `--config.<key>=...` names a key the config lacks.

  ml_collections would raise a bare `AttributeError: 'key'` from inside flag
  parsing; this runs first and lists the valid keys at that level instead.
  """
  argv = sys.argv if argv is None else argv
  spec = next((a.split("=", 1)[1] for a in argv if a.startswith(f"--{flag}=")), None)
  overrides = [a[len(f"--{flag}."):].split("=", 1)[0] for a in argv if a.startswith(f"--{flag}.")]
  if spec is None or not overrides:
    return
  path, _, arg = spec.partition(":")
  try:
    config = config_lib._import_experiment(path).get_config(arg or None)
  except Exception:  # the real error will surface, with its own message, in flag parsing
    return
  for dotted in overrides:
    node = config
    for i, part in enumerate(dotted.split(".")):
      if not hasattr(node, "keys") or part not in node:
        where = ".".join(dotted.split(".")[:i]) or "(top level)"
        valid = sorted(node.keys()) if hasattr(node, "keys") else []
        sys.exit(f"error: unknown config key --{flag}.{dotted}: {part!r} is not a key of "
                 f"{where}. Valid keys there: {', '.join(valid)}.")
      node = node[part]
