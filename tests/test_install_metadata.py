"""pyproject.toml and constraints.txt agree (docs/gpu_tpu.md: ranges vs. tested pins), and an
install holds the package `research` only: tools/ and experiments/ run from a checkout."""

import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
import warnings
import zipfile

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _project():
  with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
    return tomllib.load(f)["project"]


def _pins() -> dict[str, str]:
  pins = {}
  with open(os.path.join(ROOT, "constraints.txt")) as f:
    for line in f:
      line = line.split("#", 1)[0].strip()
      if line:
        req = Requirement(line)
        (spec,) = req.specifier
        assert spec.operator == "==", f"constraints.txt pins exact versions: {line!r}"
        pins[canonicalize_name(req.name)] = spec.version
  return pins


def test_every_pin_lies_inside_the_supported_range():
  project, pins = _project(), _pins()
  requirements = [Requirement(r) for r in project["dependencies"]]
  requirements += [Requirement(r) for r in project["optional-dependencies"]["test"]]
  for req in requirements:
    name = canonicalize_name(req.name)
    assert name in pins, f"{req.name} is a dependency but constraints.txt does not pin it"
    assert req.specifier.contains(pins[name], prereleases=True), (
      f"constraints.txt pins {req.name}=={pins[name]}, outside pyproject's {req.specifier}"
    )


def test_python_versions_and_accelerator_extras():
  project = _project()
  supported = SpecifierSet(project["requires-python"])
  assert all(v in supported for v in ("3.11", "3.12", "3.13"))
  core_jax = next(Requirement(r) for r in project["dependencies"] if r.startswith("jax"))
  for extra, jax_extra in (("cuda12", "cuda12"), ("cuda13", "cuda13"), ("tpu", "tpu")):
    (req,) = [Requirement(r) for r in project["optional-dependencies"][extra]]
    # The extra only adds JAX's own plugin; it may not move jax out of the core range.
    assert req.name == "jax" and req.extras == {jax_extra}
    assert req.specifier == core_jax.specifier


def _research_packages() -> set[str]:
  """Every folder under research/ holding a .py file, as a dotted package name."""
  found = set()
  for folder, dirs, files in os.walk(os.path.join(ROOT, "research")):
    dirs[:] = [d for d in dirs if d != "__pycache__"]
    if any(f.endswith(".py") for f in files):
      found.add(os.path.relpath(folder, ROOT).replace(os.sep, "."))
  return found


def test_setuptools_finds_research_and_nothing_else():
  # What setuptools puts in a wheel (and maps in an editable install): pyproject's
  # packages.find, expanded as the build backend expands it.
  from setuptools.config.pyprojecttoml import read_configuration

  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # setuptools < 69 calls [tool.setuptools] "beta"
    config = read_configuration(os.path.join(ROOT, "pyproject.toml"))
  packages = set(config["tool"]["setuptools"]["packages"])
  assert packages == _research_packages(), (
    "installed packages differ from research/'s folders (a folder without __init__.py is "
    f"left out of the wheel): {sorted(packages ^ _research_packages())}"
  )


def _can_build_wheels() -> bool:
  """setuptools builds wheels itself from 70.1; before that it needs the `wheel` package."""
  import setuptools

  version = tuple(int(p) for p in setuptools.__version__.split(".")[:2])
  return version >= (70, 1) or importlib.util.find_spec("wheel") is not None


def _copy_sources(dest: str) -> None:
  """The files a build reads (not the checkout itself: setuptools writes build/ and
  *.egg-info next to pyproject.toml)."""
  os.makedirs(dest)
  for name in ("pyproject.toml", "README.md"):
    shutil.copy(os.path.join(ROOT, name), dest)
  for name in ("research", "tools", "experiments"):  # tools/experiments: must be left out
    shutil.copytree(
      os.path.join(ROOT, name),
      os.path.join(dest, name),
      ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )


@pytest.mark.slow  # a wheel build (~2 s) and a 2-step training run (~9 s)
@pytest.mark.skipif(not _can_build_wheels(), reason="setuptools < 70.1 without `wheel`")
def test_wheel_holds_only_research_and_a_checkout_trains_against_it(tmp_path):
  source, out, site = tmp_path / "source", tmp_path / "dist", tmp_path / "site"
  _copy_sources(str(source))
  build = subprocess.run(
    [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    + ["-w", str(out), str(source)],
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert build.returncode == 0, build.stderr[-3000:]
  (wheel,) = out.glob("research-*.whl")
  with zipfile.ZipFile(wheel) as z:
    names = z.namelist()
    z.extractall(site)
  top = {n.split("/", 1)[0] for n in names}
  assert top == {"research", wheel.name.split("-py")[0] + ".dist-info"}, sorted(top)
  shipped = {n for n in names if n.endswith(".py")}
  expected = {
    os.path.relpath(os.path.join(folder, f), ROOT).replace(os.sep, "/")
    for folder, _, files in os.walk(os.path.join(ROOT, "research"))
    for f in files
    if f.endswith(".py")
  }
  assert shipped == expected, sorted(shipped ^ expected)

  # A regular install: `research` from site-packages (the unpacked wheel), tools/
  # and experiments/ from the working directory, as `python -m` puts it on sys.path.
  checkout = tmp_path / "checkout"
  checkout.mkdir()
  for name in ("tools", "experiments"):
    os.symlink(os.path.join(ROOT, name), checkout / name)
  env = dict(os.environ, PYTHONPATH=str(site), JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)  # one CPU device: the run, not sharding, is under test
  run = subprocess.run(
    [sys.executable, "-m", "tools.train", "--config=experiments/vision/digits.py:mlp,smoke=True"]
    + [f"--workdir={tmp_path / 'run'}", "--config.total_steps=2", "--config.progress=False"],
    cwd=checkout,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert run.returncode == 0, run.stderr[-3000:]
  assert run.stdout.startswith("Done: "), run.stdout
  assert (tmp_path / "run" / "summary.json").exists()


# Run with research importable and no package `experiments`: an installed `research`
# outside a checkout. Editable-install finders are dropped first (an older editable
# install of this project mapped `experiments` too).
_OUTSIDE_A_CHECKOUT = textwrap.dedent("""
    import importlib.util, sys
    sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
    assert importlib.util.find_spec("experiments") is None, "experiments importable"
    from research.core import config
    loaded = config.load(sys.argv[1])
    import experiments
    print(loaded.experiment, experiments.__path__[0])
""")


@pytest.mark.parametrize("with_init", [True, False], ids=["package", "namespace"])
def test_an_experiment_file_imports_its_siblings_outside_a_checkout(tmp_path, with_init):
  # movielens_ncf does `from experiments.recommendation import _common`.
  copy = tmp_path / "elsewhere" / "experiments"
  shutil.copytree(
    os.path.join(ROOT, "experiments"), copy, ignore=shutil.ignore_patterns("__pycache__")
  )
  if not with_init:
    for init in copy.rglob("__init__.py"):
      init.unlink()
  site, cwd = tmp_path / "site", tmp_path / "cwd"
  site.mkdir()
  cwd.mkdir()
  os.symlink(os.path.join(ROOT, "research"), site / "research")
  result = subprocess.run(
    [sys.executable, "-c", _OUTSIDE_A_CHECKOUT, f"{copy}/recommendation/movielens_ncf.py:gmf"],
    cwd=cwd,
    env=dict(os.environ, PYTHONPATH=str(site)),
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.split() == ["recommendation/movielens_ncf:gmf", str(copy)]
