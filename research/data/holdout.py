"""A validation split carved from a training split: stratified by label, seeded.

For data sets that ship only train/test (digits, MNIST, Fashion-MNIST,
CIFAR-10, MNIST-1D, IMDb): `config.data.validation_fraction = 0.1` makes the
run's `train_split` the other 90% and adds a split named 'validation' (the
`VALIDATION` name), the same way the data sets that ship their own validation
split name it, so an eval, a baseline or a selection metric names it the same
way everywhere. Carving is done once, here, for every source of the
'examples' format (`research.data.build.DataBuilder.raw` calls it), never per
experiment.

Stratified like the test split of the data sets that draw one themselves
(digits' 80/20, the credit tables' 60/20/20): each class keeps its share in
both parts. Where a class has too few examples to appear in both parts (tiny
test data), the carve falls back to a plain seeded shuffle.
"""

from __future__ import annotations

import numpy as np

from research.data.core import ArraySource, IndexedSource

VALIDATION = "validation"


def check_fraction(fraction) -> None:
  """ValueError unless `fraction` is None or in (0, 1)."""
  if fraction is not None and not (isinstance(fraction, (int, float)) and 0 < fraction < 1):
    raise ValueError(
      f"config.data.validation_fraction must be in (0, 1) (e.g. 0.1) or None, got {fraction!r}."
    )


def labels_of(source, key: str = "label") -> np.ndarray | None:
  """int `[n]`: `source`'s `key` for every example (None when it has no such key).

  In-memory sources answer without reading their inputs; any other source is
  read one example at a time (once per run: the carve is cached by the caller).
  """
  if key not in source.features:
    return None
  if isinstance(source, ArraySource):
    return np.asarray(source.column(key))
  if key == "label" and hasattr(source, "labels"):
    return np.asarray(source.labels)
  return np.asarray([source[i][key] for i in range(len(source))])


def carve_indices(
  labels: np.ndarray | None, num_examples: int, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
  """(train, validation) int64 index arrays, disjoint, sorted, covering `num_examples`.

  `labels` int `[num_examples]` or None (no stratification).
  """
  # scikit-learn's splitter is the well-tested implementation of stratified
  # shuffling (the credit tables' split uses it too); only the fallback is ours.
  from sklearn.model_selection import train_test_split

  check_fraction(fraction)
  everything = np.arange(num_examples)
  num_val = int(np.ceil(fraction * num_examples))
  if num_val < 1 or num_val >= num_examples:
    raise ValueError(
      f"validation_fraction={fraction} of {num_examples} examples leaves "
      f"{num_val} for validation and {num_examples - num_val} for training; "
      "both need at least one."
    )
  stratify = None
  if labels is not None:
    _, counts = np.unique(labels, return_counts=True)
    if counts.min() >= 2 and num_val >= len(counts) and num_examples - num_val >= len(counts):
      stratify = labels
  train, val = train_test_split(
    everything, test_size=num_val, random_state=seed, shuffle=True, stratify=stratify
  )
  return np.sort(train).astype(np.int64), np.sort(val).astype(np.int64)


class Carve:
  """One training source split into its training and validation parts.

  Args:
    source: the data set's training split (a `DataSource`).
    fraction: share of examples held out for validation, in (0, 1).
    seed: the split's seed (the same seed gives the same split on every machine).
    label_key: the key stratified on (ignored when the source lacks it).
  """

  def __init__(self, source, fraction: float, seed: int, label_key: str = "label"):
    self.source = source
    self.train_indices, self.val_indices = carve_indices(
      labels_of(source, label_key), len(source), fraction, seed
    )

  def part(self, which: str):
    """'train' or 'validation': an `IndexedSource` over the source (keeps class names)."""
    indices = self.val_indices if which == VALIDATION else self.train_indices
    part = IndexedSource(self.source, indices)
    name = getattr(self.source, "name", "source")
    part.name = f"{name}[{which} {len(indices)}/{len(self.source)}]"
    if hasattr(self.source, "class_names"):
      part.class_names = self.source.class_names
    return part
