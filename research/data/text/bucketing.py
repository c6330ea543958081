"""Length bucketing: batches of examples of similar length, so little of each batch is padding.

`bucket_batches` turns per-example lengths into a list of index batches, each
drawn from one length bucket; a pipeline pads every batch only to its bucket's
length. With grain (one epoch; reshuffle by passing a per-epoch seed):

    lengths = np.array([len(tok.encode(source[i]['text'])) + 1 for i in range(len(source))])
    batches = bucket_batches(lengths, batch_size=32, bucket_boundaries=(64, 128, 256), seed=epoch)
    tokenize = ops.parse("tokenize(add_cls=True)", context={'tokenizer': tok})
    pads = {b: ops.parse(f"truncate_pad({b})") for b in (64, 128, 256)}

    def load_batch(b):                            # b indexes `batches`
      idx = batches[b]
      length = bucket_length(lengths[idx].max(), (64, 128, 256))
      examples = [ops.apply(tokenize + pads[length], source[i], None) for i in idx]
      return {k: np.stack([e[k] for e in examples]) for k in examples[0] if k != 'text'}

    ds = grain.MapDataset.range(len(batches)).map(load_batch)   # already batched

Batch shapes then vary (one per bucket), so a jit-compiled step compiles once
per bucket length: keep the boundaries few. With several processes, compute
`batches` on every process with the same seed and global batch size, and let
process p take rows `[p*b:(p+1)*b]` of each batch (b = per-process batch), so
all processes step through the same bucket lengths together.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _check_boundaries(bucket_boundaries: Sequence[int] | np.ndarray) -> np.ndarray:
  b = np.asarray(bucket_boundaries)
  if (
    b.ndim != 1
    or not len(b)
    or not np.issubdtype(b.dtype, np.integer)
    or b.min() < 1
    or np.any(np.diff(b) <= 0)
  ):
    raise ValueError(
      f"bucket_boundaries must be a non-empty, strictly increasing sequence of "
      f"positive ints (the maximum length of each bucket), got "
      f"{list(bucket_boundaries)!r}."
    )
  return b


def bucket_of(
  lengths: Sequence[int] | np.ndarray, bucket_boundaries: Sequence[int] | np.ndarray
) -> np.ndarray:
  """Bucket index of each length: the first j with `length <= bucket_boundaries[j]`.

  Lengths above the last boundary go to the last bucket (the pipeline
  truncates them to it). Returns int64 `[n]`.
  """
  b = _check_boundaries(bucket_boundaries)
  lengths = np.asarray(lengths)
  return np.minimum(np.searchsorted(b, lengths, side="left"), len(b) - 1)


def bucket_length(length: int, bucket_boundaries: Sequence[int]) -> int:
  """The padded length of the bucket `length` falls in (its boundary)."""
  b = _check_boundaries(bucket_boundaries)
  return int(b[bucket_of([length], b)[0]])


def bucket_batches(
  lengths: Sequence[int] | np.ndarray,
  batch_size: int,
  bucket_boundaries: Sequence[int],
  seed: int,
  *,
  drop_remainder: bool = True,
) -> list[np.ndarray]:
  """Shuffled batches of example indices, every batch from one length bucket.

  Each bucket's indices are shuffled and cut into batches of `batch_size`;
  then the batches of all buckets are shuffled together, so the order of
  bucket lengths is random too. Deterministic given `seed` (use a new seed
  per epoch to reshuffle).

  Args:
    lengths: int `[n]`, the length of each example (e.g. its token count).
    batch_size: examples per batch.
    bucket_boundaries: increasing maximum lengths, e.g. `(64, 128, 256)`:
      buckets hold lengths <= 64, 65..128 and > 128 (see `bucket_of`).
    seed: shuffling seed.
    drop_remainder: drop each bucket's last partial batch (default), so every
      batch has `batch_size` examples; else keep it (smaller).
  Returns:
    A list of int64 index arrays `[batch_size]` (or smaller, see
    `drop_remainder`).
  """
  if (
    not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1
  ):
    raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
  lengths = np.asarray(lengths)
  if lengths.ndim != 1:
    raise ValueError(f"lengths must be 1-D [n], got shape {lengths.shape}.")
  buckets = bucket_of(lengths, bucket_boundaries)
  rng = np.random.default_rng(seed)
  batches: list[np.ndarray] = []
  for j in range(len(bucket_boundaries)):
    members = rng.permutation(np.flatnonzero(buckets == j))
    stop = (len(members) // batch_size) * batch_size if drop_remainder else len(members)
    batches.extend(members[k : k + batch_size] for k in range(0, stop, batch_size))
  return [batches[i] for i in rng.permutation(len(batches))]
