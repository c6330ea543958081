"""Evaluators: objects built from config that score a model on one split.

big_vision habit: the trainer knows nothing about metrics. It hands every
evaluator a `predict_fn` and writes whatever scalars and artifacts come back.

  evaluator = EVALUATORS['classification'](name='test', batches_fn=..., num_classes=10)
  scalars, artifacts = evaluator.run(predict_fn)
  # scalars['test/accuracy'], artifacts['test/confusion_matrix']

One module per kind of output (`base` says what every evaluator is); the
metric functions they call live beside this package in `research.metrics`.
"""

from __future__ import annotations

from research.core.registry import Registry
from research.metrics.evaluators.base import Evaluator, PredictFn, to_host
from research.metrics.evaluators.classification import ClassificationEvaluator
from research.metrics.evaluators.decoded_text import DecodedTextEvaluator
from research.metrics.evaluators.detection import DetectionEvaluator
from research.metrics.evaluators.finance import (
  CreditEvaluator,
  IntegratedGradientsEvaluator,
  MarketRiskEvaluator,
)
from research.metrics.evaluators.generative import GenerativeEvaluator
from research.metrics.evaluators.language import LanguageModelEvaluator
from research.metrics.evaluators.recsys import RankingEvaluator, RatingEvaluator
from research.metrics.evaluators.segmentation import SegmentationEvaluator

__all__ = [
  "EVALUATORS",
  "ClassificationEvaluator",
  "CreditEvaluator",
  "DecodedTextEvaluator",
  "DetectionEvaluator",
  "Evaluator",
  "GenerativeEvaluator",
  "IntegratedGradientsEvaluator",
  "LanguageModelEvaluator",
  "MarketRiskEvaluator",
  "PredictFn",
  "RankingEvaluator",
  "RatingEvaluator",
  "SegmentationEvaluator",
  "check_evaluator_type",
  "to_host",
]

# Explicit registry: config names an evaluator type by one of these keys.
EVALUATORS: Registry[type] = Registry(
  "evaluator type",
  "config.evals.<name>.type",
  {
    "classification": ClassificationEvaluator,
    "language_model": LanguageModelEvaluator,
    "rating": RatingEvaluator,
    "ranking": RankingEvaluator,
    # Vision: per-pixel labels (mIoU, pixel accuracy).
    "segmentation": SegmentationEvaluator,
    # Translation, summarization: decode, then sacreBLEU or ROUGE on the text.
    "decoded_text": DecodedTextEvaluator,
    # Finance risk.
    "credit": CreditEvaluator,
    "market_risk": MarketRiskEvaluator,
    "integrated_gradients": IntegratedGradientsEvaluator,
    # Detection: CenterNet decoding + class-wise NMS, COCO mAP (pycocotools).
    "detection": DetectionEvaluator,
    # Generative models: FID / precision / recall in a trained classifier's features.
    "generative": GenerativeEvaluator,
  },
)


def check_evaluator_type(type_name: str, eval_name: str | None = None) -> None:
  """Raises ValueError naming the valid types if `type_name` is unknown (and the
  field `config.evals.<eval_name>.type` when `eval_name` is given)."""
  EVALUATORS.check(type_name, field=eval_name and f"config.evals.{eval_name}.type")
