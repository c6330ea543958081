"""Object detection on scenes of Fashion-MNIST objects: CenterNet vs connected components.

Data: `fashion_mnist_scenes` (research/data/vision/scenes.py): 64x64 canvases
with 1-6 real Fashion-MNIST objects of 16-40 pixels, boxes around their
visible pixels; 20,000 training and 1,000 validation scenes from disjoint
Fashion-MNIST training images, 1,000 fixed test scenes from its test images.
Model: CenterNet ("Objects as Points", Zhou et al. 2019) on a small U-shaped
backbone at output stride 4 (research/models/detector.py), trained with the
paper's focal + L1 size/offset loss (task 'centernet'); decoding keeps 3x3
heatmap peaks, top 100, then class-wise NMS at IoU 0.5.
Metric: COCO mAP@[.5:.95] and mAP@0.5 with pycocotools; the checkpoint is
chosen on validation mAP@0.5, the test scenes are scored once, at the end.
Reference: none published (the scenes are synthetic); the yardstick is the
same-run baseline on the same test scenes: connected components of the
thresholded image as boxes, scored by area, classed as the training objects'
most frequent class ('cc_majority') or by the nearest class-mean crop
('cc_nearest_mean').

  python -m tools.train --config=experiments/vision/scenes_detection.py:centernet \
    --workdir=runs/scenes_det
"""

from research.core import smoke
from research.core.config import ConfigDict, base_config, eval_config, parse_arg

VARIANTS = {
  "centernet": dict(
    model=dict(name="centernet", features=(16, 32, 64), head_features=32),
    tiny=dict(features=(4, 8, 8), head_features=8),
  ),
}


def get_config(arg=None):
  arg = parse_arg(arg, variants=tuple(VARIANTS), smoke=False, epochs=5.0)
  v = VARIANTS[arg.variant]
  c = base_config()
  c.data.name = "fashion_mnist_scenes"
  c.data.options = ConfigDict(dict(objects="fashion_mnist"))
  c.data.pp_train = "value_range(0, 1)"
  c.data.pp_eval = "value_range(0, 1)"
  c.model = ConfigDict(dict(v["model"], num_classes=10))
  c.task = ConfigDict(dict(name="centernet", num_classes=10))
  c.batch_size = 64
  c.eval_batch_size = 250
  c.total_epochs = arg.epochs
  c.optimizer.name = "adam"
  c.optimizer.lr = 2e-3
  c.schedule.name = "cosine"
  c.schedule.warmup_epochs = 0.2
  c.log_every_steps = 50
  # The evaluator's settings: 3x3 peaks, top 100 (COCO's per-image cap), NMS at 0.5.
  detection = dict(max_detections=100, score_threshold=0.01, nms_iou=0.5)
  c.evals.val = eval_config("detection", "validation", every_epochs=1, **detection)
  c.evals.test = eval_config("detection", "test", **detection)
  c.ckpt.every_epochs = 1
  c.ckpt.best_metric, c.ckpt.best_mode = "val/mAP50", "max"
  c.baselines.cc_majority = dict(type="connected_components", split="test", classifier="majority")
  c.baselines.cc_nearest_mean = dict(
    type="connected_components", split="test", classifier="nearest_mean"
  )
  c.references = ()  # synthetic scenes: no published number applies (see the baselines)
  if arg.smoke:
    smoke.shrink(c, model=v["tiny"], eval_batch_size=16)
    c.data.options.update(train_scenes=64, validation_scenes=16, test_scenes=16)
  return c
