"""Sample text from a trained language-model workdir (GPT or recurrent LM).

Rebuilds the run from its own config.json, reloads the tokenizer saved in
`<workdir>/tokenizer/`, restores the best (or latest) checkpoint and calls the
jit-compiled `research.models.decoding.generate`.
"""

from __future__ import annotations

import os

import jax
import numpy as np

from research.core import config as config_lib
from research.data.text import tokenizers as tok_lib
from research.models import build_model, decoding
from research.train.evaluate import load_workdir_config, restore_variables


def generate_text(
  workdir: str,
  prompt: str,
  *,
  max_new_tokens: int = 500,
  temperature: float = 1.0,
  top_k: int | None = None,
  top_p: float | None = None,
  greedy: bool = False,
  seed: int = 0,
  num_samples: int = 1,
  checkpoint: str = "best",
) -> list[str]:
  """Returns `num_samples` continuations of `prompt` (prompt included)."""
  config = load_workdir_config(workdir)
  config_lib.validate(config)
  if config.data.format != "lm_windows":
    raise ValueError(
      f"{workdir} is not a language-model run (data.format="
      f"{config.data.format!r}); generation needs a GPT or recurrent LM."
    )
  # Only the tokenizer and the checkpoint are needed: no training data is read.
  tokenizer = tok_lib.load_tokenizer(os.path.join(workdir, "tokenizer"))
  ids = tokenizer.encode(prompt)
  if not ids:
    raise ValueError("The prompt encodes to no tokens; give at least one character.")
  model_kwargs = config.model.to_dict()
  if model_kwargs.get("vocab_size") is None:
    model_kwargs["vocab_size"] = tokenizer.vocab_size
  model = build_model(model_kwargs.pop("name"), **model_kwargs)
  _, variables = restore_variables(workdir, config, checkpoint)
  prompt_ids = np.tile(np.asarray(ids, np.int32)[None], (num_samples, 1))
  tokens = decoding.generate(
    model,
    variables,
    prompt_ids,
    max_new_tokens=max_new_tokens,
    rng=jax.random.PRNGKey(seed),
    temperature=temperature,
    top_k=top_k,
    top_p=top_p,
    greedy=greedy,
  )
  return [tokenizer.decode(row.tolist()) for row in np.asarray(tokens)]
