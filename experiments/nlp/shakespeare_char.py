"""Character-level language models on tiny shakespeare (nanoGPT's shakespeare_char).

Data: `$RESEARCH_DATA_DIR/tiny_shakespeare/input.txt`, else TFDS `tiny_shakespeare`;
split like nanoGPT (first 90% of characters train, last 10% validation), a
65-character vocabulary from the training text.

Validation loss is reported two ways: nanoGPT's (`val_sampled`: mean over 20
batches of random windows, redrawn at each evaluation; the report takes the
best over evaluations) and exactly over every validation character (`val`).
Losses are in nats; bits per character = loss / ln 2.

  python -m tools.train --config=experiments/nlp/shakespeare_char.py:gpt_cpu --workdir=runs/sc_gpt_cpu
  python -m tools.generate --workdir=runs/sc_gpt_cpu --prompt="ROMEO:" --max_new_tokens=500
"""

from research.core import smoke
from research.core.config import ConfigDict, base_config, eval_config, parse_arg

_NANOGPT = "karpathy/nanoGPT README, shakespeare_char"
VARIANTS = {
  # nanoGPT's "baby GPT" CPU command: --block_size=64 --batch_size=12 --n_layer=4
  # --n_head=4 --n_embd=128 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0
  # --eval_iters=20; reported val loss about 1.88.
  "gpt_cpu": dict(
    model=dict(name="gpt", num_layers=4, num_heads=4, embed_dim=128, dropout=0.0),
    block=64,
    batch=12,
    steps=2000,
    eval_batches=20,
    reference=1.88,
  ),
  # config/train_shakespeare_char.py: best val loss 1.4697 on one GPU.
  "gpt": dict(
    model=dict(name="gpt", num_layers=6, num_heads=6, embed_dim=384, dropout=0.2),
    block=256,
    batch=64,
    steps=5000,
    eval_batches=200,
    reference=1.4697,
  ),
  "lstm": dict(
    model=dict(name="lstm_lm", embed_dim=128, hidden=256, num_layers=2, dropout=0.0),
    block=64,
    batch=12,
    steps=2000,
    eval_batches=20,
    reference=None,
  ),
  "gru": dict(
    model=dict(name="gru_lm", embed_dim=128, hidden=256, num_layers=2, dropout=0.0),
    block=64,
    batch=12,
    steps=2000,
    eval_batches=20,
    reference=None,
  ),
}


def get_config(arg=None):
  arg = parse_arg(arg, variants=tuple(VARIANTS), smoke=False)
  v = VARIANTS[arg.variant]
  c = base_config()
  c.data.name = "tiny_shakespeare"
  c.data.train_split = "train"
  c.data.format = "lm_windows"
  c.data.tokenizer = ConfigDict(dict(type="char"))
  c.data.block_size = v["block"]
  c.task = ConfigDict(
    dict(name="lm", input_key="inputs", target_key="targets", weight_key="weights")
  )
  model = dict(v["model"], vocab_size=None)  # None: the tokenizer's vocabulary (65)
  if model["name"] == "gpt":
    model.update(block_size=v["block"], bias=False)
    c.precision = "auto"  # bfloat16 compute on GPU/TPU, float32 on CPU
  c.model = ConfigDict(model)
  c.batch_size = c.eval_batch_size = v["batch"]
  c.total_steps = v["steps"]
  # nanoGPT: AdamW(beta2=0.99, wd 0.1 on >=2-D weights), clip 1.0, lr 1e-3 with
  # 100 warmup iterations then cosine to 1e-4 at the last iteration.
  c.optimizer = ConfigDict(
    dict(c.optimizer.to_dict(), name="adamw", lr=1e-3, b2=0.99, weight_decay=0.1, clip_norm=1.0)
  )
  c.schedule.name, c.schedule.warmup_steps, c.schedule.end_factor = "cosine", 100, 0.1
  c.log_every_steps = 50
  if arg.variant == "gpt_cpu":
    # nanoGPT's CPU config: on a CPU run one half-batch per core (2 XLA host
    # devices, research/platforms/xla_flags.py) and average the gradients as
    # one buffer; both faster (docs/performance_cpu.md). Every window
    # is a full 64 targets, so the per-device means average to the global one
    # (research.train.parallel.wants_flat_allreduce).
    c.cpu_host_devices = 2
    c.grad_allreduce = "flat"
    # 10 steps per compiled call (a lax.scan; logs, evaluations and
    # checkpoints fall on multiples of 10): one dispatch and one wait per 10
    # steps instead of per step; same updates
    # (research.train.loop._steps_this_call).
    c.steps_per_call = 10
  if arg.variant == "gru":
    # 10 steps per call: the same weights (params fingerprint), faster; the
    # lstm gains nothing so and keeps 1 (docs/performance_cpu.md).
    c.steps_per_call = 10
  c.evals.val_sampled = eval_config(
    "language_model", "validation", every_steps=250, windows="random", num_batches=v["eval_batches"]
  )
  c.evals.val = eval_config("language_model", "validation", windows="contiguous")
  c.ckpt.every_steps, c.ckpt.every_epochs = 250, None
  c.ckpt.best_metric, c.ckpt.best_mode = "val_sampled/loss", "min"
  if v["reference"] is not None:
    c.references = (
      dict(
        metric="val_sampled/best_loss",
        value=v["reference"],
        higher_is_better=False,
        tolerance=0.0,
        source=f"{_NANOGPT} ({arg.variant}): validation loss",
        data=dict(name="tiny_shakespeare"),
      ),
    )
  if arg.smoke:
    if model["name"] == "gpt":
      tiny = dict(num_layers=1, embed_dim=16, num_heads=2, block_size=16)
    else:
      tiny = dict(embed_dim=8, hidden=16, num_layers=1)
    smoke.shrink(c, model=tiny, eval_batch_size=16)
    c.data.block_size = 16
    # The sampled validation loss is what selects the checkpoint: once per step.
    c.evals.val_sampled.every_steps = 1
    c.evals.val_sampled.num_batches = 2
  return c
