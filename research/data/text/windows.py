"""Next-token windows over a token stream, and document packing, as `DataSource`s.

    tokens = LMWindows.tokens_from_text(train_source.text, tokenizer)   # int32 [N]
    train = LMWindows(tokens, block_size=256, mode="random")
    val = LMWindows(val_tokens, block_size=256, mode="contiguous")

'random' (training): every start position is one example, so the pipeline's
seeded shuffle draws nanoGPT's random windows (`torch.randint(len(data) -
block_size)`), without replacement within an epoch and resumable.
'contiguous' (evaluation): non-overlapping windows whose targets cover every
token after the first exactly once; the last window is padded and carries
`weights` 0 there, so a weighted mean over the eval pass is the exact
per-token loss of the split.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from research.data.core import ArraySource, Feature

MODES = ("random", "contiguous")


def _check_block_size(block_size: int) -> int:
  if (
    not isinstance(block_size, (int, np.integer)) or isinstance(block_size, bool) or block_size < 1
  ):
    raise ValueError(f"block_size must be a positive int, got {block_size!r}.")
  return int(block_size)


def _as_tokens(tokens: Sequence[int] | np.ndarray, what: str) -> np.ndarray:
  """`tokens` as a 1-D int32 array (read-only view); ValueError otherwise."""
  array = np.asarray(tokens)
  if array.ndim != 1:
    raise ValueError(f"{what}: tokens must be 1-D [N], got shape {array.shape}.")
  if array.size and not np.issubdtype(array.dtype, np.integer):
    raise ValueError(f"{what}: tokens must be integer ids, got dtype {array.dtype}.")
  if array.size and (array.min() < 0 or array.max() > np.iinfo(np.int32).max):
    raise ValueError(
      f"{what}: token ids must be in [0, 2**31), got range [{array.min()}, {array.max()}]."
    )
  array = array.astype(np.int32)
  array.flags.writeable = False  # examples are views of it; nobody may change them
  return array


class LMWindows:
  """Windows of a token stream: `{'inputs': int32 [T], 'targets': int32 [T]}` (+ `weights`).

  Args:
    tokens: int `[N]`, the whole split's token stream.
    block_size: T, the context length.
    mode: 'random': `N - T` examples, example i is `inputs = tokens[i:i+T]`,
      `targets = tokens[i+1:i+T+1]`. 'contiguous': `ceil((N - 1) / T)`
      examples, example k is window `[k*T, k*T + T)` of the `N - 1` (input,
      target) pairs, the last one padded with `pad_id`, plus `weights`
      float32 `[T]` (1 on real targets, 0 on padding).
    pad_id: input/target id on padding (any valid id; its weight is 0).
    name: shown in errors and `repr`.
  """

  def __init__(
    self,
    tokens: Sequence[int] | np.ndarray,
    block_size: int,
    mode: str = "random",
    *,
    pad_id: int = 0,
    name: str = "lm_windows",
  ):
    self.block_size = _check_block_size(block_size)
    if mode not in MODES:
      raise ValueError(f"{name}: mode must be one of {MODES}, got {mode!r}.")
    self.tokens = _as_tokens(tokens, name)
    self.mode, self.pad_id, self.name = mode, int(pad_id), name
    n, t = len(self.tokens), self.block_size
    if mode == "random":
      if n <= t:
        raise ValueError(
          f"{name}: {n} tokens are too few for block_size {t} in 'random' "
          f"mode (need at least {t + 1}); lower block_size."
        )
      self._len = n - t
    else:
      if n < 2:
        raise ValueError(f"{name}: {n} tokens give no (input, target) pair; need at least 2.")
      self._len = math.ceil((n - 1) / t)
    self.features = {"inputs": Feature((t,), "int32"), "targets": Feature((t,), "int32")}
    if mode == "contiguous":
      self.features["weights"] = Feature((t,), "float32")

  @staticmethod
  def tokens_from_text(text: str, tokenizer) -> np.ndarray:
    """`tokenizer.encode(text)` as int32 `[N]` (the stream `LMWindows` takes)."""
    return np.asarray(tokenizer.encode(text), np.int32)

  @property
  def num_targets(self) -> int:
    """Real (weight 1) targets in one pass: `N - 1` in 'contiguous' mode, `len * T` in 'random'."""
    if self.mode == "contiguous":
      return len(self.tokens) - 1
    return self._len * self.block_size

  def __len__(self) -> int:
    return self._len

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    if not -self._len <= index < self._len:
      raise IndexError(f"{self.name}: index {index} out of range for {self._len} windows.")
    i, t = int(index) % self._len, self.block_size
    if self.mode == "random":
      return {"inputs": self.tokens[i : i + t], "targets": self.tokens[i + 1 : i + t + 1]}
    start = i * t
    inputs = self.tokens[start : start + t]
    targets = self.tokens[start + 1 : start + t + 1]
    real = len(targets)  # < t only in the last window
    weights = np.zeros(t, np.float32)
    weights[:real] = 1.0
    if real < t:
      inputs = np.concatenate([inputs[:real], np.full(t - real, self.pad_id, np.int32)])
      targets = np.concatenate([targets, np.full(t - real, self.pad_id, np.int32)])
    return {"inputs": inputs, "targets": targets, "weights": weights}

  def get_batch(self, indices) -> dict[str, np.ndarray]:
    """The windows at int `indices` `[b]`, stacked: int32 `[b, T]` each (+ `weights`).

    Equal to stacking `self[i]`, but one vectorised gather from the token
    stream instead of `b` Python slices.
    """
    indices = np.asarray(indices)
    if indices.ndim != 1 or (indices.size and not np.issubdtype(indices.dtype, np.integer)):
      raise IndexError(
        f"{self.name}: get_batch needs 1-D integer indices, got shape "
        f"{indices.shape} dtype {indices.dtype}."
      )
    if indices.size and not (-self._len <= indices.min() and indices.max() < self._len):
      bad = indices[(indices < -self._len) | (indices >= self._len)][0]
      raise IndexError(f"{self.name}: index {bad} out of range for {self._len} windows.")
    t = self.block_size
    i = indices.astype(np.int64) % self._len
    if self.mode == "random":
      positions = i[:, None] + np.arange(t)  # [b, T]; +1 stays < N since i < N - T
      return {"inputs": self.tokens[positions], "targets": self.tokens[positions + 1]}
    positions = (i * t)[:, None] + np.arange(t)  # [b, T]
    # Input position p is real iff its target p + 1 exists (only the last window pads).
    real = positions + 1 < len(self.tokens)
    safe = np.where(real, positions, 0)
    pad = np.int32(self.pad_id)
    return {
      "inputs": np.where(real, self.tokens[safe], pad),
      "targets": np.where(real, self.tokens[safe + real], pad),
      "weights": real.astype(np.float32),
    }

  def __repr__(self) -> str:
    return (
      f"LMWindows({self.name!r}, mode={self.mode!r}, tokens={len(self.tokens)}, "
      f"block_size={self.block_size}, n={self._len})"
    )


def stream_documents(documents: Iterable[Sequence[int] | np.ndarray], eos_id: int) -> np.ndarray:
  """One int32 stream `[sum(len(d) + 1)]`: each document followed by `eos_id`.

  Feed it to `LMWindows` (windows then cross document boundaries, as in
  GPT-2 style training; the eos tells the model where a document ended).
  """
  parts = []
  for d in documents:
    parts.append(np.asarray(d, np.int64).reshape(-1))
    parts.append(np.array([eos_id], np.int64))
  if not parts:
    return np.zeros(0, np.int32)
  return _as_tokens(np.concatenate(parts), "stream_documents").copy()


def pack_documents(
  documents: Iterable[Sequence[int]], block_size: int, eos_id: int, *, pad_id: int = 0
) -> ArraySource:
  """Packs documents end to end into rows of `block_size` next-token pairs.

  The stream is `stream_documents(documents, eos_id)` (each document then
  eos); it is cut into consecutive non-overlapping rows exactly like
  `LMWindows(..., 'contiguous')`, so every token after the first is a target
  exactly once, and the last row is padded.

  Returns:
    An `ArraySource` of R = ceil((M - 1) / T) examples (M = stream length):
    'inputs', 'targets' int32 `[T]`; 'weights' float32 `[T]` (0 on padding);
    'segment_ids' int32 `[T]`, 1 + the index of the document each input token
    belongs to (its eos included), 0 on padding: tokens may attend to each
    other only where the segment ids are equal, if documents must not see
    each other.
  """
  t = _check_block_size(block_size)
  docs = [np.asarray(d).reshape(-1) for d in documents]
  stream = stream_documents(docs, eos_id)
  if len(stream) < 2:
    raise ValueError("pack_documents: the documents give fewer than 2 tokens; nothing to pack.")
  segments = np.repeat(np.arange(1, len(docs) + 1, dtype=np.int32), [len(d) + 1 for d in docs])
  # Same layout as LMWindows 'contiguous', built for all rows at once.
  pairs = len(stream) - 1
  rows = math.ceil(pairs / t)

  def rows_of(values: np.ndarray, fill, dtype) -> np.ndarray:
    out = np.full(rows * t, fill, dtype)
    out[:pairs] = values
    return out.reshape(rows, t)

  return ArraySource(
    {
      "inputs": rows_of(stream[:-1], pad_id, np.int32),
      "targets": rows_of(stream[1:], pad_id, np.int32),
      "weights": rows_of(np.ones(pairs, np.float32), 0, np.float32),
      # The segment of each input position (the last token is never an input).
      "segment_ids": rows_of(segments[:-1], 0, np.int32),
    },
    name="pack_documents",
  )
