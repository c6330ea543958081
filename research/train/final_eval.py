"""One model per run: the final metrics describe the checkpoint the tools use.

`tools.evaluate`, `tools.score`, `tools.recommend`, `tools.generate` and
`init_from` default to the "best" checkpoint (`research.train.evaluate.
_pick_step`: the kept step with the best `config.ckpt.best_metric`, else the
last one). At the end of a run `reported_checkpoint` picks that same step; when
it is not the last step it restores it and runs fresh evaluators on it (as
`research.train.evaluate.evaluate` does), so summary.json and report.md give
the metrics of the model a user will get, and say which checkpoint that is.

Which metric decides is whatever `ckpt.best_metric` names; nothing here
depends on its split or name.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from research.outputs import summary as summary_lib
from research.train import builder
from research.train import state as state_lib
from research.train.evaluate import _pick_step

log = logging.getLogger(__name__)


def describe(ckpt, step: int, last_step: int) -> str:
  """'best by <metric>' when `step` was chosen by ckpt.best_metric, else 'last step'."""
  if ckpt.best_metric and ckpt.best_step() == step:
    return f"best by {ckpt.best_metric}" + (" (the last step)" if step == last_step else "")
  return "last step"


def reported_checkpoint(
  run: builder.Run,
  ckpt,
  last_step: int,
  final: Mapping[str, Any],
  artifacts: Mapping[str, Any],
  workdir: str,
):
  """(metrics, artifacts, facts) of the checkpoint the tools default to.

  Args:
    run: the run's `builder.Run`.
    ckpt: its `Checkpointer`, after the last step was saved with `final`.
    last_step: the last training step.
    final, artifacts: the final evaluation of the last step's state.
    workdir: for messages.

  Returns `final` and `artifacts` unchanged when that checkpoint is the last
  step; else the evaluators' results on the restored checkpoint. `facts`:
  {'checkpoint_step': int, 'checkpoint': 'best by <metric>' | 'last step'},
  plus 'checkpoint_params_fingerprint' when it is not the last step (the
  summary's 'params_fingerprint' stays that of the last step's weights).
  """
  ckpt.wait()  # the last step's save must be visible to the choice
  step = _pick_step(ckpt, "best", workdir)
  facts = {"checkpoint_step": int(step), "checkpoint": describe(ckpt, step, last_step)}
  if step == last_step:
    return dict(final), dict(artifacts), facts
  state, _, _ = ckpt.restore(step, run.backend.abstract_state(run.init_fn))
  state = run.backend.from_canonical(state)
  metrics, arts = {}, {}
  # Fresh evaluators, as research.train.evaluate builds them: the same
  # batches (and the same windows for sampled LM evals) as tools.evaluate.
  for ev in builder.build_evaluators(run):
    scalars, extra = ev.run(builder.make_predict_fn(run, lambda: state))
    metrics.update(scalars)
    arts.update(extra)
  canonical = run.backend.canonical(state)
  facts["checkpoint_params_fingerprint"] = summary_lib.params_fingerprint(
    state_lib.host_variables(canonical)
  )
  log.info(
    "Final metrics are those of checkpoint step %d (%s), the one the tools use; the last "
    "step is %d.",
    step,
    facts["checkpoint"],
    last_step,
  )
  return metrics, arts, facts
