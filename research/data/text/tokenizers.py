"""Tokenizers: characters (nanoGPT's shakespeare_char) and SentencePiece subwords.

A tokenizer is trained on the training split only, saved beside the run and
reloaded from there, so a resumed run, `tools.evaluate` and text generation all
use exactly the ids the model was trained with:

    tok = get_or_train_tokenizer({'type': 'sentencepiece', 'vocab_size': 8000},
                                 lambda: (ex['text'] for ex in train_source),
                                 os.path.join(workdir, 'tokenizer'))
    ids = tok.encode('Hello there')      # list[int]
    text = tok.decode(ids)

Common interface (`Tokenizer`): `encode(text) -> list[int]`, `decode(ids) ->
str`, `vocab_size`, the special ids `pad_id`, `unk_id`, `bos_id` (= `cls_id`),
`eos_id` (= `sep_id`), `mask_id` (None where the tokenizer has none),
`special_ids` (a frozenset of those that exist), `spec` (the resolved spec it
was built from), `save(directory)`. `load_tokenizer(directory)` reads any saved
tokenizer back.

On disk a tokenizer is a directory holding `tokenizer.json` (type and resolved
spec; for 'char' also the vocabulary) plus, for SentencePiece,
`sentencepiece.model`.
"""

from __future__ import annotations

import abc
import heapq
import json
import os
import random
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

from research.data.text.sources import as_text

SPEC_FILE = "tokenizer.json"
SPM_FILE = "sentencepiece.model"


class Tokenizer(abc.ABC):
  """What every tokenizer offers; see the module docstring.

  Special ids are None unless a subclass sets them.
  """

  type: str = ""
  pad_id: int | None = None
  unk_id: int | None = None
  bos_id: int | None = None
  eos_id: int | None = None
  mask_id: int | None = None

  @property
  def cls_id(self) -> int | None:
    """BERT's [CLS]: the same id as `bos_id`."""
    return self.bos_id

  @property
  def sep_id(self) -> int | None:
    """BERT's [SEP]: the same id as `eos_id`."""
    return self.eos_id

  @property
  def special_ids(self) -> frozenset[int]:
    """The ids that are not text (pad, unk, bos/cls, eos/sep, mask) that this tokenizer has."""
    ids = (self.pad_id, self.unk_id, self.bos_id, self.eos_id, self.mask_id)
    return frozenset(i for i in ids if i is not None)

  @property
  @abc.abstractmethod
  def vocab_size(self) -> int:
    """Number of ids: every id is in `[0, vocab_size)`."""

  @property
  @abc.abstractmethod
  def spec(self) -> dict[str, Any]:
    """The resolved spec (type plus every option, defaults filled in), JSON-serialisable."""

  @abc.abstractmethod
  def encode(self, text: str) -> list[int]:
    """`text` -> ids (no bos/eos added; the `tokenize` op adds them)."""

  @abc.abstractmethod
  def decode(self, ids: Iterable[int]) -> str:
    """ids -> text. Raises ValueError for an id outside `[0, vocab_size)`."""

  @abc.abstractmethod
  def _write(self, directory: str) -> dict[str, Any]:
    """Writes model files into `directory`; returns extra fields for `tokenizer.json`."""

  @classmethod
  @abc.abstractmethod
  def from_saved(cls, directory: str, meta: Mapping[str, Any]) -> Tokenizer:
    """Inverse of `_write`, given the parsed `tokenizer.json`."""

  @classmethod
  @abc.abstractmethod
  def train(cls, texts: Iterable[str], **options: Any) -> Tokenizer:
    """A new tokenizer trained on `texts` (the training split only)."""

  @classmethod
  @abc.abstractmethod
  def resolve_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
    """`options` with defaults filled in; ValueError naming a bad or unknown option."""

  def save(self, directory: str) -> None:
    """Writes the tokenizer into `directory` (created; must not hold another tokenizer)."""
    if os.path.exists(os.path.join(directory, SPEC_FILE)):
      raise ValueError(
        f"{directory} already holds a tokenizer ({SPEC_FILE}); refusing to "
        "overwrite it. Delete the directory first to replace it."
      )
    os.makedirs(directory, exist_ok=True)
    meta = {"spec": self.spec, **self._write(directory)}
    # tokenizer.json last: its presence marks a complete tokenizer directory.
    _write_json(os.path.join(directory, SPEC_FILE), meta)

  def _check_ids(self, ids: Iterable[int]) -> list[int]:
    out = [int(i) for i in ids]
    bad = [i for i in out if not 0 <= i < self.vocab_size]
    if bad:
      raise ValueError(
        f"{type(self).__name__}.decode: id {bad[0]} is outside the vocabulary "
        f"[0, {self.vocab_size})."
      )
    return out

  def __repr__(self) -> str:
    return f"{type(self).__name__}(vocab_size={self.vocab_size}, spec={self.spec})"


def _write_json(path: str, obj: Any) -> None:
  with open(path, "w", encoding="utf-8") as f:
    json.dump(obj, f, indent=1, ensure_ascii=False)
    f.write("\n")


def _check_no_options(cls_name: str, options: Mapping[str, Any], valid: Sequence[str]) -> None:
  unknown = sorted(set(options) - set(valid))
  if unknown:
    raise ValueError(
      f"Tokenizer {cls_name!r} takes no option(s) {unknown}; valid options: {list(valid)}."
    )


# --- characters ----------------------------------------------------------------


class CharTokenizer(Tokenizer):
  """One id per character: ids index the sorted characters of the training text.

  Exactly nanoGPT's `data/shakespeare_char/prepare.py` (`chars =
  sorted(set(text))`; 65 characters for tiny shakespeare, '\\n' = 0, ' ' = 1).
  No special tokens (all special ids are None). A character that was not in
  the training text cannot be encoded: `encode` raises ValueError.

  Args:
    chars: the vocabulary, sorted, without duplicates; id i is `chars[i]`.
  """

  type = "char"
  OPTIONS: tuple[str, ...] = ()

  def __init__(self, chars: Sequence[str]):
    chars = list(chars)
    if not chars or any(not isinstance(c, str) or len(c) != 1 for c in chars):
      raise ValueError("CharTokenizer: chars must be a non-empty list of single characters.")
    if chars != sorted(set(chars)):
      raise ValueError(
        "CharTokenizer: chars must be sorted and free of duplicates (ids are "
        "positions in the sorted character set)."
      )
    self.chars = chars
    self._ids = {c: i for i, c in enumerate(chars)}

  @classmethod
  def resolve_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
    _check_no_options(cls.type, options, cls.OPTIONS)
    return {}

  @classmethod
  def train(cls, texts: Iterable[str], **options: Any) -> CharTokenizer:
    """The sorted set of characters in `texts`. Raises ValueError if there are none."""
    cls.resolve_options(options)
    chars: set[str] = set()
    for text in texts:
      chars.update(as_text(text))
    if not chars:
      raise ValueError(
        "CharTokenizer.train: the training texts are empty; nothing to build a vocabulary from."
      )
    return cls(sorted(chars))

  @property
  def vocab_size(self) -> int:
    return len(self.chars)

  @property
  def spec(self) -> dict[str, Any]:
    return {"type": self.type}

  def encode(self, text: str) -> list[int]:
    ids = self._ids
    try:
      return [ids[c] for c in text]
    except KeyError:
      pos = next(i for i, c in enumerate(text) if c not in ids)
      c = text[pos]
      raise ValueError(
        f"CharTokenizer.encode: character {c!r} (U+{ord(c):04X}) at position {pos} is not in "
        f"the {self.vocab_size}-character vocabulary built from the training text. Remove or "
        "replace it, or retrain the tokenizer on text that contains it."
      ) from None

  def decode(self, ids: Iterable[int]) -> str:
    chars = self.chars
    return "".join(chars[i] for i in self._check_ids(ids))

  def _write(self, directory: str) -> dict[str, Any]:
    del directory
    return {"chars": self.chars}

  @classmethod
  def from_saved(cls, directory: str, meta: Mapping[str, Any]) -> CharTokenizer:
    if "chars" not in meta:
      raise ValueError(
        f"{os.path.join(directory, SPEC_FILE)}: no 'chars' list; the file is "
        "damaged. Delete the directory to retrain the tokenizer."
      )
    return cls(meta["chars"])


# --- SentencePiece -------------------------------------------------------------


class SentencePieceTokenizer(Tokenizer):
  """SentencePiece subwords with fixed special ids.

  pad=0 '<pad>', unk=1 '<unk>', bos/cls=2 '<s>', eos/sep=3 '</s>', mask=4
  '<mask>'; text pieces start at 5. '<mask>' is a control symbol: it is only
  ever produced by id (the `mlm_mask` op), never by encoding the text
  "<mask>", and, like the other specials, decodes to ''.

  Normalisation ('nmt_nfkc' by default) folds unicode variants and collapses
  runs of whitespace, newlines included, into one space; use the char
  tokenizer where text must round-trip exactly.

  Options (`train(texts, **options)`, or the spec):
    vocab_size: total ids including the 5 specials (default 8000).
    model_type: 'unigram' (default) or 'bpe'.
    character_coverage: fraction of characters covered (default 1.0; rarer
      ones become unk).
    max_sentences: at most this many training lines, a seeded uniform sample
      (default 1_000_000) — the cap that keeps training fast on large corpora.
    byte_fallback: encode unknown characters as UTF-8 byte pieces instead of
      unk (default False; needs vocab_size > 261).
    normalization: 'nmt_nfkc' (default), 'nfkc', 'identity', ...
    seed: seed of the line sample (default 0).
    num_threads: trainer threads (default 4). Fixed, not the machine's core
      count: the trained model depends on it, and every host must get the same.
  """

  type = "sentencepiece"
  PAD, UNK, BOS, EOS, MASK = 0, 1, 2, 3, 4
  DEFAULTS: ClassVar[dict[str, Any]] = {
    "vocab_size": 8000,
    "model_type": "unigram",
    "character_coverage": 1.0,
    "max_sentences": 1_000_000,
    "byte_fallback": False,
    "normalization": "nmt_nfkc",
    "seed": 0,
    "num_threads": 4,
  }
  # Lines longer than this many bytes are dropped by the trainer (its default,
  # 4192, would drop most IMDb reviews).
  MAX_SENTENCE_BYTES = 1 << 16

  pad_id = PAD
  unk_id = UNK
  bos_id = BOS
  eos_id = EOS
  mask_id = MASK

  def __init__(self, model_proto: bytes, options: Mapping[str, Any] | None = None):
    import sentencepiece as spm

    self._proto = bytes(model_proto)
    self._options = self.resolve_options(options or {})
    self._sp = spm.SentencePieceProcessor(model_proto=self._proto)
    got = {
      "pad": self._sp.pad_id(),
      "unk": self._sp.unk_id(),
      "bos": self._sp.bos_id(),
      "eos": self._sp.eos_id(),
      "mask": self._sp.piece_to_id("<mask>"),
    }
    want = {"pad": self.PAD, "unk": self.UNK, "bos": self.BOS, "eos": self.EOS, "mask": self.MASK}
    if got != want:
      raise ValueError(
        f"SentencePieceTokenizer: model has special ids {got}, expected {want}; "
        "it was not trained by this class. Retrain it with "
        "SentencePieceTokenizer.train."
      )

  @classmethod
  def resolve_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
    _check_no_options(cls.type, options, tuple(cls.DEFAULTS))
    o = {**cls.DEFAULTS, **options}

    def is_int(v):
      return isinstance(v, int) and not isinstance(v, bool)

    if not is_int(o["vocab_size"]) or o["vocab_size"] < 8:
      raise ValueError(
        f"sentencepiece: vocab_size must be an int >= 8 (5 special ids plus "
        f"text pieces), got {o['vocab_size']!r}."
      )
    if o["model_type"] not in ("unigram", "bpe"):
      raise ValueError(
        f"sentencepiece: model_type must be 'unigram' or 'bpe', got {o['model_type']!r}."
      )
    cov = o["character_coverage"]
    if not isinstance(cov, (int, float)) or isinstance(cov, bool) or not 0 < cov <= 1:
      raise ValueError(f"sentencepiece: character_coverage must be in (0, 1], got {cov!r}.")
    for key in ("max_sentences", "num_threads"):
      if not is_int(o[key]) or o[key] < 1:
        raise ValueError(f"sentencepiece: {key} must be a positive int, got {o[key]!r}.")
    if not is_int(o["seed"]) or o["seed"] < 0:
      raise ValueError(f"sentencepiece: seed must be a non-negative int, got {o['seed']!r}.")
    if not isinstance(o["byte_fallback"], bool):
      raise ValueError(
        f"sentencepiece: byte_fallback must be True or False, got {o['byte_fallback']!r}."
      )
    if o["byte_fallback"] and o["vocab_size"] <= 5 + 256:
      raise ValueError(
        f"sentencepiece: byte_fallback adds 256 byte pieces; vocab_size "
        f"{o['vocab_size']} must be > 261."
      )
    if not isinstance(o["normalization"], str):
      raise ValueError(
        f"sentencepiece: normalization must be a rule name such as 'nmt_nfkc' or "
        f"'identity', got {o['normalization']!r}."
      )
    o["character_coverage"] = float(cov)
    return o

  @classmethod
  def train(cls, texts: Iterable[str], **options: Any) -> SentencePieceTokenizer:
    """Trains on the non-empty lines of `texts` (at most `max_sentences`, sampled).

    Raises:
      ValueError: bad options, no text, or a vocab_size the corpus cannot fill
        (the message gives the largest size that works).
    """
    import io

    import sentencepiece as spm

    o = cls.resolve_options(options)
    lines = _sample_lines(texts, o["max_sentences"], o["seed"])
    if not lines:
      raise ValueError(
        "SentencePieceTokenizer.train: the training texts have no non-empty "
        "lines; nothing to train on."
      )
    model = io.BytesIO()
    try:
      spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        vocab_size=o["vocab_size"],
        model_type=o["model_type"],
        character_coverage=o["character_coverage"],
        byte_fallback=o["byte_fallback"],
        normalization_rule_name=o["normalization"],
        num_threads=o["num_threads"],
        pad_id=cls.PAD,
        unk_id=cls.UNK,
        bos_id=cls.BOS,
        eos_id=cls.EOS,
        control_symbols=["<mask>"],  # first id after the four above: 4
        max_sentence_length=cls.MAX_SENTENCE_BYTES,
        # The sample is ours (seeded); the trainer's own would not be reproducible.
        input_sentence_size=0,
        shuffle_input_sentence=False,
        minloglevel=2,
      )
    except RuntimeError as e:
      msg = " ".join(str(e).split())
      if "Vocabulary size" in msg:
        raise ValueError(
          f"SentencePieceTokenizer.train: vocab_size={o['vocab_size']} is too "
          f"large for this corpus ({msg}). Lower vocab_size."
        ) from None
      raise ValueError(f"SentencePieceTokenizer.train failed: {msg}") from None
    return cls(model.getvalue(), o)

  @property
  def vocab_size(self) -> int:
    return self._sp.get_piece_size()

  @property
  def spec(self) -> dict[str, Any]:
    return {"type": self.type, **self._options}

  def id_to_piece(self, i: int) -> str:
    """The piece string of id `i` (e.g. '▁the'); for inspection."""
    return self._sp.id_to_piece(self._check_ids([i])[0])

  def encode(self, text: str) -> list[int]:
    return self._sp.encode(as_text(text), out_type=int)

  def decode(self, ids: Iterable[int]) -> str:
    return self._sp.decode(self._check_ids(ids))

  def _write(self, directory: str) -> dict[str, Any]:
    with open(os.path.join(directory, SPM_FILE), "wb") as f:
      f.write(self._proto)
    return {"model_file": SPM_FILE}

  @classmethod
  def from_saved(cls, directory: str, meta: Mapping[str, Any]) -> SentencePieceTokenizer:
    path = os.path.join(directory, meta.get("model_file", SPM_FILE))
    try:
      with open(path, "rb") as f:
        proto = f.read()
    except FileNotFoundError:
      raise FileNotFoundError(
        f"{path} is missing but {SPEC_FILE} names it; the tokenizer "
        "directory is incomplete. Delete it to retrain."
      ) from None
    options = {k: v for k, v in meta["spec"].items() if k != "type"}
    try:
      return cls(proto, options)
    except RuntimeError as e:  # sentencepiece's error for a damaged model
      raise ValueError(
        f"{path}: not a readable SentencePiece model ({e}). Delete the directory to retrain."
      ) from None

  # Picklable (grain may copy ops into worker processes) via the model bytes.
  def __getstate__(self):
    return {"proto": self._proto, "options": self._options}

  def __setstate__(self, state):
    SentencePieceTokenizer.__init__(self, state["proto"], state["options"])


def _sample_lines(texts: Iterable[str], k: int, seed: int) -> list[str]:
  """The non-empty stripped lines of `texts`: all of them, or a seeded uniform sample of `k`.

  Reservoir sampling (priority = seeded random key), so memory stays O(k)
  however large the corpus; the sample is returned in corpus order.
  """
  rng = random.Random(seed)
  heap: list[tuple[float, int, str]] = []  # min-heap of (key, position, line); keep k largest
  position = 0
  for text in texts:
    for line in as_text(text).splitlines():
      line = line.strip()
      if not line:
        continue
      item = (rng.random(), position, line)
      position += 1
      if len(heap) < k:
        heapq.heappush(heap, item)
      elif item[0] > heap[0][0]:
        heapq.heapreplace(heap, item)
  return [line for _, _, line in sorted(heap, key=lambda t: t[1])]


# --- registry, loading, get-or-train -------------------------------------------------


TOKENIZERS: dict[str, type[Tokenizer]] = {
  CharTokenizer.type: CharTokenizer,
  SentencePieceTokenizer.type: SentencePieceTokenizer,
}


def _split_spec(spec: object) -> tuple[type[Tokenizer], dict[str, Any]]:
  if not isinstance(spec, Mapping) or "type" not in spec:
    raise ValueError(
      f"A tokenizer spec is a mapping with a 'type' ({sorted(TOKENIZERS)}), e.g. "
      f"{{'type': 'char'}}; got {spec!r}."
    )
  kind = spec["type"]
  if kind not in TOKENIZERS:
    raise ValueError(f"Unknown tokenizer type {kind!r}; valid types: {sorted(TOKENIZERS)}.")
  return TOKENIZERS[kind], {k: v for k, v in spec.items() if k != "type"}


def check_tokenizer_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
  """Validates a tokenizer spec without training (config-load time).

  Returns:
    The resolved spec: type plus every option with defaults filled in.
  Raises:
    ValueError: no/unknown type, unknown option or bad value (named).
  """
  cls, options = _split_spec(spec)
  return {"type": cls.type, **cls.resolve_options(options)}


def load_tokenizer(directory: str) -> Tokenizer:
  """The tokenizer saved in `directory` (by `Tokenizer.save` / `get_or_train_tokenizer`).

  Raises:
    FileNotFoundError: no `tokenizer.json` in `directory`.
    ValueError: a damaged or unknown tokenizer file.
  """
  path = os.path.join(directory, SPEC_FILE)
  try:
    with open(path, encoding="utf-8") as f:
      meta = json.load(f)
  except FileNotFoundError:
    raise FileNotFoundError(
      f"No tokenizer in {directory}: {SPEC_FILE} is missing. Train one "
      "with get_or_train_tokenizer (or Tokenizer.save)."
    ) from None
  except json.JSONDecodeError as e:
    raise ValueError(
      f"{path}: not valid JSON ({e}); the file is damaged. Delete the directory "
      "to retrain the tokenizer."
    ) from None
  spec = meta.get("spec") if isinstance(meta, dict) else None
  try:
    cls, _ = _split_spec(spec)
  except ValueError as e:
    raise ValueError(f"{path}: {e}") from None
  return cls.from_saved(directory, meta)


def get_or_train_tokenizer(
  spec: Mapping[str, Any], train_texts_fn: Callable[[], Iterable[str]], directory: str
) -> Tokenizer:
  """The tokenizer in `directory` if one is saved there, else a new one trained and saved.

  Training writes into a temporary sibling directory that is renamed to
  `directory` in one step, so a crash never leaves a half-written tokenizer
  and concurrent callers (several processes of one run) all end up loading
  the same files: whoever renames first wins, the others load its result.

  Args:
    spec: `{'type': 'char'}`, `{'type': 'sentencepiece', 'vocab_size': 8000, ...}`.
    train_texts_fn: returns the training texts; called only when training.
    directory: where the tokenizer lives (e.g. `<workdir>/tokenizer`).
  Returns:
    The tokenizer, always as loaded from `directory`.
  Raises:
    ValueError: bad spec; the saved tokenizer was built from a different spec
      (the message shows both); `directory` holds other files.
  """
  want = check_tokenizer_spec(spec)
  directory = os.path.abspath(directory)
  if not os.path.exists(os.path.join(directory, SPEC_FILE)):
    if os.path.isdir(directory) and os.listdir(directory):
      raise ValueError(
        f"{directory} holds files but no {SPEC_FILE}, so it is not a saved "
        "tokenizer; choose another directory or empty it."
      )
    cls, options = _split_spec(want)
    tokenizer = cls.train(train_texts_fn(), **options)
    parent = os.path.dirname(directory)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(directory)}.tmp-", dir=parent)
    try:
      os.chmod(tmp, 0o755)  # mkdtemp's 0700 would hide the tokenizer from other users
      tokenizer.save(tmp)
      if os.path.isdir(directory) and not os.listdir(directory):
        os.rmdir(directory)  # an empty placeholder: replace it
      os.rename(tmp, directory)
    except OSError:
      # Another process got there first (rename onto a non-empty directory fails).
      if not os.path.exists(os.path.join(directory, SPEC_FILE)):
        raise
    finally:
      if os.path.isdir(tmp):
        shutil.rmtree(tmp, ignore_errors=True)
  tokenizer = load_tokenizer(directory)
  if tokenizer.spec != want:
    raise ValueError(
      f"The tokenizer saved in {directory} was built from spec {tokenizer.spec}, "
      f"but {want} was asked for. Use the spec it was trained with (a resumed run "
      "must keep its ids), or delete the directory to retrain."
    )
  return tokenizer
