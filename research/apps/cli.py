"""Command-line plumbing shared by the tools: log levels, config-override checks,
user errors as one line, and the closing line of a run.

Every tool's entry point is `logs.run(main)` instead of `absl.app.run(main)`:

* a mistake of the user's (a missing file, a bad fold or data-set name, a bad
  flag value, an unknown config key: `UserError`, `ValueError`,
  `FileNotFoundError`, `KeyError`) prints ONE line `error: ...` to stderr and
  exits with status 2; `--verbosity=1` shows the traceback as well;
* any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from absl import app, flags, logging
from ml_collections import config_flags

from research.core import config as config_lib

USAGE_EXIT = 2  # the conventional status of a command-line mistake (argparse, absl usage)


class UserError(Exception):
  """An error the user can fix (bad input, missing data): reported as one line, no traceback."""


USER_ERRORS = (UserError, ValueError, FileNotFoundError, KeyError)


class _NoneOr(flags.ArgumentParser):
  """A number parser that also reads 'None' (any case) as None.

  ml_collections parses `--config.total_epochs=...` with absl's FloatParser,
  which refuses 'None'; yet 'in steps, not epochs' is exactly
  `--config.total_epochs=None --config.total_steps=N`. ConfigDict accepts None
  for every field, placeholder or not, so only the parser needs widening.
  """

  def __init__(self, parser: flags.ArgumentParser):
    self._parser = parser

  def parse(self, argument):
    if isinstance(argument, str) and argument.strip().lower() == "none":
      return None
    return self._parser.parse(argument)

  def flag_type(self) -> str:
    return self._parser.flag_type()


config_flags.register_flag_parser_for_type(float, _NoneOr(flags.FloatParser()))
config_flags.register_flag_parser_for_type(int, _NoneOr(flags.IntegerParser()))


def quiet_logs() -> None:
  """WARNING unless `--verbosity` was given: orbax and grain log every save at
  INFO, which buries the progress bar. Call inside `main` (after flag parsing)."""
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)


def _one_line(e: BaseException) -> str:
  # KeyError's str() is the repr of its argument (quotes, escaped newlines).
  text = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
  if "Traceback (most recent call last)" in text:
    # ml_collections puts get_config's whole traceback in the flag error; the
    # user's mistake is its last line ("ValueError: Unknown data 'x'; ...").
    head = text.split("Traceback (most recent call last)", 1)[0]
    lines = [line for line in text.splitlines() if line.strip()]
    text = f"{head.rstrip().rstrip(':')}: {lines[-1].strip()}"
  return " ".join(text.split()) or type(e).__name__


def _verbose() -> bool:
  try:
    return bool(flags.FLAGS["verbosity"].present) and flags.FLAGS.verbosity >= 1
  except (KeyError, flags.UnparsedFlagAccessError):
    return "--verbosity=1" in sys.argv or "-v=1" in sys.argv


def fail(message: str) -> NoReturn:
  """Prints `error: <message>` (one line) to stderr and exits with status 2."""
  print(f"error: {' '.join(message.split())}", file=sys.stderr, flush=True)
  sys.exit(USAGE_EXIT)


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a bad flag value reported as one `error:` line."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    if _verbose():
      raise
    fail(f"{_one_line(e)} (see --helpshort)")


def run(main: Callable[[list[str]], Any]) -> None:
  """`app.run(main)` for the tools: user errors as one line (see the module docstring)."""
  try:
    check_config_overrides()
  except SystemExit as e:
    if isinstance(e.code, str):
      fail(e.code.removeprefix("error: "))
    raise

  def wrapped(argv):
    try:
      return main(argv)
    except USER_ERRORS as e:
      if _verbose():
        raise
      fail(f"{_one_line(e)} (rerun with --verbosity=1 for the traceback)")

  app.run(wrapped, flags_parser=_parse_flags)


def check_config_overrides(argv: list[str] | None = None, flag: str = "config") -> None:
  """Exits with a clear message when `--config.<key>=...` names a key the config lacks.

  ml_collections would raise a bare `AttributeError: 'key'` from inside flag
  parsing; this runs first and lists the valid keys at that level instead.
  """
  argv = sys.argv if argv is None else argv
  spec = next((a.split("=", 1)[1] for a in argv if a.startswith(f"--{flag}=")), None)
  overrides = [a[len(f"--{flag}.") :].split("=", 1)[0] for a in argv if a.startswith(f"--{flag}.")]
  if spec is None or not overrides:
    return
  path, _, arg = spec.partition(":")
  try:
    config = config_lib.import_experiment(path).get_config(arg or None)
  except Exception:  # noqa: BLE001  # the real error surfaces, with its own message, in flag parsing
    return
  for dotted in overrides:
    node = config
    for i, part in enumerate(dotted.split(".")):
      if not hasattr(node, "keys") or part not in node:
        where = ".".join(dotted.split(".")[:i]) or "(top level)"
        valid = sorted(node.keys()) if hasattr(node, "keys") else []
        sys.exit(
          f"error: unknown config key --{flag}.{dotted}: {part!r} is not a key of "
          f"{where}. Valid keys there: {', '.join(valid) or '(none)'}."
        )
      node = node[part]


# --- the closing line of a run -------------------------------------------------------


def headline_metrics(summary: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, float]:
  """The numbers a reader looks for first: the metrics of the published references
  and of the checkpoint choice (with its test counterpart), in that order; else
  the first four '<split>/<metric>' numbers."""
  wanted = [r["metric"] for r in config.get("references", ()) or ()]
  best = (config.get("ckpt") or {}).get("best_metric")
  if best:
    wanted += [best, "test/" + best.split("/", 1)[-1]]
  numbers = {
    k: v for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
  }
  keys = list(dict.fromkeys(k for k in wanted if k in numbers))
  if not keys:
    keys = sorted(k for k in numbers if k.count("/") == 1 and "num_examples" not in k)[:4]
  return {k: numbers[k] for k in keys}


def closing_line(workdir: str, config: Mapping[str, Any] | None = None) -> str:
  """One line: headline metrics, the published-reference verdict and the report's path.

  Reads `<workdir>/summary.json` (and `config.json` when `config` is None); the
  verdict is `research.outputs.report.compare_to_references`, as in report.md.
  """
  from research.outputs import report
  from research.outputs import summary as summary_lib

  with open(os.path.join(workdir, summary_lib.SUMMARY_FILE)) as f:
    summary = json.load(f)
  if config is None:
    config_path = os.path.join(workdir, "config.json")
    config = {}
    if os.path.exists(config_path):
      with open(config_path) as f:
        config = json.load(f)
  metrics = ", ".join(
    f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
    for k, v in headline_metrics(summary, config).items()
  )
  parts = [f"Done: {metrics or 'no metrics'}"]
  rows = report.compare_to_references(summary, list(config.get("references", ()) or ()))
  if rows:
    n_ok = sum(r["verdict"] == "reproduced" for r in rows)
    parts.append(f"{n_ok} of {len(rows)} published result(s) reproduced")
  path = os.path.join(workdir, report.REPORT_FILE)
  parts.append(f"report: {path}" if os.path.exists(path) else f"workdir: {workdir}")
  return "; ".join(parts) + "."


def print_closing_line(workdir: str, config: Mapping[str, Any] | None = None) -> None:
  """Prints `closing_line` on the primary process (the one that wrote summary.json)."""
  import jax

  if jax.process_index() == 0:
    print(closing_line(workdir, config), flush=True)
