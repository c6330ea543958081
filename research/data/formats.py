"""The values of `config.data.format`: how a data set becomes the sources a run uses.

`research.data.build.DataBuilder` asks the run's format, one object of
`FORMATS`, at each step that differs between kinds of data; the formats hold
no state (the builder keeps the run's caches: raw splits, tokenizer, token
streams, fitted preprocessing) and reach the data through the builder.

* 'examples': the data set's examples as they are (images, text
  classification, ...); the only format that can carve a validation split
  out of the training split (`config.data.validation_fraction`).
* 'lm_windows': the split's text becomes one token stream; training samples
  random windows (nanoGPT's `get_batch`, as a shuffled source), evaluation
  uses contiguous windows covering every token once (exact) or a fresh sample
  of random windows (nanoGPT's `estimate_loss`).
* 'tabular': a table's raw rows are encoded by a `Preprocessor` fitted on the
  training split only (standardisation or quantile transform, missing
  indicators, category vocabularies with an unknown bucket), saved as
  `<workdir>/preprocessing.json` and reloaded from there (resume, evaluation,
  `tools.score`), so every consumer applies exactly the same transform.
* 'interactions' (recommendation): the split and ID vocabularies are built
  once from the training split (`research.data.recsys`); ops get the run's
  interaction data as context 'recsys' (negative sampling), the NCF
  candidates are saved in the workdir, and model fields left None
  (`num_users`, `num_items`, item features) are filled from the vocabularies.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

import numpy as np

from research.core.registry import Registry
from research.data.core import IndexedSource
from research.data.tabular import preprocess as tab_pp
from research.data.text.windows import LMWindows


class Builder(Protocol):
  """What the formats use of the run's `research.data.build.DataBuilder`.

  Declared here rather than imported: build.py imports this module, and the
  formats need only these members.
  """

  config: Any  # the run's config
  data: Any  # config.data
  workdir: str | None

  def raw(self, split: str, **extra_options: Any) -> Any:
    """`split`'s source as the data set gives it (cached)."""
    ...

  def raw_train(self) -> Any:
    """The training split plus any `extra_train_splits` that exist."""
    ...

  def encoded_source(self, split: str) -> Any:
    """`split`'s raw rows encoded by `preprocessor` (cached)."""
    ...

  def token_stream(self, split: str) -> np.ndarray:
    """A text split encoded by the run's tokenizer: int [num_tokens] (cached)."""
    ...

  @property
  def preprocessor(self) -> tab_pp.Preprocessor:
    """The run's fitted tabular `Preprocessor`."""
    ...

  @property
  def recsys(self) -> Any:
    """The run's `research.data.recsys.dataset.RecsysData`."""
    ...


class DataFormat:
  """What differs between kinds of data; the defaults are format 'examples'.

  Every hook gets the run's `DataBuilder` (its config, raw splits and caches)
  except `check`, which runs at config load without any data.
  """

  # Whether config.data.validation_fraction may carve the training split.
  carves_validation: ClassVar[bool] = False

  def check(self, data_config: Any) -> None:
    """Config-load-time checks of `config.data` this format needs (no I/O)."""
    del data_config

  def source_options(self, builder: Builder) -> dict[str, Any]:
    """Default options for `registry.get_source`; `config.data.options` override them."""
    del builder
    return {}

  def train_source(self, builder: Builder) -> Any:
    """The random-access source training iterates over."""
    return builder.raw_train()

  def eval_source(
    self, builder: Builder, split: str, eval_config: Mapping[str, Any], round_index: int
  ) -> Any:
    """The source an evaluator of `split` iterates over at evaluation round `round_index`."""
    del eval_config, round_index
    return builder.raw(split)

  def ops_context(self, builder: Builder) -> dict[str, Any]:
    """Run state the ops may take (`research.data.ops.parse`'s context), besides the tokenizer."""
    del builder
    return {}

  def model_fields(self, builder: Builder) -> dict[str, Any]:
    """Model fields the data decides (filled where the config leaves them None)."""
    del builder
    return {}

  def preprocessor(self, builder: Builder) -> tab_pp.Preprocessor:
    """The fitted table preprocessing ('tabular' only)."""
    del builder
    raise ValueError("config.data.format is not 'tabular': no table preprocessing.")


class Examples(DataFormat):
  """A data set's examples as they are."""

  carves_validation = True


class LanguageModelWindows(DataFormat):
  """Windows [block_size + 1] of one token stream per split (`LMWindows`)."""

  def check(self, data_config: Any) -> None:
    if not data_config.tokenizer:
      raise ValueError(
        "config.data.format='lm_windows' needs config.data.tokenizer (e.g. {'type': 'char'})."
      )
    if not data_config.block_size:
      raise ValueError("config.data.format='lm_windows' needs config.data.block_size.")

  def train_source(self, builder: Builder) -> LMWindows:
    data = builder.data
    return LMWindows(
      builder.token_stream(data.train_split),
      data.block_size,
      "random",
      name=f"{data.name}:{data.train_split}",
    )

  def eval_source(
    self, builder: Builder, split: str, eval_config: Mapping[str, Any], round_index: int
  ) -> Any:
    """The eval config's `windows` says 'contiguous' (exact, every token once) or
    'random' (`num_batches` x eval batch random windows, redrawn at every
    evaluation round from seed + round)."""
    data, config = builder.data, builder.config
    windows = eval_config.get("windows", "contiguous")
    tokens = builder.token_stream(split)
    if windows == "contiguous":
      return LMWindows(tokens, data.block_size, "contiguous", name=f"{data.name}:{split}")
    if windows != "random":
      raise ValueError(f"eval windows must be 'contiguous' or 'random', got {windows!r}.")
    source = LMWindows(tokens, data.block_size, "random", name=f"{data.name}:{split}")
    count = int(eval_config.get("num_batches", 20)) * config.eval_batch_size
    rng = np.random.default_rng([config.seed, round_index])
    return IndexedSource(source, rng.integers(0, len(source), count))


class Tabular(DataFormat):
  """Table rows encoded by the run's fitted `Preprocessor`."""

  def train_source(self, builder: Builder) -> Any:
    if builder.data.extra_train_splits:
      raise ValueError("config.data.format='tabular' takes no extra_train_splits.")
    return builder.encoded_source(builder.data.train_split)

  def eval_source(
    self, builder: Builder, split: str, eval_config: Mapping[str, Any], round_index: int
  ) -> Any:
    del eval_config, round_index
    return builder.encoded_source(split)

  def model_fields(self, builder: Builder) -> dict[str, Any]:
    # One embedding table per categorical column, sized by the vocabularies
    # fitted on the training split.
    return {"cardinalities": builder.preprocessor.cardinalities}

  def preprocessor(self, builder: Builder) -> tab_pp.Preprocessor:
    """Loaded from the workdir when saved there, else fitted on the training split
    only and saved."""
    workdir = builder.workdir
    path = os.path.join(workdir, tab_pp.PREPROCESSING_FILE) if workdir else None
    if path and os.path.exists(path):
      return tab_pp.Preprocessor.load(path)
    options = builder.data.get("tabular")
    options = options.to_dict() if options else {}
    train = builder.raw_train()
    preprocessor = tab_pp.Preprocessor.fit(train.frame, train.schema, **options)
    if path:
      preprocessor.save(path)
    return preprocessor


class Interactions(DataFormat):
  """User-item interaction logs (`research.data.recsys`)."""

  def source_options(self, builder: Builder) -> dict[str, Any]:
    return {"workdir": builder.workdir}  # where the NCF candidates are saved

  def ops_context(self, builder: Builder) -> dict[str, Any]:
    return {"recsys": builder.recsys}  # negative sampling excludes training pairs

  def model_fields(self, builder: Builder) -> dict[str, Any]:
    r = builder.recsys
    return {
      "num_users": r.num_users,
      "num_items": r.num_items,
      "item_genres": r.item_genres,
      "item_year": r.item_year,
      "user_genres": r.user_genres(),
      "rating_mean": float(r.train["rating"].mean()),
    }


FORMATS: Registry[DataFormat] = Registry(
  "data format",
  "config.data.format",
  {
    "examples": Examples(),
    "lm_windows": LanguageModelWindows(),
    "tabular": Tabular(),
    "interactions": Interactions(),
  },
)
