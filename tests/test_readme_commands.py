"""The README's commands run as written.

* Every `python -m tools.<name> ...` command anywhere in README.md or the
  documentation it links (docs/*.md, where the per-domain commands live) parses: the
  config tools' `--config=...` with every override, loaded, locked and
  validated as tools.train does; the other tools' flags are flags they define.
* The Tour's commands run, rewritten to tiny mode (`,smoke=True` on the
  config, `--steps=2` for tools.benchmark) with their `runs/<name>` workdirs in
  a temporary directory. A command whose data is not on this machine (no
  network in CI) is skipped with the reason.
"""

from __future__ import annotations

import glob
import os
import re
import shlex
import subprocess
import sys

import pytest

from research.core import config as config_lib
from research.data import registry
from tests.test_first_hour import ROOT, parse_config, tool_env

README = os.path.join(ROOT, "README.md")
CONFIG_TOOLS = ("train", "benchmark", "walk_forward", "compare_torch_gpt")
# A template, not a command: `<exp>`, `--workdir=...`, `=N`, `=n`.
_TEMPLATE = re.compile(r"<\w+>|=\.\.\.|=[A-Za-z]$")
_COMMAND = re.compile(r"python\S* -m (tools\.\w+)((?: +(?:--[^\s`]+|\[--[^\s`]+\]))*)")


def _section(text: str, title: str) -> str:
  start = text.index(f"\n## {title}")
  end = text.find("\n## ", start + 1)
  return text[start : end if end > 0 else None]


def commands(text: str) -> list[tuple[str, list[str]]]:
  """(tool module, its arguments) of every `python -m tools.X` in `text`, in order;
  optional `[--flag]` parts, `# comments` and templates (`<exp>`) left out."""
  found = []
  for line in text.splitlines():
    for m in _COMMAND.finditer(line.split("   #")[0]):
      args = [a for a in shlex.split(m.group(2)) if not a.startswith("[")]
      if not any(_TEMPLATE.search(a) for a in args):
        found.append((m.group(1), args))
  return found


def readme() -> str:
  with open(README) as f:
    return f.read()


def documented() -> str:
  """README.md and docs/*.md (the domain protocols the README links), one text."""
  texts = [readme()]
  for path in sorted(glob.glob(os.path.join(ROOT, "docs", "*.md"))):
    with open(path) as f:
      texts.append(f.read())
  return "\n".join(texts)


def _flag(args: list[str], name: str) -> str | None:
  return next((a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")), None)


def _tool_flags(module: str) -> set[str]:
  with open(os.path.join(ROOT, *module.split(".")) + ".py") as f:
    source = f.read()
  names = set(re.findall(r"DEFINE_\w+\(\s*\"(\w+)\"", source))
  return names | {"verbosity", "helpshort", "helpfull"}


def test_readme_has_commands():
  found = commands(documented())
  assert len(found) >= 30
  assert {m for m, _ in found} >= {
    "tools.train",
    "tools.evaluate",
    "tools.score",
    "tools.recommend",
    "tools.generate",
    "tools.walk_forward",
    "tools.compare_runs",
    "tools.benchmark",
    "tools.results",
  }
  assert {m for m, _ in commands(readme())} >= {
    "tools.train",
    "tools.evaluate",
    "tools.generate",
    "tools.results",
  }


@pytest.mark.parametrize(
  "module, args",
  commands(documented()),
  ids=lambda x: x if isinstance(x, str) else " ".join(x)[:80],
)
def test_every_readme_command_parses(module, args):
  spec = _flag(args, "config")
  if spec is not None:
    config = parse_config(*[a for a in args if a.startswith("--config")])
    path, _, arg = spec.partition(":")
    config_lib.finalize(config, path, arg or None)
  defined = _tool_flags(module)
  for a in args:
    name = a[2:].split("=", 1)[0]
    if not name.startswith("config"):
      assert name in defined, f"{module} has no flag --{name}"


def test_tour_overrides_parse_on_the_tour_command():
  """The Tour's inline `--config.x=...` examples, on its first training command."""
  tour = _section(readme(), "Tour")
  first = next(args for m, args in commands(tour) if m == "tools.train")
  fragments = [
    shlex.split(f) for f in re.findall(r"`(--config\.[^`]+)`", tour) if not _TEMPLATE.search(f)
  ]
  assert any("--config.total_epochs=None" in f for f in fragments)
  for fragment in fragments:
    config = parse_config(f"--config={_flag(first, 'config')}", *fragment)
    path, _, arg = _flag(first, "config").partition(":")
    config_lib.finalize(config, path, arg or None)
  # What the README promises: a duration in steps instead of epochs.
  config = parse_config(
    f"--config={_flag(first, 'config')}", "--config.total_epochs=None", "--config.total_steps=2000"
  )
  assert config.total_epochs is None and config.total_steps == 2000


# --- the Tour, run ------------------------------------------------------------------

# Workdirs a Tour command reads but no Tour command writes: trained first, tiny.
PREREQUISITES = {"runs/sc_gpt_cpu": "experiments/nlp/shakespeare_char.py:gpt_cpu"}
DATA_OF = {
  "fashion_mnist.py": ("fashion_mnist", "test"),
  "shakespeare_char.py": ("tiny_shakespeare", "validation"),
  "runs/fm_cnn": ("fashion_mnist", "test"),
  "runs/sc_gpt_cpu": ("tiny_shakespeare", "validation"),
  "multi30k.py": ("multi30k", "validation"),
  "runs/m30k": ("multi30k", "validation"),
  "aeslc.py": ("aeslc", "validation"),
  "fashion_mnist_gan.py": ("fashion_mnist", "test"),
  "scenes_segmentation.py": ("fashion_mnist", "test"),
  "scenes_detection.py": ("fashion_mnist", "test"),
}
# Why a command may be skipped: its data must be on the machine, and tests never download.
SKIP_REASON = {
  "fashion_mnist": "Fashion-MNIST is not on this machine (apt-get install "
  "dataset-fashion-mnist, or its IDX files in $RESEARCH_DATA_DIR/fashion_mnist/)",
  "tiny_shakespeare": "tiny shakespeare is not on this machine "
  "($RESEARCH_DATA_DIR/tiny_shakespeare/input.txt)",
  "multi30k": "Multi30k is not on this machine ($RESEARCH_DATA_DIR/multi30k/*.en.gz, *.de.gz)",
  "aeslc": "AESLC is not on this machine ($RESEARCH_DATA_DIR/aeslc/aeslc.tar.gz)",
}


def _missing_data(args: list[str]) -> str | None:
  for key, (name, split) in DATA_OF.items():
    if any(key in a for a in args):
      try:
        no_download = {"download": False} if "download" in registry.DATASETS[name].options else {}
        registry.get_source(name, split, **no_download)
      except FileNotFoundError:
        return SKIP_REASON[name]
  return None


def smoke(module: str, args: list[str], tmp) -> list[str]:
  """The command in tiny mode, its runs/ and /tmp workdirs under `tmp`."""
  out = []
  for a in args:
    if a.startswith("--config="):
      a += "" if "smoke=" in a else ("," if ":" in a else ":") + "smoke=True"
      # Workdirs named inside the config (the GAN's classifier=runs/fm_cnn) move too.
      a = re.sub(r"=runs/([\w.-]+)", lambda m: f"={tmp / m.group(1)}", a)
    elif a.startswith("--workdir="):
      a = f"--workdir={tmp / os.path.basename(a.split('=', 1)[1])}"
    out.append(a)
  if module == "tools.benchmark":
    out.append("--steps=2")
  if module == "tools.generate":
    out = [a for a in out if not a.startswith("--max_new_tokens")] + ["--max_new_tokens=20"]
  if module == "tools.translate":  # a two-line input file in place of the README's
    (tmp / "sentences.en").write_text("A dog runs.\nTwo men talk.\n")
    out = [a for a in out if not a.startswith(("--input", "--output"))]
    out += [f"--input={tmp / 'sentences.en'}", f"--output={tmp / 'sentences.de'}"]
  return [sys.executable, "-m", module, *out]


def tour_commands() -> list[tuple[str, list[str]]]:
  return commands(_section(readme(), "Tour"))


@pytest.mark.slow
def test_tour_commands_run_in_smoke_mode(tmp_path):
  ran, skipped = [], []
  trained = set()
  for module, args in tour_commands():
    reason = _missing_data(args)
    if reason:
      skipped.append((module, args, reason))
      continue
    workdir = _flag(args, "workdir")
    if module != "tools.train" and workdir in PREREQUISITES and workdir not in trained:
      pre = smoke(
        "tools.train", [f"--config={PREREQUISITES[workdir]}", f"--workdir={workdir}"], tmp_path
      )
      subprocess.run(pre, check=True, capture_output=True, cwd=ROOT, env=tool_env(), timeout=600)
      trained.add(workdir)
    command = smoke(module, args, tmp_path)
    p = subprocess.run(
      command, capture_output=True, text=True, cwd=ROOT, env=tool_env(), timeout=600
    )
    assert p.returncode == 0, f"{shlex.join(command)}\n{p.stderr[-3000:]}"
    if module == "tools.train":
      trained.add(workdir)
      assert p.stdout.strip().splitlines()[-1].startswith("Done: ")
    ran.append(module)
  assert "tools.train" in ran  # digits and mnist1d need no download
  for module, args, reason in skipped:
    print(f"skipped {module} {' '.join(args)}: {reason}")
