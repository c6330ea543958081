"""The one grain input pipeline: per-process sharding, shuffling, ops, batching.

Train: shard once -> seeded shuffle (reshuffled every epoch) -> repeat -> ops via
`random_map` (per-example rng from seed and position, so augmentation is
reproducible and resumable) -> per-process batches. Eval: every example exactly
once across processes, in fixed-size padded batches carrying a `mask`.

Batches are `dict[str, np.ndarray]` with leading dim `global_batch_size //
process_count` (the per-process batch).
"""
from __future__ import annotations

import math
from typing import Iterator, Sequence

import grain
import numpy as np

from research.data import ops as ops_lib
from research.data.core import DataSource

Op = ops_lib.Op


def num_eval_batches(num_examples: int, global_batch_size: int) -> int:
  """Eval batches per process: ceil(num_examples / global_batch_size) (last one padded)."""
  _check_positive(global_batch_size, "global_batch_size")
  return math.ceil(num_examples / global_batch_size)


def steps_per_epoch(num_examples: int, global_batch_size: int) -> int:
  """Train steps per epoch for the whole (global) data set, remainder dropped."""
  _check_positive(global_batch_size, "global_batch_size")
  return num_examples // global_batch_size


def _check_positive(value: int, name: str) -> None:
  if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
    raise ValueError(f"{name} must be a positive int, got {value!r}.")


def _resolve_shard(shard: tuple[int, int] | None) -> tuple[int, int]:
  """`(process_index, process_count)`; defaults to JAX's (imported only then)."""
  if shard is None:
    import jax  # pylint: disable=g-import-not-at-top
    shard = (jax.process_index(), jax.process_count())
  index, count = shard
  if not (isinstance(count, (int, np.integer)) and count >= 1 and 0 <= index < count):
    raise ValueError(f"shard must be (index, count) with 0 <= index < count, got {shard!r}.")
  return int(index), int(count)


def _per_process_batch(global_batch_size: int, count: int) -> int:
  _check_positive(global_batch_size, "global_batch_size")
  if global_batch_size % count:
    raise ValueError(f"global_batch_size={global_batch_size} is not divisible by the "
                     f"process count {count}.")
  return global_batch_size // count


class _ApplyOps:
  """`random_map` transform running the op list on one example with its rng."""

  def __init__(self, ops: Sequence[Op]):
    self._ops = list(ops)

  def __call__(self, example, rng):
    return ops_lib.apply(self._ops, example, rng)

  def __repr__(self) -> str:
    return f"ApplyOps({self._ops})"


def _derived_seed(seed: int, *words: int) -> int:
  """A 32-bit seed from (seed, *words); keeps streams of processes/stages apart."""
  return int(np.random.SeedSequence([seed, *words]).generate_state(1)[0])


def train_iterator(source: DataSource, *, global_batch_size: int, ops: Sequence[Op] = (),
                   seed: int, num_epochs: int | None = None,
                   shard: tuple[int, int] | None = None, num_threads: int = 1,
                   prefetch: int = 2) -> grain.DatasetIterator:
  """Infinite (or `num_epochs`) shuffled, augmented per-process training batches.

  Each process takes a strided, disjoint shard of `len(source) // count`
  examples (the at most `count - 1` left over are never used, so every process
  runs the same number of steps). Each epoch is reshuffled and truncated to
  whole batches (a different random remainder is dropped each epoch), so there
  are exactly `steps_per_epoch(len(source), global_batch_size)` batches per
  epoch, none straddling two epochs.

  Returns:
    A grain iterator of `{key: [global_batch_size // count, ...]}` batches;
    `get_state()` is JSON-serialisable and `set_state()` resumes exactly.
  """
  index, count = _resolve_shard(shard)
  batch = _per_process_batch(global_batch_size, count)
  if not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
    raise ValueError(f"seed must be an int in [0, 2**32), got {seed!r}.")
  if num_epochs is not None:
    _check_positive(num_epochs, "num_epochs")
  _check_positive(prefetch, "prefetch")
  if num_threads < 0:
    raise ValueError(f"num_threads must be >= 0, got {num_threads}.")
  shard_len = len(source) // count
  if batch > shard_len:
    raise ValueError(f"Per-process batch {batch} (global {global_batch_size} / {count} "
                     f"processes) is larger than this process's shard of {shard_len} examples "
                     f"({len(source)} in total).")
  ds = grain.MapDataset.source(source)[index:shard_len * count:count]
  # Shuffle then slice: grain maps an epoch-e index to the parent's epoch e, so
  # the repeat below reshuffles every epoch and the slice trims each epoch to
  # whole batches.
  ds = ds.shuffle(seed=_derived_seed(seed, index, 0))[:(shard_len // batch) * batch]
  ds = ds.repeat(num_epochs)
  if ops:
    # Position in the repeated stream picks the rng: new augmentation each epoch.
    ds = ds.random_map(_ApplyOps(ops), seed=_derived_seed(seed, index, 1))
  ds = ds.batch(batch, drop_remainder=True)
  read = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)
  return iter(ds.to_iter_dataset(read))


class _EvalExample:
  """Maps a position in this process's padded eval stream to a masked example."""

  def __init__(self, source: DataSource, ops: Sequence[Op], index: int, batch: int,
               global_batch_size: int, seed: int | None = None):
    self._source, self._ops = source, list(ops)
    self._index, self._batch, self._global = index, batch, global_batch_size
    self._n = len(source)
    self._seed = seed

  def __call__(self, position: int) -> dict[str, np.ndarray]:
    # Process p's k-th batch is slice [k*G + p*b, k*G + (p+1)*b) of the padded
    # global order, so all processes together cover 0..n-1 exactly once.
    k, t = divmod(position, self._batch)
    global_index = k * self._global + self._index * self._batch + t
    real = global_index < self._n
    # A seeded eval (e.g. MLM masks) draws from (seed, example index): the same
    # example gets the same randomness in every evaluation and on any process.
    rng = (None if self._seed is None
           else np.random.default_rng([self._seed, global_index if real else 0]))
    example = dict(ops_lib.apply(self._ops, self._source[global_index if real else 0], rng))
    if "mask" in example:
      raise ValueError("Eval examples may not have a 'mask' key; the pipeline adds it.")
    example["mask"] = np.bool_(real)
    return example


def eval_iterator(source: DataSource, *, global_batch_size: int, ops: Sequence[Op] = (),
                  shard: tuple[int, int] | None = None, num_threads: int = 1,
                  prefetch: int = 2, seed: int | None = None) -> Iterator[dict[str, np.ndarray]]:
  """One pass of padded eval batches; each example is counted once across processes.

  Random ops (e.g. MLM masking) are allowed only with a `seed`; they then draw
  from (seed, example index), so every evaluation sees the same randomness.

  Every process yields `num_eval_batches(len(source), global_batch_size)`
  batches of `global_batch_size // count` examples (same on every process, as
  multi-host collectives need). Padding repeats example 0 and has
  `batch['mask']` (np.bool_ `[b]`) False. Ops run with rng=None.
  """
  index, count = _resolve_shard(shard)
  batch = _per_process_batch(global_batch_size, count)
  random_ops = [op for op in ops if ops_lib.is_random(op)]
  if random_ops and seed is None:
    raise ValueError(f"Eval ops must be deterministic; random op(s) {random_ops} need an rng "
                     "(pass a seed for a fixed, reproducible draw).")
  if len(source) == 0:
    raise ValueError("Cannot evaluate on an empty source.")
  positions = num_eval_batches(len(source), global_batch_size) * batch
  ds = grain.MapDataset.range(positions).map(
      _EvalExample(source, ops, index, batch, global_batch_size, seed))
  ds = ds.batch(batch)
  read = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)
  return iter(ds.to_iter_dataset(read))
