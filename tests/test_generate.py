"""tools.generate's library half (research.apps.generate): text from a trained LM workdir."""

import pytest

from research.apps.generate import generate_text
from research.core import config as config_lib
from research.train import loop
from tests.test_experiments import write_text_dirs


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
  """A two-step character GRU LM on a tiny shakespeare written here (its tokenizer saved)."""
  root = tmp_path_factory.mktemp("lm")
  write_text_dirs(root / "data")
  with pytest.MonkeyPatch.context() as mp:
    mp.setenv("RESEARCH_DATA_DIR", str(root / "data"))
    loop.run(config_lib.load("nlp/shakespeare_char:gru,smoke=True"), str(root / "run"))
  return root / "run"


def test_generate_continues_the_prompt_deterministically(lm_run):
  kw = dict(max_new_tokens=6, checkpoint="latest")
  (greedy,) = generate_text(str(lm_run), "ROMEO:", greedy=True, **kw)
  assert greedy.startswith("ROMEO:") and len(greedy) == len("ROMEO:") + 6
  assert generate_text(str(lm_run), "ROMEO:", greedy=True, **kw) == [greedy]
  samples = generate_text(str(lm_run), "RO", num_samples=3, seed=1, top_k=5, **kw)
  assert len(samples) == 3 and all(s.startswith("RO") and len(s) == 8 for s in samples)
  assert samples == generate_text(str(lm_run), "RO", num_samples=3, seed=1, top_k=5, **kw)


def test_generate_refuses_a_prompt_of_no_tokens(lm_run):
  with pytest.raises(ValueError, match="encodes to no tokens"):
    generate_text(str(lm_run), "", max_new_tokens=1, checkpoint="latest")
