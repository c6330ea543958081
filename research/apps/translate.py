"""Translate (or summarize) text with a trained encoder-decoder workdir.

Rebuilds the model from the run's own config.json, reloads the tokenizer saved
in `<workdir>/tokenizer/`, restores the best (or latest) checkpoint and decodes
with `research.models.beam_search.decode`, the function the run's
'decoded_text' evaluator scored it with; decoding settings default to that
evaluator's (its test eval's, else the first one's).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from research.core import config as config_lib
from research.data.text import tokenizers as tok_lib
from research.models import beam_search, build_model
from research.train.evaluate import load_workdir_config, restore_variables


def decoding_settings(config: Any) -> dict[str, Any]:
  """The run's decoding settings: its test 'decoded_text' eval's, else its first one's."""
  evals = [(n, e) for n, e in config.evals.items() if e.type == "decoded_text"]
  if not evals:
    raise ValueError(
      "This workdir has no 'decoded_text' eval: it is not a translation or summarization run."
    )
  ev = next((e for n, e in evals if config_lib.is_test_eval(n, e.split)), evals[0][1])
  return dict(
    method=ev.get("method", "beam"),
    beam_size=int(ev.get("beam_size", 4)),
    alpha=float(ev.get("alpha", 0.6)),
    max_decode_len=int(ev.get("max_decode_len", 64)),
  )


def translate_texts(
  workdir: str,
  texts: Sequence[str],
  *,
  method: str | None = None,
  beam_size: int | None = None,
  alpha: float | None = None,
  max_decode_len: int | None = None,
  batch_size: int = 64,
  checkpoint: str = "best",
) -> list[str]:
  """One output per input text; None arguments take the run's own settings."""
  config = load_workdir_config(workdir)
  config_lib.validate(config)
  settings = decoding_settings(config)
  given = dict(method=method, beam_size=beam_size, alpha=alpha, max_decode_len=max_decode_len)
  settings.update({k: v for k, v in given.items() if v is not None})
  tokenizer = tok_lib.load_tokenizer(os.path.join(workdir, "tokenizer"))
  model_kwargs = config.model.to_dict()
  if model_kwargs.get("vocab_size") is None:
    model_kwargs["vocab_size"] = tokenizer.vocab_size
  bos_id, eos_id = tokenizer.bos_id, tokenizer.eos_id
  if bos_id is None or eos_id is None:
    raise ValueError(f"{workdir}: its {tokenizer.type!r} tokenizer has no bos/eos ids.")
  model = build_model(model_kwargs.pop("name"), **model_kwargs)
  _, variables = restore_variables(workdir, config, checkpoint)
  # Sources as in training: the text's tokens then EOS, cut to the model's length.
  length = int(model_kwargs.get("max_len") or 256)
  special = tokenizer.special_ids - {tokenizer.unk_id}
  outputs: list[str] = []
  for start in range(0, len(texts), batch_size):
    chunk = texts[start : start + batch_size]
    # A fixed [batch_size, length] shape: one compilation for the whole file.
    inputs = np.zeros((batch_size, length), np.int32)
    for row, text in enumerate(chunk):
      ids = [*tokenizer.encode(text), eos_id][:length]
      inputs[row, : len(ids)] = ids
    tokens = beam_search.decode(
      model,
      variables,
      inputs,
      method=settings["method"],
      beam_size=settings["beam_size"],
      alpha=settings["alpha"],
      max_len=settings["max_decode_len"],
      bos_id=bos_id,
      eos_id=eos_id,
    )
    for row in np.asarray(tokens)[: len(chunk)]:
      outputs.append(tokenizer.decode(beam_search.strip_special(row, eos_id, special)))
  return outputs
