"""Parses op spec strings like `"value_range(0, 1)|random_crop(28, pad=4)|flip_lr"`.

Each `|`-separated term is `name` or `name(args)`; arguments must be python
literals (numbers, strings, tuples, lists, ...), read with `ast.literal_eval`,
so a config string can never execute code.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from research.data.ops import base


def _terms(node: ast.expr) -> list[ast.expr]:
  """Flattens `a | b | c` (a left-nested BinOp chain) into `[a, b, c]`."""
  if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
    return _terms(node.left) + _terms(node.right)
  return [node]


def _literal(node: ast.expr, what: str, spec: str) -> Any:
  try:
    return ast.literal_eval(node)
  except ValueError:
    raise ValueError(
      f"Op spec {spec!r}: {what} {ast.unparse(node)!r} is not a python "
      "literal (only numbers, strings, tuples, lists, dicts, True/False/None)."
    ) from None


def _parse_term(node: ast.expr, spec: str) -> tuple[str, tuple, dict]:
  """`name` or `name(literal, key=literal)` -> (name, args, kwargs)."""
  if isinstance(node, ast.Name):
    return node.id, (), {}
  if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
    raise ValueError(
      f"Op spec {spec!r}: expected `name` or `name(args)`, got {ast.unparse(node)!r}."
    )
  name = node.func.id
  args = []
  for a in node.args:
    if isinstance(a, ast.Starred):
      raise ValueError(f"Op spec {spec!r}: *args are not allowed in {name}(...).")
    args.append(_literal(a, f"argument of {name}", spec))
  kwargs = {}
  for kw in node.keywords:
    if kw.arg is None:
      raise ValueError(f"Op spec {spec!r}: **kwargs are not allowed in {name}(...).")
    kwargs[kw.arg] = _literal(kw.value, f"{name}'s argument {kw.arg}=", spec)
  return name, tuple(args), kwargs


def _plain_signature(factory: Callable[..., Any]) -> inspect.Signature:
  """The factory's signature without annotations, for readable error messages."""
  sig = inspect.signature(factory)
  params = [p.replace(annotation=inspect.Parameter.empty) for p in sig.parameters.values()]
  return sig.replace(parameters=params, return_annotation=inspect.Signature.empty)


def parse(spec: str | None, table: Mapping[str, Callable[..., base.Op]]) -> list[base.Op]:
  """Spec string -> ops built from `table`; ''/None -> []. Raises ValueError."""
  if spec is None:
    return []
  if not isinstance(spec, str):
    raise ValueError(f"Op spec must be a string, got {type(spec).__name__}: {spec!r}.")
  if not spec.strip():
    return []
  try:
    tree = ast.parse(spec.strip(), mode="eval")
  except SyntaxError as e:
    raise ValueError(f"Op spec {spec!r} is not valid syntax: {e.msg}.") from None
  ops = []
  for term in _terms(tree.body):
    name, args, kwargs = _parse_term(term, spec)
    if name not in table:
      raise ValueError(f"Unknown op {name!r} in spec {spec!r}; valid ops: {sorted(table)}.")
    factory = table[name]
    signature = _plain_signature(factory)
    try:
      signature.bind(*args, **kwargs)
    except TypeError as e:
      raise ValueError(
        f"Bad arguments for op {name!r} in spec {spec!r}: {e}. Signature: {name}{signature}."
      ) from None
    try:
      ops.append(factory(*args, **kwargs))
    except (TypeError, ValueError) as e:
      raise ValueError(f"Bad arguments for op {name!r} in spec {spec!r}: {e}") from None
  return ops
