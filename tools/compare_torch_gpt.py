"""Training-step time of nanoGPT (PyTorch) and this codebase's GPT step, same config.

  pip install -e '.[compare]'     # torch is optional: only this script needs it
  RESEARCH_DATA_DIR=... python -m tools.compare_torch_gpt [--steps=50] [--repeats=7] \
      [--config=experiments/nlp/shakespeare_char.py:gpt_cpu]
  # nanoGPT's own validation loss for the config on this machine (full training):
  RESEARCH_DATA_DIR=... python -m tools.compare_torch_gpt --train --seeds=1337,1,2
  # ... and with the recipe nanoGPT had when its README quoted the CPU loss:
  RESEARCH_DATA_DIR=... python -m tools.compare_torch_gpt --train --early_recipe --seeds=1337,1,2

The PyTorch side is karpathy/nanoGPT's model.py GPT (CausalSelfAttention with
F.scaled_dot_product_attention(is_causal=True), MLP with exact GELU,
LayerNorm without bias when bias=False, lm_head tied to wte, its init incl. the
1/sqrt(2 n_layer) scaled c_proj) and train.py's step (AdamW with nanoGPT's
decay groups, fused=False as it picks on CPU, clip_grad_norm_(1.0),
zero_grad(set_to_none=True)), fp32, no torch.compile, eager. It is fed random
token batches [batch, block] of the config's vocabulary.

The JAX side is the config's step exactly as `tools.train` runs it
(`research.train.builder`: model, optimizer, schedule, task, JitBackend with
the state donated), one batch already on device. The two are timed
interleaved in one process; prints one JSON line with the median ms/iteration
of each and torch.get_num_threads().
"""

from research.platforms import xla_flags

xla_flags.apply()

import json
import math
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import flags
from ml_collections import config_flags

from research.apps import cli
from research.core import config as config_lib
from research.data import build as data_build
from research.models import build_model
from research.train import builder, optim
from tools.compare_torch_cnn import (
  import_torch,
  jax_step_runner,
  time_interleaved,
  torch_step_runner,
)

_CONFIG = config_flags.DEFINE_config_file(
  "config",
  "experiments/nlp/shakespeare_char.py:gpt_cpu",
  "Experiment: path.py:arg (a GPT).",
  lock_config=True,
)
_STEPS = flags.DEFINE_integer("steps", 50, "Timed training steps per measurement.")
_REPEATS = flags.DEFINE_integer("repeats", 7, "Interleaved measurements per framework.")
_ONLY = flags.DEFINE_enum("only", None, ["torch", "jax"], "Time one framework only.")
_TRAIN = flags.DEFINE_bool(
  "train",
  False,
  "Instead of timing: train nanoGPT (PyTorch) on the config's real data with "
  "nanoGPT's train.py loop (random windows, its lr schedule, estimate_loss every "
  "--eval_interval iterations over --eval_iters batches) and print its validation losses: "
  "the same-machine reference for the config's published loss.",
)
_EQUIVALENCE = flags.DEFINE_integer(
  "equivalence_steps",
  0,
  "Instead of timing: copy nanoGPT's initial weights into this "
  "codebase's GPT, train both for this many steps on the same real training windows with the "
  "config's optimizer and schedule, and print both losses and the largest weight difference "
  "along the way (the two implementations must agree to float32 rounding).",
)
_SEEDS = flags.DEFINE_list("seeds", ["1337"], "--train: torch.manual_seed values, one run each.")
_EVAL_INTERVAL = flags.DEFINE_integer("eval_interval", 250, "--train: nanoGPT's eval_interval.")
_DRAWS = flags.DEFINE_integer(
  "estimate_draws",
  0,
  "--train: after training, repeat nanoGPT's validation estimate this "
  "many times with fresh windows and report their mean and standard deviation (how noisy "
  "one estimate is).",
)
_EARLY = flags.DEFINE_bool(
  "early_recipe",
  False,
  "--train: nanoGPT's recipe of early 2023 (when its README first "
  "quoted the CPU config's loss) instead of today's: minGPT's configure_optimizers (only "
  "nn.Linear weights decay, so the tied wte/lm_head and wpe do not), new_gelu's tanh "
  "approximation, and warmup lr * it / warmup_iters (0 at iteration 0).",
)
_TORCH_THREADS = flags.DEFINE_integer(
  "torch_threads",
  None,
  "torch.set_num_threads (default: torch's, = cores). Lower it when the cores are busy "
  "with other work: OpenMP threads then spin and wait (docs/performance_cpu.md).",
)

_TOOL = "tools.compare_torch_gpt"


def nanogpt(
  *,
  vocab_size: int,
  block_size: int,
  n_layer: int,
  n_head: int,
  n_embd: int,
  bias: bool,
  lr: float,
  betas: tuple[float, float],
  weight_decay: float,
  seed: int = 1337,
  early: bool = False,
):
  """nanoGPT's GPT (model.py) and AdamW (configure_optimizers) -> (model, optimizer).

  early: the early-2023 model and decay groups (see --early_recipe)."""
  torch = import_torch(_TOOL)
  if _TORCH_THREADS.value:
    torch.set_num_threads(_TORCH_THREADS.value)
  nn, F = torch.nn, torch.nn.functional

  class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (PyTorch's has no bias=False before 2.1)."""

    def __init__(self, ndim):
      super().__init__()
      self.weight = nn.Parameter(torch.ones(ndim))
      self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
      return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)

  class CausalSelfAttention(nn.Module):
    def __init__(self):
      super().__init__()
      self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
      self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)

    def forward(self, x):
      b, t, c = x.size()
      q, k, v = self.c_attn(x).split(n_embd, dim=2)
      q, k, v = (z.view(b, t, n_head, c // n_head).transpose(1, 2) for z in (q, k, v))
      y = F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=True)
      return self.c_proj(y.transpose(1, 2).contiguous().view(b, t, c))

  class MLP(nn.Module):
    def __init__(self):
      super().__init__()
      self.c_fc = nn.Linear(n_embd, 4 * n_embd, bias=bias)
      self.gelu = nn.GELU(approximate="tanh" if early else "none")
      self.c_proj = nn.Linear(4 * n_embd, n_embd, bias=bias)

    def forward(self, x):
      return self.c_proj(self.gelu(self.c_fc(x)))

  class Block(nn.Module):
    def __init__(self):
      super().__init__()
      self.ln_1, self.attn = LayerNorm(n_embd), CausalSelfAttention()
      self.ln_2, self.mlp = LayerNorm(n_embd), MLP()

    def forward(self, x):
      x = x + self.attn(self.ln_1(x))
      return x + self.mlp(self.ln_2(x))

  class GPT(nn.Module):
    def __init__(self):
      super().__init__()
      self.transformer = nn.ModuleDict(
        dict(
          wte=nn.Embedding(vocab_size, n_embd),
          wpe=nn.Embedding(block_size, n_embd),
          h=nn.ModuleList([Block() for _ in range(n_layer)]),
          ln_f=LayerNorm(n_embd),
        )
      )
      self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
      self.transformer.wte.weight = self.lm_head.weight  # weight tying
      self.apply(self._init_weights)
      for name, p in self.named_parameters():
        if name.endswith("c_proj.weight"):
          torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))

    def _init_weights(self, module):
      if isinstance(module, nn.Linear):
        torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if module.bias is not None:
          torch.nn.init.zeros_(module.bias)
      elif isinstance(module, nn.Embedding):
        torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets):
      t = idx.size(1)
      pos = torch.arange(0, t, dtype=torch.long, device=idx.device)
      x = self.transformer.wte(idx) + self.transformer.wpe(pos)  # dropout 0: identity
      for block in self.transformer.h:
        x = block(x)
      logits = self.lm_head(self.transformer.ln_f(x))
      return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)

  torch.manual_seed(seed)
  model = GPT()
  model.train()
  # nanoGPT's configure_optimizers: decay >= 2-D params, fused only on CUDA.
  # Early 2023 (minGPT's version): nn.Linear weights only; lm_head is tied to
  # wte, an nn.Embedding, so it was not decayed either.
  params = [p for p in model.parameters() if p.requires_grad]
  embeddings = {id(model.transformer.wte.weight), id(model.transformer.wpe.weight)}
  decays = [p.dim() >= 2 and not (early and id(p) in embeddings) for p in params]
  groups = [
    {"params": [p for p, d in zip(params, decays) if d], "weight_decay": weight_decay},
    {"params": [p for p, d in zip(params, decays) if not d], "weight_decay": 0.0},
  ]
  opt = torch.optim.AdamW(groups, lr=lr, betas=betas, fused=False)
  return model, opt


def nanogpt_runner(*, batch: int, grad_clip: float, **model_kwargs):
  """`run(steps) -> seconds` training nanoGPT's GPT on one random batch [batch, block_size]."""
  torch = import_torch(_TOOL)
  model, opt = nanogpt(**model_kwargs)
  vocab_size, block_size = model_kwargs["vocab_size"], model_kwargs["block_size"]
  x = torch.randint(0, vocab_size, (batch, block_size))
  y = torch.randint(0, vocab_size, (batch, block_size))

  def step():
    loss = model(x, y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss

  return torch_step_runner(step)


def train_nanogpt(config, seed: int) -> dict:
  """nanoGPT's train.py on the config's data and sizes; returns its eval history.

  Mirrors train.py: `get_batch` draws `batch` windows uniformly with
  replacement, lr = linear warmup `lr * (it + 1) / (warmup + 1)` (`lr * it / warmup`
  with --early_recipe) then cosine
  to lr * end_factor at total_steps, evaluation before the update at every
  `eval_interval`-th iteration (0 included, total_steps included) as the mean
  of `num_batches` random-window batches per split, model in eval mode.
  """
  torch = import_torch(_TOOL)
  data = data_build.DataBuilder(config)
  splits = {"train": config.data.train_split, "val": config.evals.val_sampled.split}
  tokens = {k: torch.from_numpy(data.token_stream(v).astype(np.int64)) for k, v in splits.items()}
  m, o, sch = config.model, config.optimizer, config.schedule
  block, batch = m.block_size, config.batch_size
  model, opt = nanogpt(
    vocab_size=data.tokenizer.vocab_size,
    block_size=block,
    n_layer=m.num_layers,
    n_head=m.num_heads,
    n_embd=m.embed_dim,
    bias=m.bias,
    lr=o.lr,
    betas=(o.b1, o.b2),
    weight_decay=o.weight_decay,
    seed=seed,
    early=_EARLY.value,
  )
  eval_iters = config.evals.val_sampled.num_batches
  warmup, total = sch.warmup_steps, config.total_steps
  min_lr = o.lr * sch.end_factor

  def get_batch(split):
    d = tokens[split]
    ix = torch.randint(len(d) - block, (batch,))
    return (
      torch.stack([d[i : i + block] for i in ix]),
      torch.stack([d[i + 1 : i + 1 + block] for i in ix]),
    )

  def get_lr(it):
    if it < warmup:
      return o.lr * it / warmup if _EARLY.value else o.lr * (it + 1) / (warmup + 1)
    ratio = (it - warmup) / (total - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (o.lr - min_lr)

  history, train_seconds = [], 0.0
  for it in range(total + 1):
    if it % _EVAL_INTERVAL.value == 0 or it == total:
      model.eval()
      with torch.no_grad():
        losses = {
          k: float(torch.stack([model(*get_batch(k)) for _ in range(eval_iters)]).mean())
          for k in ("train", "val")
        }
      model.train()
      history.append(dict(step=it, **losses))
      print(json.dumps(dict(seed=seed, **history[-1])), flush=True)
    if it == total:
      break
    # Timed like this codebase's train_seconds: the training iterations
    # (batch, forward, backward, clip, step), evaluation excluded.
    start = time.perf_counter()
    for group in opt.param_groups:
      group["lr"] = get_lr(it)
    loss = model(*get_batch("train"))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), o.clip_norm)
    opt.step()
    opt.zero_grad(set_to_none=True)
    train_seconds += time.perf_counter() - start
  # Exact validation loss (every validation token once, like the 'contiguous'
  # evaluator): non-overlapping windows of `block` tokens, the last one shorter.
  val, total_loss, count = tokens["val"], 0.0, 0
  model.eval()
  with torch.no_grad():
    for s in range(0, len(val) - 1, block):
      x, y = val[s : s + block][None], val[s + 1 : s + 1 + block][None]
      x = x[:, : y.shape[1]]
      total_loss += float(model(x, y)) * y.shape[1]
      count += y.shape[1]
  exact = total_loss / count
  ms_per_iter = 1e3 * train_seconds / total
  draws = []
  with torch.no_grad():
    for _ in range(_DRAWS.value):
      draws.append(float(torch.stack([model(*get_batch("val")) for _ in range(eval_iters)]).mean()))
  spread = (
    dict(
      estimate_mean=float(np.mean(draws)),
      estimate_sd=float(np.std(draws)),
      estimate_draws=len(draws),
    )
    if draws
    else {}
  )
  print(
    json.dumps(
      dict(
        seed=seed,
        exact_val=exact,
        train_seconds=train_seconds,
        train_ms_per_iter=ms_per_iter,
        **spread,
      )
    ),
    flush=True,
  )
  return dict(
    seed=seed,
    best_val=min(h["val"] for h in history),
    exact_val=exact,
    train_seconds=train_seconds,
    train_ms_per_iter=ms_per_iter,
    history=history,
    **spread,
  )


def flax_params_from_nanogpt(model, num_layers: int, num_heads: int) -> dict:
  """nanoGPT's state_dict -> this codebase's GPT params (numpy): torch Linear
  weights are [out, in]; c_attn stacks q, k, v; heads split the last axis."""
  sd = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
  c = sd["transformer.wte.weight"].shape[1]
  h, d = num_heads, c // num_heads
  params = {
    "wte": {"embedding": sd["transformer.wte.weight"]},
    "wpe": {"embedding": sd["transformer.wpe.weight"]},
    "ln_f": {"scale": sd["transformer.ln_f.weight"]},
  }
  for i in range(num_layers):
    pre = f"transformer.h.{i}."
    q, k, v = np.split(sd[pre + "attn.c_attn.weight"], 3, axis=0)
    params[f"h_{i}"] = {
      "attn": {
        "query": {"kernel": q.T.reshape(c, h, d)},
        "key": {"kernel": k.T.reshape(c, h, d)},
        "value": {"kernel": v.T.reshape(c, h, d)},
        "out": {"kernel": sd[pre + "attn.c_proj.weight"].T.reshape(h, d, c)},
      },
      "ln_1": {"scale": sd[pre + "ln_1.weight"]},
      "ln_2": {"scale": sd[pre + "ln_2.weight"]},
      "mlp": {
        "fc": {"kernel": sd[pre + "mlp.c_fc.weight"].T},
        "proj": {"kernel": sd[pre + "mlp.c_proj.weight"].T},
      },
    }
  return params


def check_equivalence(config, steps: int) -> dict:
  """Same initial weights, same batches, same lr per step: nanoGPT (PyTorch)
  and this codebase's GPT + optimizer (research.train.optim, the config's
  AdamW/clipping/schedule) trained side by side. Prints the losses every 20
  steps; returns the largest loss and weight differences seen."""
  torch = import_torch(_TOOL)
  if config.model.bias:
    raise ValueError("--equivalence_steps maps bias-free GPTs only (nanoGPT's bias=False).")
  m, o, sch = config.model, config.optimizer, config.schedule
  vocab = m.vocab_size or 65
  tmodel, topt = nanogpt(
    vocab_size=vocab,
    block_size=m.block_size,
    n_layer=m.num_layers,
    n_head=m.num_heads,
    n_embd=m.embed_dim,
    bias=False,
    lr=o.lr,
    betas=(o.b1, o.b2),
    weight_decay=o.weight_decay,
  )
  kwargs = {k: v for k, v in m.to_dict().items() if k != "name"}
  model = build_model("gpt", **dict(kwargs, vocab_size=vocab))
  params = jax.tree.map(jnp.asarray, flax_params_from_nanogpt(tmodel, m.num_layers, m.num_heads))
  schedule = optim.make_schedule(
    sch, base_lr=o.lr, total_steps=config.total_steps, warmup_steps=sch.warmup_steps or 0
  )
  tx = optim.make_optimizer(o, schedule)

  @jax.jit
  def step(params, opt_state, x, y):
    def loss_fn(p):
      logits = model.apply({"params": p}, x, train=True)
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  # Real training windows, so both go through real learning, not noise fitting.
  tokens = data_build.DataBuilder(config).token_stream(config.data.train_split)
  opt_state, rng = tx.init(params), np.random.default_rng(0)
  worst_loss = worst_weight = 0.0
  for it in range(steps):
    starts = rng.integers(0, len(tokens) - m.block_size, config.batch_size)
    x = np.stack([tokens[i : i + m.block_size] for i in starts]).astype(np.int64)
    y = np.stack([tokens[i + 1 : i + 1 + m.block_size] for i in starts]).astype(np.int64)
    for group in topt.param_groups:
      group["lr"] = float(schedule(it))
    tloss = tmodel(torch.from_numpy(x), torch.from_numpy(y))
    tloss.backward()
    torch.nn.utils.clip_grad_norm_(tmodel.parameters(), o.clip_norm)
    topt.step()
    topt.zero_grad(set_to_none=True)
    params, opt_state, model_loss = step(params, opt_state, x, y)
    worst_loss = max(worst_loss, abs(float(tloss) - float(model_loss)))
    if it % 20 == 0 or it == steps - 1:
      theirs = flax_params_from_nanogpt(tmodel, m.num_layers, m.num_heads)
      diff = max(
        float(np.abs(a - np.asarray(b)).max())
        for a, b in zip(jax.tree.leaves(theirs), jax.tree.leaves(params))
      )
      worst_weight = max(worst_weight, diff)
      print(
        json.dumps(
          dict(step=it, torch_loss=float(tloss), jax_loss=float(model_loss), max_weight_diff=diff)
        ),
        flush=True,
      )
  return dict(steps=steps, max_loss_diff=worst_loss, max_weight_diff=worst_weight)


def jax_runner(config):
  """`run(steps) -> seconds` of the config's train step (builder, JitBackend), batch on device."""
  run = builder.build(config)
  builder.compile_steps(run)
  host = next(builder.train_iterator(run))  # the real batch layout (keys, dtypes)
  rng = np.random.default_rng(0)
  vocab = run.model.vocab_size
  for key in (run.task.input_key, run.task.target_key):
    host[key] = rng.integers(0, vocab, host[key].shape).astype(host[key].dtype)
  return jax_step_runner(run.backend, run.backend.init_state(run.init_fn), host), run


def main(argv):
  del argv
  config = config_lib.finalize_flag(_CONFIG.value)  # also sets host devices
  if _EQUIVALENCE.value:
    print(
      json.dumps(
        dict(experiment=config.experiment, **check_equivalence(config, _EQUIVALENCE.value))
      ),
      flush=True,
    )
    return
  if _TRAIN.value:
    runs = [train_nanogpt(config, int(seed)) for seed in _SEEDS.value]
    best = [r["best_val"] for r in runs]
    print(
      json.dumps(
        dict(
          experiment=config.experiment,
          framework="torch (nanoGPT)",
          recipe="early 2023" if _EARLY.value else "current",
          seeds=[r["seed"] for r in runs],
          best_val=best,
          mean_best_val=float(np.mean(best)),
          exact_val=[r["exact_val"] for r in runs],
          mean_exact_val=float(np.mean([r["exact_val"] for r in runs])),
          train_ms_per_iter=[round(r["train_ms_per_iter"], 2) for r in runs],
          torch_num_threads=import_torch(_TOOL).get_num_threads(),
        )
      ),
      flush=True,
    )
    return
  runners, info = {}, {}
  if _ONLY.value != "torch":
    runners["jax"], run = jax_runner(config)
    model = run.model
    info = dict(
      vocab_size=model.vocab_size,
      block_size=model.block_size,
      n_layer=model.num_layers,
      n_head=model.num_heads,
      n_embd=model.embed_dim,
      bias=model.bias,
      batch=config.batch_size,
    )
  else:
    m = config.model
    info = dict(
      vocab_size=m.vocab_size or 65,
      block_size=m.block_size,
      n_layer=m.num_layers,
      n_head=m.num_heads,
      n_embd=m.embed_dim,
      bias=m.bias,
      batch=config.batch_size,
    )
  if _ONLY.value != "jax":
    o = config.optimizer
    runners["torch"] = nanogpt_runner(
      **info, lr=o.lr, betas=(o.b1, o.b2), weight_decay=o.weight_decay, grad_clip=o.clip_norm
    )
  steps = _STEPS.value
  times = time_interleaved(runners, steps=steps, repeats=_REPEATS.value)
  result = {
    f"{name}_ms_per_iter": round(1e3 * statistics.median(t) / steps, 2) for name, t in times.items()
  }
  result.update(
    {f"{name}_ms_per_iter_all": [round(1e3 * s / steps, 2) for s in t] for name, t in times.items()}
  )
  if "torch" in runners:
    result["torch_num_threads"] = import_torch(_TOOL).get_num_threads()
  result.update(
    experiment=config.experiment,
    model=info,
    steps=steps,
    repeats=_REPEATS.value,
    jax_backend=jax.default_backend(),
    xla_flags=xla_flags.current(),
  )
  print(json.dumps(result), flush=True)


if __name__ == "__main__":
  cli.run(main)
