"""What the encoder-decoder text experiments (multi30k, aeslc) share: preprocessing,
task, model, optimizer and the tiny mode. Each experiment keeps its data, sizes,
evaluations and references."""

from research.core import smoke
from research.core.config import ConfigDict


def pipeline(source_len: int, target_len: int) -> str:
  """Pairs -> {'inputs' [S], 'decoder_inputs' [T], 'targets' [T], 'targets_mask', 'index'}."""
  return (
    f"tokenize(key='source', out='inputs', add_eos=True)|truncate_pad({source_len}, key='inputs')"
    f"|tokenize(key='target', out='targets', add_eos=True)"
    f"|truncate_pad({target_len}, key='targets')"
    "|shift_right(key='targets', out='decoder_inputs')"
    "|keep('inputs', 'decoder_inputs', 'targets', 'targets_mask', 'index')"
  )


def configure(c: ConfigDict, v: dict, *, source_len: int, target_len: int) -> None:
  """Sets the pipeline, the seq2seq task (label smoothing 0.1), the model of size
  `v` (layers, heads, dim, mlp), AdamW (b2 0.98) with warmup `v['warmup']` then
  cosine decay, batch `v['batch']`, `v['epochs']` epochs and learning rate `v['lr']`."""
  c.data.pp_train = c.data.pp_eval = pipeline(source_len, target_len)
  c.task = ConfigDict(
    dict(
      name="seq2seq",
      input_key="inputs",
      decoder_input_key="decoder_inputs",
      target_key="targets",
      weight_key="targets_mask",
      label_smoothing=0.1,
    )
  )
  c.model = ConfigDict(
    dict(
      name="seq2seq",
      vocab_size=None,
      num_layers=v["layers"],
      num_heads=v["heads"],
      embed_dim=v["dim"],
      mlp_dim=v["mlp"],
      max_len=max(source_len, target_len),
      dropout=0.1,
    )
  )
  c.precision = "auto"  # bfloat16 compute on GPU/TPU, float32 on CPU
  c.batch_size, c.eval_batch_size = v["batch"], 256
  c.total_epochs = v["epochs"]
  c.optimizer.name = "adamw"
  c.optimizer.lr = v["lr"]
  c.optimizer.b2 = 0.98
  c.optimizer.weight_decay = 1e-4
  c.optimizer.clip_norm = 1.0
  c.schedule.name = "cosine"
  c.schedule.warmup_steps = v["warmup"]
  c.log_every_steps = 100
  c.steps_per_call = 10


def shrink(c: ConfigDict, *, vocab_size: int) -> None:
  """Tiny mode: a one-layer width-16 model, a tiny vocabulary, beam 2 at test."""
  smoke.shrink(c, model=dict(num_layers=1, embed_dim=16, num_heads=2, mlp_dim=16))
  c.data.tokenizer.vocab_size = vocab_size
  c.steps_per_call = 1
  for ev in c.evals.values():
    if ev.get("method") == "beam":
      ev.beam_size = 2
