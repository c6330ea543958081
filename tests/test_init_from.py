"""Transfer learning: a fresh run copies mapped subtrees from another run's checkpoint."""

import json

import jax
import numpy as np
import pytest

from research.core import config as config_lib
from research.train import builder, init_from, loop
from research.train import checkpoint as ckpt_lib


def test_fresh_run_starts_from_the_source_checkpoint_subtree(tmp_path):
  source_dir = tmp_path / "source"
  loop.run(config_lib.load("vision/digits:mlp,smoke=True"), str(source_dir))
  source = ckpt_lib.Checkpointer(str(source_dir / "checkpoints")).restore_raw(2)

  config = config_lib.load(
    "vision/digits:mlp,smoke=True",
    {"init_from.workdir": str(source_dir), "init_from.checkpoint": "latest"},
  )
  with config.unlocked():
    config.init_from.mapping = (("Dense_0", "Dense_0"),)
  run = builder.build(config, devices=jax.devices()[:1])
  fresh = run.backend.init_state(run.init_fn)
  state, desc = init_from.restore_subtrees(config.init_from, fresh)
  assert "Dense_0 -> Dense_0" in desc
  src = source["params"]
  assert sorted(state.params) == sorted(fresh.params)
  for key in ("kernel", "bias"):  # copied, not re-initialised...
    np.testing.assert_array_equal(state.params["Dense_0"][key], src["Dense_0"][key])
    assert not np.array_equal(fresh.params["Dense_0"][key], src["Dense_0"][key])
  # ...and everything outside the mapping keeps its fresh initialisation.
  others = [k for k in state.params if k != "Dense_0"]
  assert others
  for k in others:
    np.testing.assert_array_equal(state.params[k]["kernel"], fresh.params[k]["kernel"])


@pytest.mark.slow
def test_bad_mapping_and_missing_source_are_clear(tmp_path):
  source_dir = tmp_path / "source"
  loop.run(config_lib.load("vision/digits:mlp,smoke=True"), str(source_dir))
  config = config_lib.load("vision/digits:cnn,smoke=True", {"init_from.workdir": str(source_dir)})
  with config.unlocked():
    config.init_from.mapping = (("Dense_0", "Conv_0"),)
  run = builder.build(config, devices=jax.devices()[:1])
  with pytest.raises(ValueError, match="different structures|shape mismatch"):
    init_from.restore_subtrees(config.init_from, run.backend.init_state(run.init_fn))
  with config.unlocked():
    config.init_from.mapping = (("encoder", "encoder"),)
  with pytest.raises(KeyError, match="has no 'encoder'"):
    init_from.restore_subtrees(config.init_from, run.backend.init_state(run.init_fn))
  # A source run whose best checkpoint was chosen on test (a run from before
  # the validation split): 'best' would carry that choice over.
  saved = json.loads((source_dir / "config.json").read_text())
  saved["ckpt"]["best_metric"] = "test/accuracy"
  (source_dir / "config.json").write_text(json.dumps(saved))
  with pytest.raises(ValueError, match="checkpoint='best'.*select on a validation eval"):
    init_from.restore_subtrees(config.init_from, run.backend.init_state(run.init_fn))
  with config.unlocked():
    config.init_from.workdir = str(tmp_path / "nowhere")
  with pytest.raises(FileNotFoundError, match="train the source experiment first"):
    init_from.restore_subtrees(config.init_from, run.backend.init_state(run.init_fn))
