"""Model zoo: flax.linen classifiers behind one interface.

model = build_model(name, axis_name=None, **fields)
logits = model.apply(variables, x, train=bool, rngs={'dropout': key},
                     mutable=['batch_stats'])  # mutable only for BatchNorm models in train
# x: float [batch, ...]; logits: float32 [batch, num_classes].
"""

from research.models.registry import MODELS, build_model, check_model_config, model_fields

__all__ = ["MODELS", "build_model", "check_model_config", "model_fields"]
