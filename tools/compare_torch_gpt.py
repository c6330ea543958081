"""Training-step time of nanoGPT (PyTorch) and this codebase's GPT step, same config.

  pip install -e '.[compare]'     # torch is optional: only this script needs it
  RESEARCH_DATA_DIR=... python -m tools.compare_torch_gpt [--steps=50] [--repeats=7] \
      [--config=experiments/nlp/shakespeare_char.py:gpt_cpu]

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
from research import xla_flags

xla_flags.apply()

import json  # pylint: disable=g-import-not-at-top,wrong-import-position
import math
import statistics

from absl import app, flags
from ml_collections import config_flags
import jax
import numpy as np

from research import config as config_lib
from research.train import builder
from tools.compare_torch_cnn import import_torch, jax_step_runner, time_interleaved, \
    torch_step_runner

_CONFIG = config_flags.DEFINE_config_file(
    "config", "experiments/nlp/shakespeare_char.py:gpt_cpu", "Experiment: path.py:arg (a GPT).",
    lock_config=True)
_STEPS = flags.DEFINE_integer("steps", 50, "Timed training steps per measurement.")
_REPEATS = flags.DEFINE_integer("repeats", 7, "Interleaved measurements per framework.")
_ONLY = flags.DEFINE_enum("only", None, ["torch", "jax"], "Time one framework only.")
_TORCH_THREADS = flags.DEFINE_integer(
    "torch_threads", None, "torch.set_num_threads (default: torch's, = cores). With the cores "
    "busy with other work, 2 OpenMP threads on 2 cores ran 30-50x slower (1.7 s/iter vs 34 ms).")

_TOOL = "tools.compare_torch_gpt"


def nanogpt_runner(*, vocab_size: int, block_size: int, n_layer: int, n_head: int, n_embd: int,
                   bias: bool, batch: int, lr: float, betas: tuple[float, float],
                   weight_decay: float, grad_clip: float):
  """`run(steps) -> seconds` training nanoGPT's GPT on one random batch [batch, block_size]."""
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
      self.gelu = nn.GELU()
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
      self.transformer = nn.ModuleDict(dict(
          wte=nn.Embedding(vocab_size, n_embd), wpe=nn.Embedding(block_size, n_embd),
          h=nn.ModuleList([Block() for _ in range(n_layer)]), ln_f=LayerNorm(n_embd)))
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

  torch.manual_seed(1337)
  model = GPT()
  model.train()
  # nanoGPT's configure_optimizers: decay >= 2-D params, fused only on CUDA.
  params = [p for p in model.parameters() if p.requires_grad]
  groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
  opt = torch.optim.AdamW(groups, lr=lr, betas=betas, fused=False)
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


def jax_runner(config):
  """`run(steps) -> seconds` of the config's train step (builder, JitBackend), batch on device."""
  run = builder.build(config)
  builder.compile_steps(run)
  host = next(builder.train_iterator(run))  # the real batch layout (keys, dtypes)
  rng = np.random.default_rng(0)
  vocab = run.model.vocab_size
  for key in (run.task.input_key, run.task.target_key):
    host[key] = rng.integers(0, vocab, host[key].shape).astype(host[key].dtype)
  return jax_step_runner(run.backend, run.backend.init_state(run.init_fn),
                         run.backend.put_batch(host)), run


def main(argv):
  del argv
  path, _, arg = config_flags.get_config_filename(flags.FLAGS["config"]).partition(":")
  config = config_lib.finalize(_CONFIG.value, path, arg or None)
  runners, info = {}, {}
  if _ONLY.value != "torch":
    runners["jax"], run = jax_runner(config)
    model = run.model
    info = dict(vocab_size=model.vocab_size, block_size=model.block_size,
                n_layer=model.num_layers, n_head=model.num_heads, n_embd=model.embed_dim,
                bias=model.bias, batch=config.batch_size)
  else:
    m = config.model
    info = dict(vocab_size=m.vocab_size or 65, block_size=m.block_size, n_layer=m.num_layers,
                n_head=m.num_heads, n_embd=m.embed_dim, bias=m.bias, batch=config.batch_size)
  if _ONLY.value != "jax":
    o = config.optimizer
    runners["torch"] = nanogpt_runner(**info, lr=o.lr, betas=(o.b1, o.b2),
                                      weight_decay=o.weight_decay, grad_clip=o.clip_norm)
  steps = _STEPS.value
  times = time_interleaved(runners, steps=steps, repeats=_REPEATS.value)
  result = {f"{name}_ms_per_iter": round(1e3 * statistics.median(t) / steps, 2)
            for name, t in times.items()}
  result.update({f"{name}_ms_per_iter_all": [round(1e3 * s / steps, 2) for s in t]
                 for name, t in times.items()})
  if "torch" in runners:
    result["torch_num_threads"] = import_torch(_TOOL).get_num_threads()
  result.update(experiment=config.experiment, model=info, steps=steps, repeats=_REPEATS.value,
                jax_backend=jax.default_backend(), xla_flags=xla_flags.current())
  print(json.dumps(result), flush=True)


if __name__ == "__main__":
  app.run(main)
