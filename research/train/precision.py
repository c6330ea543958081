"""Mixed precision and rematerialisation as config policies (config.precision, config.remat).

config.precision:
  'float32'   everything in float32.
  'bfloat16'  compute (activations, matmul inputs) in bfloat16; parameters and
              optimizer state stay float32 (the master weights the update
              writes to); losses, softmax and norm statistics accumulate in
              float32 (tasks cast logits, attention computes its logits in
              float32, flax's LayerNorm reduces in float32).
  'auto'      bfloat16 on GPU/TPU, float32 on CPU (where bfloat16 matmuls are
              not faster): what the Transformer configs use.

Both reach the model as its own fields (`dtype`, `remat`), so a model that has
no such field cannot silently ignore them: `check` refuses the combination.
"""

from __future__ import annotations

from typing import Any

PRECISIONS = ("float32", "bfloat16", "auto")


def resolve(precision: str, platform: str | None = None) -> str:
  """'auto' -> 'bfloat16' on gpu/tpu, 'float32' on cpu; others unchanged."""
  if precision not in PRECISIONS:
    raise ValueError(f"Unknown config.precision {precision!r}; valid: {', '.join(PRECISIONS)}.")
  if precision != "auto":
    return precision
  if platform is None:
    import jax

    platform = jax.default_backend()
  return "float32" if platform == "cpu" else "bfloat16"


def check(config: Any) -> None:
  """Refuses a precision or remat the model cannot honour (at config load)."""
  from research.models import model_fields
  from research.models.transformer import REMAT_MODES

  fields = model_fields(config.model.name)
  if config.precision not in PRECISIONS:
    raise ValueError(
      f"Unknown config.precision {config.precision!r}; valid: {', '.join(PRECISIONS)}."
    )
  if config.precision != "float32" and "dtype" not in fields:
    raise ValueError(
      f"config.precision={config.precision!r}: model {config.model.name!r} has "
      "no compute dtype; use precision='float32'."
    )
  if config.remat not in REMAT_MODES:
    raise ValueError(f"Unknown config.remat {config.remat!r}; valid: {', '.join(REMAT_MODES)}.")
  if config.remat != "none" and "remat" not in fields:
    raise ValueError(
      f"config.remat={config.remat!r}: model {config.model.name!r} has no "
      "rematerialised blocks; use remat='none'."
    )


def model_fields(config: Any, model_name: str) -> dict[str, Any]:
  """The model fields config.precision / config.remat set (only those the model has;
  a model config that names `dtype` itself keeps it)."""
  from research.models import model_fields as fields_of

  fields, out = fields_of(model_name), {}
  if "dtype" in fields and "dtype" not in config.model:
    out["dtype"] = resolve(config.precision)
  if "remat" in fields and "remat" not in config.model:
    out["remat"] = config.remat
  return out
