"""Named things a config chooses between: models, tasks, ops, evaluators, data sets, ...

Every registry of the codebase is one `Registry`, filled in one module that
imports its members directly, so what exists never depends on what else
happened to be imported:

    MODELS = Registry("model", "config.model.name", {"mlp": MLP, "cnn": CNN})
    MODELS.add("lenet", LeNet)

    @BASELINES.register("popularity")
    def popularity(ctx): ...

    MODELS.get("mlp")   # -> MLP
    MODELS.get("vit")   # ValueError: Unknown model 'vit' in config.model.name; valid names: ['cnn', ...].

A registry reads like a read-only dict (`in`, iteration over names, `items()`,
`registry[name]`), so code written against the plain dicts it replaced keeps
working; only `get` / `check` give the config-facing error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
  """Name -> object of one kind, with errors that name the config field.

  Args:
    kind: what an entry is, in words ('model', 'data set', 'baseline type').
    field: the config field that names an entry ('config.model.name'); error
      messages quote it so a user knows which line of the config to change.
    entries: optional initial `{name: object}` (a dict literal keeps a table
      readable; ruff rejects a repeated key in one).
  """

  def __init__(self, kind: str, field: str, entries: Mapping[str, T] | None = None):
    self.kind = kind
    self.field = field
    self._entries: dict[str, T] = {}
    for name, obj in (entries or {}).items():
      self.add(name, obj)

  def add(self, name: str, obj: T) -> T:
    """Adds `obj` under `name` and returns it; ValueError if `name` is taken."""
    if not isinstance(name, str) or not name:
      raise ValueError(f"A {self.kind} name must be a non-empty string, got {name!r}.")
    if name in self._entries:
      raise ValueError(f"{self.kind} {name!r} is registered twice.")
    self._entries[name] = obj
    return obj

  def register(self, name: str) -> Callable[[T], T]:
    """Decorator form of `add`: `@REGISTRY.register('name')` above a function or class."""

    def wrap(obj: T) -> T:
      return self.add(name, obj)

    return wrap

  def check(self, name: Any, *, field: str | None = None) -> None:
    """ValueError (one line: the field, the bad value, the valid names) unless `name`
    is registered. `field` overrides the registry's, e.g. 'config.baselines.gbdt.type'."""
    if name not in self:
      raise ValueError(
        f"Unknown {self.kind} {name!r} in {field or self.field}; valid names: {list(self.names())}."
      )

  def get(self, name: Any, *, field: str | None = None) -> T:
    """The entry `name`; ValueError as `check` if there is none."""
    self.check(name, field=field)
    return self._entries[name]

  def names(self) -> tuple[str, ...]:
    """The registered names, sorted."""
    return tuple(sorted(self._entries))

  def items(self) -> list[tuple[str, T]]:
    """(name, entry) pairs in the order they were added."""
    return list(self._entries.items())

  def __contains__(self, name: object) -> bool:
    try:
      return name in self._entries
    except TypeError:  # an unhashable value from a config (a list) is simply not a name
      return False

  def __iter__(self) -> Iterator[str]:
    return iter(list(self._entries))

  def __len__(self) -> int:
    return len(self._entries)

  def __getitem__(self, name: str) -> T:
    """Dict-style lookup: KeyError (with the valid names) for an unknown name."""
    if name not in self:
      raise KeyError(f"Unknown {self.kind} {name!r}; valid names: {list(self.names())}.")
    return self._entries[name]

  def __repr__(self) -> str:
    return f"Registry({self.kind!r}, {self.field!r}, names={list(self.names())})"
