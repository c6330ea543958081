"""Initialise part of a model from another run's checkpoint (transfer learning).

  config.init_from.workdir = 'runs/imdb_bert_pretrain'
  config.init_from.checkpoint = 'best'            # or 'latest', or a step
  config.init_from.mapping = (('encoder', 'encoder'),)   # source path -> target path

Paths are '/'-separated keys into the params tree (and into the mutable
collections, e.g. BatchNorm statistics, when the same path exists there).
Several source runs (NeuMF initialised from a GMF and an MLP run):

  config.init_from.sources = (
      dict(workdir='runs/gmf', checkpoint='best', mapping=(('gmf', 'gmf'), ...)),
      dict(workdir='runs/mlp', checkpoint='best', mapping=(('mlp', 'mlp'), ...)))

applied in order, after `workdir`'s mapping when that is set too.
Used only on a fresh start: once the run has its own checkpoint, resuming
restores that instead.
"""

from __future__ import annotations

import json
import os
import types
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from research.core import config as config_lib
from research.train import checkpoint as ckpt_lib


def _get(tree: Mapping, path: str, what: str):
  node = tree
  for key in filter(None, path.split("/")):
    if not isinstance(node, Mapping) or key not in node:
      valid = sorted(node) if isinstance(node, Mapping) else []
      raise KeyError(f"init_from: {what} has no {path!r} (no key {key!r}; keys there: {valid}).")
    node = node[key]
  return node


def _set(tree: dict, path: str, value) -> dict:
  keys = [k for k in path.split("/") if k]
  if not keys:
    return value
  out = dict(tree)
  out[keys[0]] = _set(dict(tree[keys[0]]), "/".join(keys[1:]), value) if len(keys) > 1 else value
  return out


def _check_same_shapes(source, target, src: str, dst: str) -> None:
  # Any: jax exports PyTreeDef as a variable alias, which type checkers cannot use as a type.
  s_struct: Any = jax.tree.structure(source)
  t_struct: Any = jax.tree.structure(target)
  if s_struct != t_struct:
    raise ValueError(
      f"init_from: source {src!r} and target {dst!r} have different structures:"
      f"\n  source: {s_struct}\n  target: {t_struct}"
    )
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(source), jax.tree.leaves(target)):
    if np.shape(a) != np.shape(b):
      raise ValueError(
        f"init_from: shape mismatch at {src}{jax.tree_util.keystr(path)}: "
        f"source {np.shape(a)} vs target {np.shape(b)} (same model sizes and "
        "vocabulary are needed)."
      )


def restore_subtrees(init_config, state):
  """Returns `state` (canonical, host or device arrays) with the mapped subtrees
  replaced by the source checkpoint's values, and a description for the log."""
  workdir = init_config.workdir
  directory = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(directory):
    raise FileNotFoundError(
      f"init_from.workdir={workdir!r} has no checkpoints/ folder; train the "
      "source experiment first (e.g. the pretraining config)."
    )
  # The source run's own config says which metric its best checkpoint is by.
  best_metric, best_mode = None, "max"
  config_path = os.path.join(workdir, "config.json")
  if os.path.exists(config_path):
    with open(config_path) as f:
      source_ckpt = json.load(f).get("ckpt", {})
    best_metric, best_mode = source_ckpt.get("best_metric"), source_ckpt.get("best_mode", "max")
  ckpt = ckpt_lib.Checkpointer(
    directory, best_metric=best_metric, best_mode=best_mode, async_save=False
  )
  steps = ckpt.all_steps()
  if not steps:
    raise FileNotFoundError(f"init_from: no finished checkpoint in {directory}.")
  which = str(init_config.checkpoint)
  if which == "latest":
    step = steps[-1]
  elif which == "best":
    if best_metric:
      # A source run selected on test would carry that choice into this run.
      with open(config_path) as f:
        source_evals = json.load(f).get("evals", {})
      name = best_metric.split("/", 1)[0]
      config_lib.check_not_test(
        f"init_from.checkpoint='best' of {workdir!r} (its ckpt.best_metric={best_metric!r})",
        name,
        str(source_evals.get(name, {}).get("split", "")),
      )
    step = ckpt.best_step() or steps[-1]
  elif which.isdigit() and int(which) in steps:
    step = int(which)
  else:
    raise ValueError(f"init_from.checkpoint={which!r}: use 'best', 'latest' or one of {steps}.")
  source = ckpt.restore_raw(step)
  params, model_state = dict(state.params), dict(state.model_state)
  for src, dst in init_config.mapping:
    value = _get(source["params"], src, f"checkpoint {directory}/{step} params")
    _check_same_shapes(value, _get(params, dst, "this model's params"), src, dst)
    params = _set(params, dst, value)
    for collection, tree in dict(source.get("model_state") or {}).items():
      try:
        value = _get(tree, src, collection)
        target = _get(model_state.get(collection, {}), dst, collection)
      except KeyError:
        continue
      _check_same_shapes(value, target, src, dst)
      model_state[collection] = _set(dict(model_state[collection]), dst, value)
  ckpt.close()
  desc = f"{directory} step {step}: " + ", ".join(
    f"{s or '/'} -> {d or '/'}" for s, d in init_config.mapping
  )
  return state.replace(params=params, model_state=model_state), desc


def restore_all(init_config, state):
  """`restore_subtrees` for `init_config.workdir` (if set) and then each of
  `init_config.sources`; returns (state, description)."""
  sources = []
  if init_config.workdir:
    sources.append(init_config)
  for i, src in enumerate(init_config.get("sources") or ()):
    src = dict(src)
    unknown = set(src) - {"workdir", "checkpoint", "mapping"}
    if unknown or not src.get("workdir") or not src.get("mapping"):
      raise ValueError(
        f"init_from.sources[{i}] must be dict(workdir=..., mapping=((src, dst), "
        f"...), checkpoint='best'); got keys {sorted(src)}."
      )
    sources.append(
      types.SimpleNamespace(
        workdir=src["workdir"],
        checkpoint=src.get("checkpoint", "best"),
        mapping=tuple(tuple(m) for m in src["mapping"]),
      )
    )
  descs = []
  for src in sources:
    state, desc = restore_subtrees(src, state)
    descs.append(desc)
  return state, "; ".join(descs)
