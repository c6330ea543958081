"""pyproject.toml and constraints.txt agree (docs/gpu_tpu.md: ranges vs. tested pins)."""

import os
import tomllib

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
