"""Optimizers and learning-rate schedules built from config through optax.

Config shape (`config.optimizer`, `config.schedule`):

  optimizer = dict(name='adamw', lr=1e-3, b1=0.9, b2=0.999, eps=1e-8,
                   momentum=0.9, nesterov=False, weight_decay=0.0,
                   decay_mask='no_bias_or_norm', clip_norm=None, accum_steps=1,
                   groups=None)
  schedule  = dict(name='cosine', warmup_steps=..., end_factor=0.0,
                   boundaries=(...) in fractions of training, decay_factor=0.1)

Durations inside `schedule` (warmup) are resolved to steps by the caller.

Parameter groups (`optimizer.groups`): one optimizer per top-level parameter
subtree, e.g. a GAN's two players,

  groups = dict(generator=dict(lr=2e-4, b1=0.5), discriminator=dict(lr=2e-4, b1=0.5))

Each group's settings override the top-level ones (any key but `groups` and
`accum_steps`, which stay global); its learning rate follows the run's
schedule scaled by `group lr / optimizer.lr`. Every top-level key of the
parameters must be a group (`optax.multi_transform`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import traverse_util

OPTIMIZERS = ("sgd", "momentum", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "linear", "step")
DECAY_MASKS = ("all", "no_bias_or_norm")


def check(optimizer: Mapping[str, Any], schedule: Mapping[str, Any]) -> None:
  """Validates names when the config loads (no jax work)."""
  for name, group in _groups(optimizer).items():
    if not isinstance(group, Mapping):
      raise ValueError(f"optimizer.groups.{name} must be a dict of optimizer settings.")
    bad = sorted(set(group) - (set(optimizer) - {"groups", "accum_steps"}))
    if bad:
      raise ValueError(
        f"optimizer.groups.{name} has unknown key(s) {bad}; a group may override: "
        f"{', '.join(sorted(set(optimizer) - {'groups', 'accum_steps'}))}."
      )
    sub = _group_settings(optimizer, group)
    if not float(optimizer["lr"]):
      raise ValueError("optimizer.lr must be > 0 with optimizer.groups (group lrs scale it).")
    check(sub, schedule)
  if optimizer["name"] not in OPTIMIZERS:
    raise ValueError(f"Unknown optimizer {optimizer['name']!r}; valid: {', '.join(OPTIMIZERS)}.")
  if schedule["name"] not in SCHEDULES:
    raise ValueError(f"Unknown schedule {schedule['name']!r}; valid: {', '.join(SCHEDULES)}.")
  mask = optimizer.get("decay_mask", "all")
  if mask not in DECAY_MASKS:
    raise ValueError(f"Unknown optimizer.decay_mask {mask!r}; valid: {', '.join(DECAY_MASKS)}.")
  accum = optimizer.get("accum_steps", 1)
  if accum is None or int(accum) < 1:
    raise ValueError(f"optimizer.accum_steps must be >= 1, got {accum}.")
  if optimizer["name"] == "adam" and optimizer.get("weight_decay"):
    raise ValueError(
      "optimizer.name='adam' has no weight decay; use 'adamw' (decoupled) or set "
      "optimizer.weight_decay=0."
    )


def make_schedule(
  schedule: Mapping[str, Any], *, base_lr: float, total_steps: int, warmup_steps: int
) -> optax.Schedule:
  """Learning rate per optimizer step: linear warmup, then the named decay."""
  name = schedule["name"]
  decay_steps = max(total_steps - warmup_steps, 1)
  end = base_lr * float(schedule.get("end_factor", 0.0) or 0.0)
  if name == "constant":
    decay = optax.constant_schedule(base_lr)
  elif name == "cosine":
    decay = optax.cosine_decay_schedule(
      base_lr, decay_steps, alpha=end / base_lr if base_lr else 0.0
    )
  elif name == "linear":
    decay = optax.linear_schedule(base_lr, end, decay_steps)
  elif name == "step":
    # Boundaries are fractions of the whole run, so a config keeps its shape
    # when `total_steps` changes (e.g. in smoke mode).
    boundaries = schedule.get("boundaries", (0.5, 0.75))
    factor = float(schedule.get("decay_factor", 0.1))
    decay = optax.piecewise_constant_schedule(
      base_lr, {max(int(b * total_steps) - warmup_steps, 1): factor for b in boundaries}
    )
  else:
    raise ValueError(f"Unknown schedule {name!r}; valid: {', '.join(SCHEDULES)}.")
  if warmup_steps <= 0:
    return decay
  warmup = optax.linear_schedule(0.0, base_lr, warmup_steps)
  return optax.join_schedules([warmup, decay], [warmup_steps])


def _decay_mask(kind: str) -> Callable[[Any], Any] | None:
  """Which parameters get weight decay: 'all', or kernels/embeddings only."""
  if kind == "all":
    return None

  def mask(params):
    flat = traverse_util.flatten_dict(params)
    # Biases and normalisation scales/offsets are 1-D; decaying them hurts
    # (AdamW paper, BERT/GPT practice), so only >= 2-D weights decay.
    return traverse_util.unflatten_dict({k: jnp.ndim(v) >= 2 for k, v in flat.items()})

  return mask


def _groups(optimizer: Mapping[str, Any]) -> dict[str, Any]:
  """optimizer.groups as plain dicts ({} when absent; ConfigDicts are converted)."""
  groups = optimizer.get("groups")
  if not groups:
    return {}
  groups = groups.to_dict() if hasattr(groups, "to_dict") else dict(groups)
  return {k: g.to_dict() if hasattr(g, "to_dict") else g for k, g in groups.items()}


def _group_settings(optimizer: Mapping[str, Any], group: Mapping[str, Any]) -> dict[str, Any]:
  """The top-level optimizer settings with `group`'s overrides (no groups, no accumulation)."""
  items = optimizer.to_dict() if hasattr(optimizer, "to_dict") else dict(optimizer)
  base = {k: v for k, v in items.items() if k not in ("groups", "accum_steps")}
  return {**base, **dict(group)}


def _group_labels(names):
  """params -> the same tree with each leaf labelled by its top-level key."""

  def labels(params):
    missing = sorted(set(params) - set(names))
    if missing:
      raise ValueError(
        f"Parameters {missing} are in no optimizer group; optimizer.groups has "
        f"{sorted(names)} (every top-level parameter key needs one)."
      )
    return {k: jax.tree.map(lambda _, k=k: k, v) for k, v in params.items()}

  return labels


def make_optimizer(
  optimizer: Mapping[str, Any], lr: optax.Schedule
) -> optax.GradientTransformation:
  """The optax chain: optional clipping, the optimizer, optional accumulation.

  Gradient accumulation wraps everything in `optax.MultiSteps`, so `k`
  micro-batches make one update and the schedule counts real updates. With
  `optimizer.groups`, each top-level parameter subtree gets its own chain
  (`optax.multi_transform`), inside the accumulation.
  """
  groups = _groups(optimizer)
  if groups:
    base_lr = float(optimizer["lr"])
    transforms = {}
    for name, group in groups.items():
      sub = _group_settings(optimizer, group)
      ratio = float(sub["lr"]) / base_lr
      schedule = lr if ratio == 1.0 else (lambda count, r=ratio: lr(count) * r)
      transforms[name] = _single_optimizer(sub, schedule)
    tx = optax.multi_transform(transforms, _group_labels(tuple(groups)))
  else:
    tx = _single_optimizer(optimizer, lr)
  accum = int(optimizer.get("accum_steps", 1) or 1)
  if accum > 1:
    tx = optax.MultiSteps(tx, every_k_schedule=accum)
  return tx


def _single_optimizer(
  optimizer: Mapping[str, Any], lr: optax.Schedule
) -> optax.GradientTransformation:
  """Clipping (optional), coupled L2 decay (sgd/momentum) and the named optimizer."""
  name = optimizer["name"]
  wd = float(optimizer.get("weight_decay", 0.0) or 0.0)
  mask = _decay_mask(optimizer.get("decay_mask", "all"))
  if name == "sgd":
    opt = optax.sgd(lr)
  elif name == "momentum":
    opt = optax.sgd(
      lr,
      momentum=float(optimizer.get("momentum", 0.9)),
      nesterov=bool(optimizer.get("nesterov", False)),
    )
  elif name == "adam":
    opt = optax.adam(
      lr, b1=optimizer.get("b1", 0.9), b2=optimizer.get("b2", 0.999), eps=optimizer.get("eps", 1e-8)
    )
  elif name == "adamw":
    opt = optax.adamw(
      lr,
      b1=optimizer.get("b1", 0.9),
      b2=optimizer.get("b2", 0.999),
      eps=optimizer.get("eps", 1e-8),
      weight_decay=wd,
      mask=mask,
    )
  else:
    raise ValueError(f"Unknown optimizer {name!r}; valid: {', '.join(OPTIMIZERS)}.")
  parts = []
  clip = optimizer.get("clip_norm", None)
  if clip:
    parts.append(optax.clip_by_global_norm(float(clip)))
  if wd and name in ("sgd", "momentum"):
    # Coupled L2 decay (classic SGD weight decay), applied before momentum.
    parts.append(optax.add_decayed_weights(wd, mask=mask))
  parts.append(opt)
  return optax.chain(*parts) if len(parts) > 1 else opt
