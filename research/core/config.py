"""Configs: `ml_collections` `get_config(arg)` functions, locked and validated on load.

Every experiment module builds on `base_config()`, so every run has the same
keys and an override of a key that does not exist fails at once. `validate`
checks every name (data set, split, model, optimizer, schedule, evaluator,
preprocessing op) when the config is built, before any data is read or any
computation is compiled.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import os
import types
from typing import Any

from ml_collections import ConfigDict
from ml_collections.config_dict import placeholder


def parse_arg(arg: str | None, *, variants: tuple[str, ...] = (), **defaults) -> ConfigDict:
  """Parses a config argument like `"cnn,smoke=True"` (big_vision habit).

  The first bare word is the variant (must be one of `variants` when given);
  `key=value` pairs override `defaults` and are converted to the default's type.

  Returns:
    ConfigDict(variant=..., **defaults) with overrides applied.
  """
  result = ConfigDict(dict(variant=variants[0] if variants else "", **defaults))
  for part in filter(None, (p.strip() for p in (arg or "").split(","))):
    if "=" not in part:
      if variants and part not in variants:
        raise ValueError(f"Unknown variant {part!r}; valid: {', '.join(variants)}.")
      result.variant = part
      continue
    key, value = (s.strip() for s in part.split("=", 1))
    if key not in defaults:
      raise ValueError(
        f"Unknown config argument {key!r} in {arg!r}; valid: "
        f"{', '.join(sorted(defaults)) or '(none)'}."
      )
    default = defaults[key]
    if isinstance(default, bool):
      if value.lower() not in ("true", "false", "1", "0"):
        raise ValueError(f"Config argument {key!r} must be a boolean, got {value!r}.")
      result[key] = value.lower() in ("true", "1")
    else:
      result[key] = type(default)(value) if default is not None else value
  return result


def base_config() -> ConfigDict:
  """Every key the shared loop reads, with defaults. Experiments override values."""
  c = ConfigDict()
  c.experiment = ""  # filled by `load`: 'vision/digits:cnn'
  c.seed = 0
  c.parallel = "jit"  # 'jit' (Mesh + NamedSharding) or 'pmap'
  # XLA host devices when the run is CPU-only (research/platforms/xla_flags.py): 2 runs
  # one data-parallel half-batch per core. Ignored on GPU/TPU and when
  # XLA_FLAGS already sets --xla_force_host_platform_device_count.
  c.cpu_host_devices = 1
  # How gradients are averaged across devices: 'xla' (as JAX/XLA place them,
  # one all-reduce operand per leaf) or 'flat' (one raveled buffer: faster on
  # several CPU host devices, with pmap's per-device loss semantics; see
  # research.train.parallel.wants_flat_allreduce before turning it on).
  c.grad_allreduce = "xla"
  # Training steps per compiled call (Keras' steps_per_execution): n > 1 runs
  # n steps in one `lax.scan`, one dispatch and one host round trip per n
  # steps; for steps of a few ms, where launching a step costs as much as
  # running it. Same updates as n single steps (research.train.loop).
  c.steps_per_call = 1
  # The device mesh (research.train.sharding): the batch is split over data x
  # fsdp, large state leaves over fsdp, heads / MLP / embedding rows over
  # tensor. -1 takes the devices the other axes leave.
  c.mesh = ConfigDict(dict(data=-1, fsdp=1, tensor=1))
  # 'float32' | 'bfloat16' (compute; float32 master weights) | 'auto'
  # (bfloat16 on GPU/TPU, float32 on CPU); research.train.precision.
  c.precision = "float32"
  # Rematerialisation of Transformer blocks: 'none' | 'block' | 'full'.
  c.remat = "none"
  # A jax.profiler trace of `num_steps` steps from `start_step` into
  # <workdir>/profile/ (TensorBoard's profile plugin or xprof open it).
  c.profile = ConfigDict(dict(start_step=placeholder(int), num_steps=5))
  c.task = ConfigDict(
    dict(
      name="classification",
      num_classes=10,
      input_key="image",
      label_key="label",
      label_smoothing=0.0,
    )
  )
  c.data = ConfigDict(
    dict(
      name="",
      data_dir=placeholder(str),
      train_split="train",
      pp_train="",
      pp_eval="",
      num_threads=1,
      prefetch=2,
      options=ConfigDict(),
      extra_train_splits=(),  # e.g. ('unsupervised',): used when present
      format="examples",  # or 'lm_windows' (see research/data/build.py)
      tokenizer=ConfigDict(),  # e.g. {'type': 'char'}; empty = no tokenizer
      tabular=ConfigDict(),  # format 'tabular': {'numeric': 'standardize'|'quantile'|'woe', 'min_count': 1}
      block_size=placeholder(int),  # language-model window length
      # Carve a 'validation' split out of train_split (format 'examples', data
      # sets without their own): this share, stratified by label, seeded.
      validation_fraction=placeholder(float),
      validation_seed=0,
    )
  )
  c.model = ConfigDict(dict(name=""))  # plus the model's own fields
  c.batch_size = 128  # global, over all devices and processes
  c.eval_batch_size = 500
  # Durations: `<x>_steps` or `<x>_epochs`; steps win when both are set (see
  # research/train/durations.py). `placeholder(type)` keeps a None default
  # overridable from the command line.
  c.total_steps = placeholder(int)
  c.total_epochs = placeholder(float)
  c.optimizer = ConfigDict(
    dict(
      name="adam",
      lr=1e-3,
      b1=0.9,
      b2=0.999,
      eps=1e-8,
      momentum=0.9,
      nesterov=False,
      weight_decay=0.0,
      decay_mask="no_bias_or_norm",
      clip_norm=placeholder(float),
      accum_steps=1,
    )
  )
  c.schedule = ConfigDict(
    dict(
      name="constant",
      warmup_steps=placeholder(int),
      warmup_epochs=placeholder(float),
      end_factor=0.0,
      boundaries=(0.5, 0.75),
      decay_factor=0.1,
    )
  )
  c.log_every_steps = 50
  c.evals = ConfigDict()  # name -> dict(type=..., split=..., every_steps|every_epochs)
  c.ckpt = ConfigDict(
    dict(
      every_steps=placeholder(int),
      every_epochs=placeholder(float),
      keep=2,
      best_metric=placeholder(str),
      best_mode="max",
      async_save=True,
    )
  )
  c.ckpt.every_epochs = 1.0
  # Stop after `patience` evaluations of `metric` (a validation eval's, never
  # a test one) without an improvement > min_delta; the best checkpoint
  # (ckpt.best_metric) is kept. No metric = off. research/train/early_stopping.py.
  c.early_stopping = ConfigDict(
    dict(metric=placeholder(str), mode="min", patience=3, min_delta=0.0)
  )
  # Transfer learning: copy parameter subtrees from another run's checkpoint
  # on a fresh start (see research/train/init_from.py).
  # More than one source run (NeuMF from GMF + MLP): `sources`, a tuple of
  # dict(workdir=..., checkpoint='best', mapping=(...)), applied after `workdir`'s.
  c.init_from = ConfigDict(
    dict(workdir=placeholder(str), checkpoint="best", mapping=(), sources=())
  )
  c.progress = True
  c.references = ()  # published results: dicts(metric, value, source, ...)
  # Baselines scored in the same run on the same split (research/baselines):
  # name -> dict(type=..., split=<an eval split>, **kwargs).
  c.baselines = ConfigDict()
  return c


def eval_config(type: str = "classification", split: str = "test", **kw) -> ConfigDict:
  every_steps, every_epochs = kw.pop("every_steps", None), kw.pop("every_epochs", None)
  c = ConfigDict(
    dict(
      type=type,
      split=split,
      every_steps=placeholder(int),
      every_epochs=placeholder(float),
      topk=kw.pop("topk", (5,)),
      **kw,
    )
  )
  c.every_steps, c.every_epochs = every_steps, every_epochs
  return c


def select_on_validation(
  c: ConfigDict, metric: str, mode: str = "max", *, fraction: float | None = 0.1, like: str = "test"
) -> None:
  """The selection protocol of every experiment: nothing is chosen on test.

  `c.evals.val` becomes a copy of `c.evals[like]` on the 'validation' split and
  takes over its cadence; `c.evals[like]` then runs once, at the end, on the
  checkpoint chosen by `val/<metric>` (`mode` 'max' or 'min'). `fraction`
  carves the validation split out of the training split (stratified, seeded;
  `research.data.holdout`); None where the data set brings its own.
  """
  val = copy.deepcopy(c.evals[like])
  val.split = "validation"
  c.evals.val = val
  c.evals[like].every_steps, c.evals[like].every_epochs = None, None
  if fraction is not None:
    c.data.validation_fraction = fraction
  c.ckpt.best_metric, c.ckpt.best_mode = f"val/{metric}", mode


def validate(config: ConfigDict) -> None:
  """Checks every name in the config; raises ValueError naming the bad key."""
  # Imported here so `research.core.config` stays importable without jax work.
  from research import baselines
  from research.core import tasks
  from research.data import build as data_build
  from research.data import holdout, ops, registry
  from research.metrics import evaluators
  from research.models import check_model_config
  from research.train import early_stopping, optim, parallel, precision, sharding

  if not config.data.name:
    raise ValueError("config.data.name is empty; set the data set to train on.")
  splits = (
    [config.data.train_split]
    + list(config.data.extra_train_splits)
    + [e.split for e in config.evals.values()]
  )
  if data_build.carves_validation(config.data):
    splits = [s for s in splits if s != holdout.VALIDATION]
  registry.check_dataset(config.data.name, splits)
  data_build.check(config.data)
  for key in ("pp_train", "pp_eval"):
    try:
      ops.check(config.data[key])
    except ValueError as e:
      raise ValueError(f"config.data.{key}: {e}") from None
  model = config.model.to_dict()
  check_model_config(model.pop("name"), model)
  tasks.check_task(config.task)
  optim.check(config.optimizer, config.schedule)
  if config.parallel not in parallel.BACKENDS:
    raise ValueError(
      f"Unknown config.parallel {config.parallel!r}; valid: {', '.join(parallel.BACKENDS)}."
    )
  parallel.check_grad_allreduce(config.grad_allreduce)
  sharding.check_mesh_config(config.mesh.to_dict())
  precision.check(config)
  if config.profile.start_step is not None and (
    config.profile.start_step < 0 or config.profile.num_steps < 1
  ):
    raise ValueError(
      f"config.profile needs start_step >= 0 and num_steps >= 1, got {config.profile.to_dict()}."
    )
  parallel.check_steps_per_call(config.steps_per_call)
  if not isinstance(config.cpu_host_devices, int) or config.cpu_host_devices < 1:
    raise ValueError(
      f"config.cpu_host_devices must be an integer >= 1, got {config.cpu_host_devices!r}."
    )
  for key in (
    "batch_size",
    "eval_batch_size",
  ):  # else found only when training (or its final eval) runs
    if isinstance(config[key], bool) or not isinstance(config[key], int) or config[key] < 1:
      raise ValueError(f"config.{key} must be an integer >= 1, got {config[key]!r}.")
  if config.total_steps is None and config.total_epochs is None:
    raise ValueError("Set config.total_steps or config.total_epochs (steps win if both are set).")
  for ev in config.evals.values():
    evaluators.check_evaluator_type(ev.type)
  for name, b in config.baselines.items():
    baselines.check_baseline_config(name, b, [e.split for e in config.evals.values()])
  early_stopping.check(config)
  best = config.ckpt.best_metric
  if best:
    prefix = best.split("/", 1)[0]
    if prefix not in config.evals:
      raise ValueError(
        f"config.ckpt.best_metric={best!r} names eval {prefix!r}, but "
        f"config.evals has: {', '.join(config.evals) or '(none)'}."
      )
    check_not_test(f"config.ckpt.best_metric={best!r}", prefix, config.evals[prefix].split)


def is_test_eval(name: str, split: str) -> bool:
  """Whether an eval reads a test split (by its split or by its name)."""
  return name.startswith("test") or split.startswith("test")


def check_not_test(what: str, eval_name: str, split: str) -> None:
  """ValueError when a selection knob (`what`) reads a test eval: nothing may be
  chosen on the test split, else the test metrics stop being an estimate."""
  if is_test_eval(eval_name, split):
    raise ValueError(
      f"{what} selects on eval {eval_name!r} (split {split!r}), a test split; "
      "select on a validation eval instead (e.g. 'val/...' on split "
      "'validation')."
    )


def load(spec: str, overrides: dict[str, Any] | None = None) -> ConfigDict:
  """Loads `"experiments/vision/digits.py:cnn,smoke=True"` (or `"vision/digits:cnn"`).

  For notebooks and tests; `tools/train.py` uses ml_collections' config flags,
  which call the same `get_config(arg)`.
  """
  path, _, arg = spec.partition(":")
  module = import_experiment(path)
  config = module.get_config(arg or None)
  for key, value in (overrides or {}).items():
    set_key(config, key, value)
  return finalize(config, path, arg)


def finalize(config: ConfigDict, path: str, arg: str | None) -> ConfigDict:
  """Names the experiment, locks the config and validates it."""
  name = _experiment_name(path)
  with config.unlocked():
    config.experiment = f"{name}:{arg}" if arg else name
  config.lock()
  validate(config)
  return config


def finalize_flag(config: ConfigDict, flag_name: str = "config") -> ConfigDict:
  """`finalize` for an entry point's `config_flags.DEFINE_config_file` flag.

  The flag's value is "path.py:arg"; ml_collections keeps the path and the
  overrides, and the arg is kept here so the workdir records the full
  experiment. Also asks for the config's XLA host devices
  (`cpu_host_devices`), which must happen before JAX starts a backend.
  """
  from absl import flags
  from ml_collections import config_flags

  from research.platforms import xla_flags

  path, _, arg = config_flags.get_config_filename(flags.FLAGS[flag_name]).partition(":")
  config = finalize(config, path, arg or None)
  xla_flags.set_host_devices(config.cpu_host_devices)
  return config


def _experiment_name(path: str) -> str:
  path = path.removesuffix(".py")
  parts = os.path.normpath(path).split(os.sep)
  if "experiments" in parts:
    parts = parts[parts.index("experiments") + 1 :]
  return "/".join(parts)


def import_experiment(path: str) -> types.ModuleType:
  """The experiment module of `path` (a .py file, or "vision/digits" under experiments/).

  A file inside a folder named `experiments` may import its siblings as
  `from experiments.<domain> import x`. In a checkout the root is on sys.path
  and that just works; with `research` installed and the experiments folder
  elsewhere (a copy, the user's own) no `experiments` package is importable,
  so that folder is registered as the package `experiments` first. An
  importable `experiments` package is left as it is.
  """
  import sys  # only here: registers the package

  if path.endswith(".py") and os.path.exists(path):
    root = os.path.dirname(os.path.abspath(path))
    while os.path.basename(root) not in ("experiments", "") and root != os.path.dirname(root):
      root = os.path.dirname(root)
    if os.path.basename(root) == "experiments" and importlib.util.find_spec("experiments") is None:
      init = os.path.join(root, "__init__.py")
      package_spec = (
        importlib.util.spec_from_file_location(
          "experiments", init, submodule_search_locations=[root]
        )
        if os.path.exists(init)
        else importlib.util.spec_from_loader("experiments", None, is_package=True)
      )
      if package_spec is None:  # not for a .py file or a loader-less package
        raise ValueError(f"Cannot register {root} as the package 'experiments'.")
      package_spec.submodule_search_locations = [root]
      package = importlib.util.module_from_spec(package_spec)
      sys.modules["experiments"] = package
      if package_spec.loader is not None:
        package_spec.loader.exec_module(package)
    spec = importlib.util.spec_from_file_location(_experiment_name(path).replace("/", "."), path)
    if spec is None or spec.loader is None:
      raise ValueError(f"Cannot import experiment file {path!r}.")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
  name = "experiments." + _experiment_name(path).replace("/", ".")
  try:
    return importlib.import_module(name)
  except ModuleNotFoundError as e:
    raise ValueError(
      f"No experiment {path!r} (tried file {path!r} and module {name!r}); "
      "experiments live in experiments/<domain>/<name>.py."
    ) from e


def set_key(config: ConfigDict, dotted: str, value: Any) -> None:
  """config[dotted] = value; KeyError naming the valid keys where `dotted` is not a key."""
  *parents, leaf = dotted.split(".")
  node = config
  for p in parents:
    if p not in node:
      raise KeyError(f"Unknown config key {dotted!r}: {p!r} is not in {sorted(node.keys())}.")
    node = node[p]
  if leaf not in node:
    raise KeyError(f"Unknown config key {dotted!r}; valid keys here: {sorted(node.keys())}.")
  node[leaf] = value
