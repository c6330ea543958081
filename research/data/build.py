"""From a config's `data` section to the sources a run trains and evaluates on.

Every domain goes through here, so the loop never learns what kind of data it
runs on. Besides looking data sets up in the registry it does the steps that
need the whole training split at once:

* validation carve: with `config.data.validation_fraction` set, the training
  split is split once into training and 'validation' parts, stratified by
  label and seeded (`research.data.holdout`); every consumer (training, evals,
  baselines, the tokenizer, `tools.evaluate`) sees the same two parts.
* tokenizer: trained on the training split only (or loaded when already
  saved), kept in `<workdir>/tokenizer/` so evaluation, generation and a
  resumed run reuse exactly the same one; `init_from` runs reuse the source
  run's tokenizer, since its embeddings are indexed by it.
* `config.data.format` ('examples', 'lm_windows', 'tabular', 'interactions'):
  every step that differs between kinds of data (training and eval sources,
  ops context, model fields, table preprocessing) is a hook of the format's
  object in `research.data.formats.FORMATS`; this module never branches on
  the format's name.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from typing import Any

import numpy as np

from research.data import holdout, registry
from research.data import ops as pp_ops
from research.data.core import ConcatSource
from research.data.formats import FORMATS, DataFormat
from research.data.tabular import preprocess as tab_pp
from research.data.text import tokenizers as tok_lib
from research.data.text.windows import LMWindows

__all__ = ["FORMATS", "DataBuilder", "carves_validation", "check"]

log = logging.getLogger(__name__)


def carves_validation(data_config) -> bool:
  """Whether the run carves a 'validation' split out of its `train_split`."""
  return data_config.get("validation_fraction") is not None


def check(data_config) -> None:
  """Config-load-time checks of the data section (no I/O)."""
  data_format = FORMATS.get(data_config.format)
  if carves_validation(data_config):
    holdout.check_fraction(data_config.validation_fraction)
    if not data_format.carves_validation:
      raise ValueError(
        f"config.data.validation_fraction carves examples; format "
        f"{data_config.format!r} data sets bring their own validation split "
        "(leave validation_fraction None)."
      )
    if holdout.VALIDATION in registry.DATASETS[data_config.name].splits:
      raise ValueError(
        f"Data set {data_config.name!r} has its own 'validation' split; leave "
        "config.data.validation_fraction None and evaluate on that split."
      )
  if data_config.tokenizer:
    tok_lib.check_tokenizer_spec(data_config.tokenizer.to_dict())
  if data_config.get("tabular"):
    tab_pp.check_options(data_config.tabular.to_dict())
  data_format.check(data_config)


class DataBuilder:
  """Builds (and caches) the sources, tokenizer and preprocessing of one run.

  What differs between data formats is asked of `self.format`
  (`research.data.formats.DataFormat`); the caches stay here.
  """

  def __init__(self, config, workdir: str | None = None):
    self.config = config
    self.data = config.data
    self.format: DataFormat = FORMATS.get(self.data.format)
    self.data_dir = self.data.data_dir or os.environ.get("RESEARCH_DATA_DIR") or None
    self.workdir = workdir
    self._raw: dict[str, Any] = {}
    self._tokenizer = None
    self._tokens: dict[str, np.ndarray] = {}
    self._preprocessor: tab_pp.Preprocessor | None = None
    self._encoded: dict[str, Any] = {}
    self._holdout: holdout.Carve | None = None

  # --- raw data -------------------------------------------------------------
  def raw(self, split: str, **extra_options):
    if split not in self._raw:
      if carves_validation(self.data) and split in (self.data.train_split, holdout.VALIDATION):
        self._raw[split] = self._carve().part(
          holdout.VALIDATION if split == holdout.VALIDATION else "train"
        )
        return self._raw[split]
      self._raw[split] = self._registry_source(split, **extra_options)
    return self._raw[split]

  def _registry_source(self, split: str, **extra_options):
    options = dict(self.format.source_options(self))
    options.update(self.data.options.to_dict(), **extra_options)
    return registry.get_source(self.data.name, split, data_dir=self.data_dir, **options)

  def _carve(self) -> holdout.Carve:
    """The train/validation carve of `train_split` (`config.data.validation_fraction`)."""
    if self._holdout is None:
      self._holdout = holdout.Carve(
        self._registry_source(self.data.train_split),
        self.data.validation_fraction,
        self.data.validation_seed,
        label_key=self.config.task.get("label_key") or "label",
      )
      log.info(
        "Validation split: %d of %d %s:%s examples held out (stratified, seed %d).",
        len(self._holdout.val_indices),
        len(self._holdout.source),
        self.data.name,
        self.data.train_split,
        self.data.validation_seed,
      )
    return self._holdout

  def raw_train(self):
    """The training split plus any `extra_train_splits` that exist (e.g. IMDb's
    'unsupervised' reviews, present in TFDS but not in every local copy)."""
    sources = [self.raw(self.data.train_split)]
    # "When present" means present locally or prepared: never a download.
    no_download = (
      {"download": False} if "download" in registry.DATASETS[self.data.name].options else {}
    )
    for split in self.data.extra_train_splits:
      try:
        sources.append(self.raw(split, **no_download))
      except (FileNotFoundError, ValueError) as e:
        log.warning("Extra training split %r not available, training without it: %s", split, e)
    return sources[0] if len(sources) == 1 else ConcatSource(sources)

  # --- tokenizer ------------------------------------------------------------
  @property
  def tokenizer(self):
    if self._tokenizer is None and self.data.tokenizer:
      self._tokenizer = self._get_tokenizer()
    return self._tokenizer

  def _get_tokenizer(self):
    source_run = self.config.init_from.workdir
    if source_run:
      directory = os.path.join(source_run, "tokenizer")
      if not os.path.isdir(directory):
        raise FileNotFoundError(
          f"init_from.workdir={source_run!r} has no tokenizer/; the "
          "source run must be a text run of this codebase."
        )
      return tok_lib.load_tokenizer(directory)
    directory = (
      os.path.join(self.workdir, "tokenizer")
      if self.workdir
      else tempfile.mkdtemp(prefix="tokenizer_")
    )
    return tok_lib.get_or_train_tokenizer(
      self.data.tokenizer.to_dict(), self._training_texts, directory
    )

  def _training_texts(self):
    """Text of the training data only: the tokenizer never sees evaluation text."""
    source = self.raw_train()
    if hasattr(source, "text"):
      yield source.text
    else:
      for i in range(len(source)):
        yield str(source[i]["text"])

  # --- fitted tabular preprocessing --------------------------------------------
  @property
  def preprocessor(self) -> tab_pp.Preprocessor:
    """The `Preprocessor` of a 'tabular' run: loaded from the workdir when saved
    there, else fitted on the training split only and saved (cached)."""
    if self._preprocessor is None:
      self._preprocessor = self.format.preprocessor(self)
    return self._preprocessor

  def encoded_source(self, split: str):
    """`split`'s raw rows encoded by the run's `preprocessor` (cached)."""
    if split not in self._encoded:
      self._encoded[split] = self.preprocessor.encode_source(self.raw(split))
    return self._encoded[split]

  # --- preprocessing ----------------------------------------------------------
  def ops(self, spec: str):
    context = {}
    if self.data.tokenizer:
      context["tokenizer"] = self.tokenizer
    context.update(self.format.ops_context(self))
    return pp_ops.parse(spec, context=context or None)

  # --- interaction data -------------------------------------------------------
  @property
  def recsys(self):
    """The run's `research.data.recsys.dataset.RecsysData` (format 'interactions' only)."""
    source = self.raw(self.data.train_split)
    if not hasattr(source, "recsys"):
      raise ValueError(
        f"config.data.format='interactions' needs an interaction data set; "
        f"{self.data.name!r} is not one (use 'movielens')."
      )
    return source.recsys

  def model_fields(self) -> dict[str, Any]:
    """Model fields the data decides (filled where the config leaves them None)."""
    return self.format.model_fields(self)

  # --- sources the pipeline consumes -----------------------------------------
  def train_source(self):
    """The source training iterates over."""
    return self.format.train_source(self)

  def eval_source(self, split: str, eval_config: Mapping[str, Any], *, round_index: int = 0):
    """The source an evaluator iterates over once per evaluation (for 'lm_windows',
    `eval_config.windows` picks contiguous or per-round random windows)."""
    return self.format.eval_source(self, split, eval_config, round_index)

  def token_stream(self, split: str) -> np.ndarray:
    """A text split encoded by the run's tokenizer: int [num_tokens] (cached)."""
    if split not in self._tokens:
      source = self.raw(split)
      if not hasattr(source, "text"):
        raise ValueError(
          f"config.data.format='lm_windows' needs a text corpus; data set "
          f"{self.data.name!r} split {split!r} is not one."
        )
      self._tokens[split] = LMWindows.tokens_from_text(source.text, self.tokenizer)
    return self._tokens[split]
