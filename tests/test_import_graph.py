"""The folder tree is the architecture: every module imports, research/ has no import
cycles, and each layer imports only what lies below it.

The graph is read from the source (ast), module-level and function-level imports
alike, so an import inside a function cannot hide a layering breach. An edge
points at the most specific module named: `from research.core import config` is
an edge to research.core.config, `from research.core.config import load` one to
research.core.config. (Importing a submodule also runs its package's
__init__.py; those implicit edges are left out: a partly initialised package is
what `from package import submodule` handles.)
"""

import ast
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import NamedTuple

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRST_PARTY = ("research", "tools", "experiments")


class Edge(NamedTuple):
  source: str  # the importing module, e.g. 'research.train.loop'
  target: str  # the imported first-party module
  line: int
  function: str | None  # enclosing function ('Class.method'), None at module level

  def __str__(self):
    where = f" in {self.function}()" if self.function else ""
    return f"{self.source}:{self.line}{where} imports {self.target}"


def _modules(top: str) -> dict[str, str]:
  """{dotted module name: file path} of every .py file under ROOT/<top>."""
  found = {}
  for folder, dirs, files in os.walk(os.path.join(ROOT, top)):
    dirs[:] = sorted(d for d in dirs if d != "__pycache__")
    for f in sorted(files):
      if f.endswith(".py"):
        rel = os.path.relpath(os.path.join(folder, f), ROOT).removesuffix(".py")
        found[rel.replace(os.sep, ".").removesuffix(".__init__")] = os.path.join(folder, f)
  return found


RESEARCH = _modules("research")
TOOLS = _modules("tools")


class _Imports(ast.NodeVisitor):
  """The first-party modules one file imports, with line and enclosing function."""

  def __init__(self, module: str, is_package: bool, known: set[str]):
    self.module, self.known = module, known
    self.package = module if is_package else module.rpartition(".")[0]
    self.scope: list[str] = []
    self.edges: list[Edge] = []

  def _scoped(self, node):
    self.scope.append(node.name)
    self.generic_visit(node)
    self.scope.pop()

  visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scoped

  def _add(self, name: str, line: int):
    if name.split(".")[0] in FIRST_PARTY:
      self.edges.append(Edge(self.module, name, line, ".".join(self.scope) or None))

  def visit_Import(self, node):
    for alias in node.names:
      self._add(alias.name, node.lineno)

  def visit_ImportFrom(self, node):
    base = node.module or ""
    if node.level:  # relative: against this module's package
      parts = self.package.split(".")
      parent = ".".join(parts[: len(parts) - node.level + 1])
      base = f"{parent}.{base}" if base else parent
    for alias in node.names:  # `from a import b`: the module a.b when it is one, else a
      name = f"{base}.{alias.name}"
      self._add(name if name in self.known else base, node.lineno)


def _edges(modules: dict[str, str]) -> list[Edge]:
  known = set(RESEARCH) | set(TOOLS)
  edges = []
  for module, path in modules.items():
    with open(path) as f:
      tree = ast.parse(f.read(), path)
    visitor = _Imports(module, path.endswith("__init__.py"), known)
    visitor.visit(tree)
    edges += visitor.edges
  return edges


EDGES = _edges(RESEARCH)


def _under(name: str, *packages: str) -> bool:
  return any(name == p or name.startswith(p + ".") for p in packages)


# `validate()` checks every config section against its registry (data sets, models,
# evaluators, optimizers, ...) when a config is built; it imports them inside the
# function so research.core.config stays importable without them. It is the one
# place research/core reaches up, and the only edges left out of the cycle check
# (the registries import research.core.config in turn).
def _allowed_core_exception(edge: Edge) -> bool:
  return edge.source == "research.core.config" and edge.function == "validate"


# Domain-specific modules: a domain's data, metrics, evaluators, baselines and
# applications. research/train reaches them only through the registries
# (research.data.build, research.metrics.evaluators, research.baselines, research.models).
DOMAIN_SPECIFIC = (
  "research.domains",
  "research.apps",
  "research.data.vision",
  "research.data.text",
  "research.data.tabular",
  "research.data.recsys",
  "research.data.series",
  "research.metrics.credit",
  "research.metrics.fairness",
  "research.metrics.market",
  "research.metrics.ranking",
  "research.metrics.language",
  "research.metrics.detection",
  "research.metrics.evaluators.classification",
  "research.metrics.evaluators.recsys",
  "research.metrics.evaluators.language",
  "research.metrics.evaluators.finance",
  "research.metrics.evaluators.detection",
  "research.baselines.classification",
  "research.baselines.recsys",
  "research.baselines.finance",
  "research.baselines.detection",
)


class Rule(NamedTuple):
  name: str
  applies: Callable[[str], bool]  # to this importing module
  forbids: Callable[[Edge], bool]


RULES = [
  Rule(
    "research/train is domain-free: no domain data, metrics, evaluators, baselines or apps",
    lambda m: _under(m, "research.train"),
    lambda e: _under(e.target, *DOMAIN_SPECIFIC),
  ),
  Rule(
    "research/models, research/data and research/metrics do not import research.train or apps",
    lambda m: _under(m, "research.models", "research.data", "research.metrics"),
    lambda e: _under(e.target, "research.train", "research.apps"),
  ),
  Rule(
    "only research.apps imports research.apps (tools/ may)",
    lambda m: not _under(m, "research.apps"),
    lambda e: _under(e.target, "research.apps"),
  ),
  Rule(
    "research/core imports only research.core and research.platforms (except config.validate)",
    lambda m: _under(m, "research.core"),
    lambda e: (
      not _under(e.target, "research.core", "research.platforms") and not _allowed_core_exception(e)
    ),
  ),
  Rule(
    "research/ does not import tools/ or experiments/ (they are not installed)",
    lambda m: True,
    lambda e: _under(e.target, "tools", "experiments"),
  ),
]


def _cycles(edges: list[Edge]) -> list[list[str]]:
  """One cycle (as a module path, first module repeated at the end) per strongly
  connected component of more than one module (or a module importing itself)."""
  graph: dict[str, set[str]] = {}
  for e in edges:
    graph.setdefault(e.source, set()).add(e.target)
  index: dict[str, int] = {}
  low: dict[str, int] = {}
  stack: list[str] = []
  on_stack: set[str] = set()
  components = []

  def connect(v: str):  # Tarjan; recursion depth is bounded by the module count
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in sorted(graph.get(v, ())):
      if w not in index:
        connect(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1 or v in graph.get(v, ()):
        components.append(set(component))

  for v in sorted(graph):
    if v not in index:
      connect(v)
  return [_path_in(component, graph) for component in components]


def _path_in(component: set[str], graph: dict[str, set[str]]) -> list[str]:
  """A shortest cycle through the component's first module (breadth-first)."""
  start = min(component)
  parents: dict[str, str] = {}
  frontier = [start]
  while frontier:
    nxt = []
    for v in frontier:
      for w in sorted(graph.get(v, set()) & component):
        if w == start:
          path = [v]
          while path[-1] != start:
            path.append(parents[path[-1]])
          return [start, *reversed(path[:-1]), start] if v != start else [start, start]
        if w not in parents:
          parents[w] = v
          nxt.append(w)
    frontier = nxt
  return sorted(component)


def test_the_graph_is_read():
  # Guards the parser: known edges, at module and at function level, are found.
  assert ("research.train.loop", "research.core.config") in {(e.source, e.target) for e in EDGES}
  validate = [e for e in EDGES if _allowed_core_exception(e)]
  assert {"research.data.registry", "research.metrics.evaluators"} <= {e.target for e in validate}
  assert _cycles([Edge("a", "b", 1, None), Edge("b", "c", 1, None), Edge("c", "a", 1, None)]) == [
    ["a", "b", "c", "a"]
  ]


def test_research_has_no_import_cycles():
  cycles = _cycles([e for e in EDGES if not _allowed_core_exception(e)])
  assert not cycles, "import cycles (module-level and function-level imports):\n" + "\n".join(
    " -> ".join(c) for c in cycles
  )


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name.split(":")[0][:60])
def test_layering(rule):
  breaches = [e for e in EDGES if rule.applies(e.source) and rule.forbids(e)]
  assert not breaches, f"{rule.name}:\n" + "\n".join(f"  {e}" for e in breaches)


# Imports every module in one fresh interpreter. research modules are each imported
# first (the first-party modules imported before are dropped from sys.modules), so a
# module that only imports after some other one fails here. Each tool defines its own
# absl flags (several share names: --config, --workdir); they are removed again
# before the next tool is imported.
_IMPORT_ALL = textwrap.dedent("""
    import importlib, sys, traceback
    from absl import flags

    failures = []
    def load(name):
      try:
        importlib.import_module(name)
      except Exception:
        failures.append(name + ": " + traceback.format_exc(limit=-3))

    for name in sys.argv[1].split(","):
      for loaded in [m for m in sys.modules if m.split(".")[0] in ("research", "experiments")]:
        del sys.modules[loaded]
      load(name)
    for name in sys.argv[2].split(","):
      before = set(flags.FLAGS)
      load(name)
      for flag in set(flags.FLAGS) - before:
        delattr(flags.FLAGS, flag)
    print("\\n".join(failures))
    sys.exit(1 if failures else 0)
""")


def test_every_module_imports():
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
  result = subprocess.run(
    [sys.executable, "-c", _IMPORT_ALL, ",".join(RESEARCH), ",".join(TOOLS)],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=900,  # a hang guard: each module re-imports its first-party chain (slow under load)
  )
  assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]
