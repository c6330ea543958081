"""Evaluate a trained workdir: restore its best (or latest) checkpoint and run an evaluator.

Reads the run's own `config.json`, so evaluation rebuilds exactly the model,
preprocessing and data the run trained with.
"""

from __future__ import annotations

import json
import os

import jax

from research.core import config as config_lib
from research.train import builder
from research.train import checkpoint as ckpt_lib

# Reading a saved run lives in research.train.saved_run (which the builder may
# import, e.g. for evaluators that score with another run's model); these names
# stay importable from here.
from research.train.saved_run import (  # noqa: F401
  _pick_step,
  load_workdir_config,
  restore_picked,
  restore_raw_picked,
  restore_variables,
)


def evaluate(workdir: str, *, split: str | None = None, which: str = "best") -> dict[str, float]:
  """Evaluates checkpoint `which` ('best', 'latest' or a step number) on `split`.

  `split` is a data split name (e.g. 'test'); None runs every configured eval.
  Writes `eval_<split>_step<N>.json` beside the checkpoints and returns the metrics.
  """
  config = load_workdir_config(workdir)
  evals = dict(config.evals)
  if split is not None:
    matching = [name for name, ev in evals.items() if ev.split == split]
    if not matching:  # a split the run did not evaluate: reuse the first eval's settings
      if not evals:
        raise ValueError(f"{workdir}: config has no evals to base a {split!r} evaluation on.")
      template = next(iter(evals.values())).to_dict()
      config.evals[split] = config_lib.ConfigDict(dict(template, split=split))
      matching = [split]
  config_lib.validate(config)
  run = builder.build(config, workdir=workdir)
  ckpt = ckpt_lib.Checkpointer(
    os.path.join(workdir, "checkpoints"),
    keep=config.ckpt.keep,
    best_metric=config.ckpt.best_metric,
    best_mode=config.ckpt.best_mode,
  )
  abstract = run.backend.abstract_state(run.init_fn)
  step, (state, _, _) = restore_picked(ckpt, which, workdir, lambda s: ckpt.restore(s, abstract))
  state = run.backend.from_canonical(state)
  builder.compile_steps(run)
  names = None if split is None else matching
  results = {}
  for ev in builder.build_evaluators(run, names=names):
    scalars, _ = ev.run(builder.make_predict_fn(run, lambda: state))
    results.update(scalars)
  ckpt.close()
  if jax.process_index() == 0:
    out = os.path.join(workdir, f"eval_{split or 'all'}_step{step}.json")
    with open(out, "w") as f:
      json.dump(dict(results, step=step), f, indent=2, sort_keys=True)
  return dict(results, step=step)
