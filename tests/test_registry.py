"""research.core.registry.Registry, and the registries built with it."""

import pytest

from research import baselines
from research.core import tasks
from research.core.registry import Registry
from research.data import formats, ops, registry
from research.metrics import evaluators
from research.models import MODELS


def _colours() -> Registry[int]:
  return Registry("colour", "config.colour", {"red": 1, "green": 2})


def test_add_get_and_dict_reading():
  colours = _colours()
  assert colours.add("blue", 3) == 3
  assert colours.get("blue") == 3 and colours["red"] == 1
  assert "green" in colours and "pink" not in colours
  assert list(colours) == ["red", "green", "blue"]  # insertion order
  assert colours.items() == [("red", 1), ("green", 2), ("blue", 3)]
  assert colours.names() == ("blue", "green", "red")  # sorted
  assert len(colours) == 3
  assert sorted(colours) == list(colours.names())


def test_register_decorator_returns_the_object():
  shapes: Registry = Registry("shape", "config.shape")

  @shapes.register("square")
  def square(side):
    return side * side

  assert shapes.get("square") is square and square(3) == 9


def test_duplicate_names_raise():
  colours = _colours()
  with pytest.raises(ValueError, match="colour 'red' is registered twice"):
    colours.add("red", 9)
  with pytest.raises(ValueError, match="registered twice"):
    colours.register("green")(lambda: None)
  assert colours["red"] == 1  # the first entry stays


def test_names_must_be_non_empty_strings():
  with pytest.raises(ValueError, match="non-empty string"):
    _colours().add("", 0)
  with pytest.raises(ValueError, match="non-empty string"):
    _colours().add(None, 0)


def test_unknown_name_error_is_one_line_with_field_value_and_sorted_names():
  colours = _colours()
  with pytest.raises(ValueError) as e:
    colours.get("pink")
  message = str(e.value)
  assert message == ("Unknown colour 'pink' in config.colour; valid names: ['green', 'red'].")
  assert "\n" not in message
  with pytest.raises(ValueError, match=r"in config.evals.test.colour; valid"):
    colours.check("pink", field="config.evals.test.colour")
  colours.check("red")  # no error


def test_unhashable_and_missing_values_are_unknown_names():
  colours = _colours()
  assert ["red"] not in colours
  with pytest.raises(ValueError, match=r"Unknown colour \['red'\]"):
    colours.check(["red"])
  with pytest.raises(ValueError, match="Unknown colour None"):
    colours.get(None)


def test_getitem_raises_key_error_like_a_dict():
  with pytest.raises(KeyError, match="valid names"):
    _colours()["pink"]


@pytest.mark.parametrize(
  "table,field,known",
  [
    (MODELS, "config.model.name", "mlp"),
    (tasks.TASKS, "config.task.name", "classification"),
    (ops.OPS, "config.data.pp_train", "flip_lr"),
    (evaluators.EVALUATORS, "config.evals.<name>.type", "classification"),
    (baselines.BASELINES, "config.baselines.<name>.type", "majority_class"),
    (registry.DATASETS, "config.data.name", "digits"),
    (formats.FORMATS, "config.data.format", "tabular"),
  ],
)
def test_every_registry_is_a_registry_naming_its_field(table, field, known):
  assert isinstance(table, Registry)
  assert table.field.startswith(field)
  assert known in table
  with pytest.raises(ValueError) as e:
    table.get("no_such_name")
  assert field.split("<")[0] in str(e.value) and repr(known) in str(e.value)


def test_formats_are_the_four_documented_ones():
  assert formats.FORMATS.names() == ("examples", "interactions", "lm_windows", "tabular")
  assert [n for n, f in formats.FORMATS.items() if f.carves_validation] == ["examples"]


def test_public_checks_report_through_the_registry():
  with pytest.raises(ValueError, match=r"Unknown task 'ranking' in config.task.name"):
    tasks.check_task({"name": "ranking"})
  with pytest.raises(ValueError, match=r"Unknown evaluator type 'bleu' in config.evals.val.type"):
    evaluators.check_evaluator_type("bleu", "val")
  with pytest.raises(ValueError, match=r"Unknown baseline type 'knn' in config.baselines.b.type"):
    baselines.check_baseline_config("b", {"type": "knn", "split": "test"}, ["test"])
