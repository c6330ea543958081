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
* format 'tabular': a table's raw rows are encoded by a `Preprocessor` fitted on
  the training split only (standardisation or quantile transform, missing
  indicators, category vocabularies with an unknown bucket), saved as
  `<workdir>/preprocessing.json` and reloaded from there (resume, evaluation,
  `tools.score`), so every consumer applies exactly the same transform.
* format 'lm_windows': the split's text becomes one token stream; training
  samples random windows (nanoGPT's `get_batch`, as a shuffled source),
  evaluation uses contiguous windows covering every token once (exact) or a
  fresh sample of random windows (nanoGPT's `estimate_loss`).
* format 'interactions' (recommendation): the split and ID vocabularies are
  built once from the training split (`research.data.recsys`); ops get the
  run's interaction data as context 'recsys' (negative sampling), the NCF
  candidates are saved in the workdir, and model fields left None
  (`num_users`, `num_items`, item features) are filled from the vocabularies.
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
from research.data.core import ConcatSource, IndexedSource
from research.data.tabular import preprocess as tab_pp
from research.data.text import tokenizers as tok_lib
from research.data.text.windows import LMWindows

log = logging.getLogger(__name__)

FORMATS = ("examples", "lm_windows", "tabular", "interactions")


def carves_validation(data_config) -> bool:
  """Whether the run carves a 'validation' split out of its `train_split`."""
  return data_config.get("validation_fraction") is not None


def check(data_config) -> None:
  """Config-load-time checks of the data section (no I/O)."""
  if data_config.format not in FORMATS:
    raise ValueError(
      f"Unknown config.data.format {data_config.format!r}; valid: {', '.join(FORMATS)}."
    )
  if carves_validation(data_config):
    holdout.check_fraction(data_config.validation_fraction)
    if data_config.format != "examples":
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
  if data_config.format == "lm_windows":
    if not data_config.tokenizer:
      raise ValueError(
        "config.data.format='lm_windows' needs config.data.tokenizer (e.g. {'type': 'char'})."
      )
    if not data_config.block_size:
      raise ValueError("config.data.format='lm_windows' needs config.data.block_size.")


class DataBuilder:
  """Builds (and caches) the sources, tokenizer and preprocessing of one run."""

  def __init__(self, config, workdir: str | None = None):
    self.config = config
    self.data = config.data
    self.data_dir = self.data.data_dir or os.environ.get("RESEARCH_DATA_DIR") or None
    self.workdir = workdir
    self._raw: dict[str, Any] = {}
    self._tokenizer = None
    self._tokens: dict[str, np.ndarray] = {}
    self._preprocessor = None
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
    options = dict(self.data.options.to_dict(), **extra_options)
    if self.data.format == "interactions":
      options.setdefault("workdir", self.workdir)  # where the NCF candidates are saved
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

  def _raw_train(self):
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
    source = self._raw_train()
    if hasattr(source, "text"):
      yield source.text
    else:
      for i in range(len(source)):
        yield str(source[i]["text"])

  # --- fitted tabular preprocessing --------------------------------------------
  @property
  def preprocessor(self):
    """The `Preprocessor` of a 'tabular' run: loaded from the workdir when saved
    there, else fitted on the training split only and saved."""
    if self.data.format != "tabular":
      raise ValueError("config.data.format is not 'tabular': no table preprocessing.")
    if self._preprocessor is None:
      path = os.path.join(self.workdir, tab_pp.PREPROCESSING_FILE) if self.workdir else None
      if path and os.path.exists(path):
        self._preprocessor = tab_pp.Preprocessor.load(path)
      else:
        options = self.data.get("tabular")
        options = options.to_dict() if options else {}
        self._preprocessor = tab_pp.Preprocessor.fit(
          self._raw_train().frame, self._raw_train().schema, **options
        )
        if path:
          self._preprocessor.save(path)
    return self._preprocessor

  def _encoded_source(self, split: str):
    if split not in self._encoded:
      self._encoded[split] = self.preprocessor.encode_source(self.raw(split))
    return self._encoded[split]

  # --- preprocessing ----------------------------------------------------------
  def ops(self, spec: str):
    context = {}
    if self.data.tokenizer:
      context["tokenizer"] = self.tokenizer
    if self.data.format == "interactions":
      context["recsys"] = self.recsys
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
    if self.data.format == "tabular":
      # One embedding table per categorical column, sized by the vocabularies
      # fitted on the training split.
      return {"cardinalities": self.preprocessor.cardinalities}
    if self.data.format != "interactions":
      return {}
    r = self.recsys
    return {
      "num_users": r.num_users,
      "num_items": r.num_items,
      "item_genres": r.item_genres,
      "item_year": r.item_year,
      "user_genres": r.user_genres(),
      "rating_mean": float(r.train["rating"].mean()),
    }

  # --- sources the pipeline consumes -----------------------------------------
  def train_source(self):
    if self.data.format == "lm_windows":
      return LMWindows(
        self.token_stream(self.data.train_split),
        self.data.block_size,
        "random",
        name=f"{self.data.name}:{self.data.train_split}",
      )
    if self.data.format == "tabular":
      if self.data.extra_train_splits:
        raise ValueError("config.data.format='tabular' takes no extra_train_splits.")
      return self._encoded_source(self.data.train_split)
    return self._raw_train()

  def eval_source(self, split: str, eval_config: Mapping[str, Any], *, round_index: int = 0):
    """The source an evaluator iterates over once per evaluation.

    For 'lm_windows' the eval config's `windows` says 'contiguous' (exact,
    every token once) or 'random' (`num_batches` x eval batch random windows,
    redrawn at every evaluation round from seed + round).
    """
    if self.data.format == "tabular":
      return self._encoded_source(split)
    if self.data.format != "lm_windows":
      return self.raw(split)
    windows = eval_config.get("windows", "contiguous")
    tokens = self.token_stream(split)
    if windows == "contiguous":
      return LMWindows(tokens, self.data.block_size, "contiguous", name=f"{self.data.name}:{split}")
    if windows != "random":
      raise ValueError(f"eval windows must be 'contiguous' or 'random', got {windows!r}.")
    source = LMWindows(tokens, self.data.block_size, "random", name=f"{self.data.name}:{split}")
    count = int(eval_config.get("num_batches", 20)) * self.config.eval_batch_size
    rng = np.random.default_rng([self.config.seed, round_index])
    return IndexedSource(source, rng.integers(0, len(source), count))

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
