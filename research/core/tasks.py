"""Tasks: what the shared loop needs to know about a problem, and nothing else.

A task turns a batch into model inputs and turns model outputs plus the batch
into a scalar training loss and a few per-step metrics. The loop never looks
inside a batch itself, so it does not know which domain it runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from research.core.registry import Registry

# What `task.inputs(batch)` hands to `model.apply`: one array, or named arrays
# for models with several inputs (tables, seq2seq, gathered MLM, recsys). A
# subclass may narrow it (TabularClassificationTask always gives the dict).
ModelInput = jax.Array | dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class ClassificationTask:
  """Softmax classification.

  Batches hold `input_key` (e.g. images [batch, H, W, C]) and `label_key`
  (int [batch]). Model outputs are logits [batch, num_classes].

  Mixed batches (the `mixup` / `cutmix` ops) also hold `mix_label_key` (int
  [batch], the partner's label) and `mix_weight_key` (float [batch], w): the
  loss is then `w CE(label) + (1 - w) CE(label_mix)` per example, with label
  smoothing applied to each term. Accuracy is always against `label_key`.
  """

  num_classes: int
  input_key: str = "image"
  label_key: str = "label"
  label_smoothing: float = 0.0
  mix_label_key: str = "label_mix"
  mix_weight_key: str = "mix_weight"

  def inputs(self, batch: Mapping[str, jax.Array]) -> ModelInput:
    return batch[self.input_key]

  def loss(self, logits: jax.Array, batch: Mapping[str, jax.Array]):
    """Mean cross-entropy over the batch and per-step metrics.

    Returns:
      (loss [], {'loss': [], 'accuracy': []}) — means over the (local) batch.
    """
    labels = batch[self.label_key]
    targets = jax.nn.one_hot(labels, self.num_classes, dtype=jnp.float32)
    if self.mix_label_key in batch:
      if self.mix_weight_key not in batch:
        raise ValueError(
          f"Batch has {self.mix_label_key!r} but no {self.mix_weight_key!r}: a mixed batch "
          "needs both (the mixup and cutmix ops add them together)."
        )
      # Cross-entropy is linear in the target, so mixing the one-hot targets
      # is w CE(label) + (1 - w) CE(label_mix); smoothing (also linear) commutes.
      weight = batch[self.mix_weight_key].astype(jnp.float32)[:, None]
      partner = jax.nn.one_hot(batch[self.mix_label_key], self.num_classes, dtype=jnp.float32)
      targets = weight * targets + (1.0 - weight) * partner
    if self.label_smoothing:
      targets = optax.smooth_labels(targets, self.label_smoothing)
    loss = optax.softmax_cross_entropy(logits.astype(jnp.float32), targets).mean()
    accuracy = (jnp.argmax(logits, -1) == labels).mean()
    return loss, {"loss": loss, "accuracy": accuracy}


@dataclasses.dataclass(frozen=True)
class TokenPredictionTask:
  """Per-token cross-entropy: next-token language modelling ('lm') and masked
  language modelling ('mlm'; the weights select the masked positions).

  Batches hold `input_key` (int [batch, seq]), `target_key` (int [batch, seq])
  and optionally `weight_key` (float [batch, seq]; 0 = ignore). Model outputs
  are logits [batch, seq, vocab].
  """

  input_key: str = "inputs"
  target_key: str = "targets"
  weight_key: str = "weights"
  # MLM with gathered positions (mlm_mask(max_predictions=P)): the model gets
  # {'tokens': inputs, 'positions': [batch, P]} and targets/weights are [batch, P].
  positions_key: str | None = None
  # Label smoothing (Szegedy et al. 2016) of the training loss, e.g. 0.1 for
  # translation (Vaswani et al. 2017); 0 = plain cross-entropy. The reported
  # 'loss' is the smoothed one; evaluators score plain cross-entropy.
  label_smoothing: float = 0.0

  def inputs(self, batch: Mapping[str, jax.Array]) -> ModelInput:
    if self.positions_key:
      return {"tokens": batch[self.input_key], "positions": batch[self.positions_key]}
    return batch[self.input_key]

  def loss(self, logits: jax.Array, batch: Mapping[str, jax.Array]):
    """Mean cross-entropy over weighted tokens; metrics {'loss', 'accuracy'}."""
    targets = batch[self.target_key]
    weights = batch.get(self.weight_key)
    weights = (
      jnp.ones(targets.shape, jnp.float32) if weights is None else weights.astype(jnp.float32)
    )
    logits32 = logits.astype(jnp.float32)
    if self.label_smoothing:
      labels = optax.smooth_labels(
        jax.nn.one_hot(targets, logits.shape[-1], dtype=jnp.float32), self.label_smoothing
      )
      ce = optax.softmax_cross_entropy(logits32, labels)
    else:
      ce = optax.softmax_cross_entropy_with_integer_labels(logits32, targets)
    total = jnp.maximum(weights.sum(), 1e-8)
    loss = (ce * weights).sum() / total
    accuracy = ((jnp.argmax(logits, -1) == targets) * weights).sum() / total
    return loss, {"loss": loss, "accuracy": accuracy}


@dataclasses.dataclass(frozen=True)
class Seq2SeqTask(TokenPredictionTask):
  """Encoder-decoder: the model input is {'inputs': source [b, S],
  'decoder_inputs': shifted targets [b, T]}; loss as TokenPredictionTask."""

  decoder_input_key: str = "decoder_inputs"

  def inputs(self, batch):
    return {"inputs": batch[self.input_key], "decoder_inputs": batch[self.decoder_input_key]}


@dataclasses.dataclass(frozen=True)
class TabularClassificationTask(ClassificationTask):
  """Classification of table rows whose model input is several arrays.

  Batches hold each of `input_keys` (e.g. 'numeric' float [batch, F_num] and
  'categorical' int [batch, F_cat]) and `label_key`; the model gets
  {key: batch[key]}. Loss and metrics as ClassificationTask.
  """

  input_keys: tuple[str, ...] = ("numeric", "categorical")

  def inputs(self, batch: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    return {k: batch[k] for k in self.input_keys}


def split_forecast(outputs: jax.Array | np.ndarray):
  """Forecaster outputs [batch, 3] or [batch, 4] -> (mean, volatility, 1% quantile),
  each [batch] (jax arrays; the evaluators pass the collected numpy outputs).

  Columns: raw mean, raw volatility, raw tail multiple and, optionally, a
  positive scale (e.g. the input window's RiskMetrics volatility) that the
  mean and volatility are expressed in units of (1 when absent). The
  volatility is scale * exp(raw), so an untrained head (raw 0) forecasts the
  scale itself (RiskMetrics, for the EWMA-scaled forecasters) and training
  learns a multiplicative correction; the quantile is the mean minus a
  positive multiple of the volatility, so it sits below the mean and scales with the
  forecast volatility: the pinball loss only has to learn how fat the left
  tail is relative to it. The multiple is softplus(o) + 1.64, i.e. 2.33 (the
  Gaussian 1% point) at o = 0, so an untrained head starts from the Gaussian
  VaR rather than far inside it.
  """
  outputs = outputs.astype(jnp.float32)
  scale = outputs[:, 3] if outputs.shape[1] > 3 else 1.0
  mean = scale * outputs[:, 0]
  vol = scale * jnp.exp(jnp.clip(outputs[:, 1], -10.0, 10.0))
  quantile = mean - vol * (jax.nn.softplus(outputs[:, 2]) + 1.64)
  return mean, vol, quantile


@dataclasses.dataclass(frozen=True)
class RiskForecastTask:
  """Next-day return distribution: Gaussian NLL for mean and volatility plus a
  pinball (quantile) loss for the `quantile`-level return (VaR = -quantile).

  Batches hold `input_key` (float [batch, window, assets]) and `target_key`
  (float [batch], next-day return). Model outputs [batch, 3] or [batch, 4]
  (see `split_forecast`). The pinball term is divided by `quantile` so that it is on
  the scale of the NLL.
  """

  input_key: str = "inputs"
  target_key: str = "target"
  quantile: float = 0.01
  quantile_weight: float = 0.1

  def inputs(self, batch: Mapping[str, jax.Array]) -> jax.Array:
    return batch[self.input_key]

  def loss(self, outputs: jax.Array, batch: Mapping[str, jax.Array]):
    y = batch[self.target_key].astype(jnp.float32)
    mean, vol, q = split_forecast(outputs)
    nll = (0.5 * jnp.log(2 * jnp.pi) + jnp.log(vol) + 0.5 * jnp.square((y - mean) / vol)).mean()
    u = y - q
    pinball = jnp.maximum(self.quantile * u, (self.quantile - 1.0) * u).mean() / self.quantile
    loss = nll + self.quantile_weight * pinball
    return loss, {
      "loss": loss,
      "nll": nll,
      "pinball": pinball,
      "exceedance": (y < q).astype(jnp.float32).mean(),
    }


def _pick(batch: Mapping[str, jax.Array], keys) -> dict[str, jax.Array]:
  """The model input: the batch's `keys` that are present (evaluation batches
  of a retrieval model lack the training-only ones, e.g. 'item')."""
  return {k: batch[k] for k in keys if k in batch}


@dataclasses.dataclass(frozen=True)
class RatingTask:
  """Rating regression: mean squared error plus `reg` x the model's per-example
  L2 penalty (Funk-SVD-style regularisation of the parameters each rating uses).

  Batches hold 'user', 'item' (int [batch]) and `rating_key` (float [batch]).
  Model outputs: predictions [batch], or in training {'prediction', 'penalty'}.
  """

  input_keys: tuple = ("user", "item")
  rating_key: str = "rating"
  reg: float = 0.0

  def inputs(self, batch):
    return _pick(batch, self.input_keys)

  def loss(self, outputs, batch):
    """Returns (mse + reg * mean penalty, {'loss', 'mse', 'rmse'})."""
    if isinstance(outputs, Mapping):
      pred, penalty = outputs["prediction"], outputs.get("penalty")
    else:
      pred, penalty = outputs, None
    mse = jnp.mean((pred.astype(jnp.float32) - batch[self.rating_key]) ** 2)
    loss = mse if penalty is None else mse + self.reg * jnp.mean(penalty)
    return loss, {"loss": loss, "mse": mse, "rmse": jnp.sqrt(mse)}


@dataclasses.dataclass(frozen=True)
class PointwiseTask:
  """Binary cross-entropy on interaction logits against sampled negatives (NCF;
  SASRec with `weight_key`).

  Batches hold the `input_keys`, 'labels' (float, same shape as the logits:
  [batch, C] or [batch, L, C]) and optionally `weight_key` ([batch] or
  [batch, L]; 0 = ignore). Model outputs: logits of that shape.
  """

  input_keys: tuple = ("user", "items")
  labels_key: str = "labels"
  weight_key: str = "weights"

  def inputs(self, batch):
    return _pick(batch, self.input_keys)

  def loss(self, logits, batch):
    """Returns (mean BCE over weighted entries, {'loss', 'accuracy'}): accuracy is
    the share of rows whose positive (column 0) outscores every negative."""
    labels = batch[self.labels_key].astype(jnp.float32)
    logits = logits.astype(jnp.float32)
    bce = optax.sigmoid_binary_cross_entropy(logits, labels)
    weights = batch.get(self.weight_key)
    if weights is None:
      weights = jnp.ones(logits.shape[:-1], jnp.float32)
    weights = weights.astype(jnp.float32)
    total = jnp.maximum(weights.sum(), 1e-8)
    loss = (bce.mean(-1) * weights).sum() / total
    top = (logits[..., 0] > logits[..., 1:].max(-1)).astype(jnp.float32)
    return loss, {"loss": loss, "accuracy": (top * weights).sum() / total}


@dataclasses.dataclass(frozen=True)
class InBatchSoftmaxTask:
  """Sampled softmax over the batch's items (two-tower retrieval, Yi et al. 2019).

  The model gives logits [B, B] (user b against item j of the batch); row b's
  positive is column b. The other items are negatives sampled in proportion
  to their frequency, so popular items would be over-penalised: the log-Q
  correction subtracts log q_j ('item_logq', float [B]: the log of item j's
  share of training interactions). Columns holding the same item as the
  row's positive are masked (they are not negatives).
  """

  input_keys: tuple = ("user", "item")
  item_key: str = "item"
  logq_key: str = "item_logq"
  logq_correction: bool = True

  def inputs(self, batch):
    return _pick(batch, self.input_keys)

  def loss(self, logits, batch):
    """Returns (mean softmax cross-entropy, {'loss', 'accuracy'} (in-batch top-1))."""
    logits = logits.astype(jnp.float32)
    if self.logq_correction:
      logits = logits - batch[self.logq_key].astype(jnp.float32)[None, :]
    items = batch[self.item_key]
    n = logits.shape[0]
    same = (items[:, None] == items[None, :]) & ~jnp.eye(n, dtype=bool)
    logits = jnp.where(same, jnp.finfo(jnp.float32).min, logits)
    labels = jnp.arange(n)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    accuracy = (jnp.argmax(logits, -1) == labels).mean()
    return loss, {"loss": loss, "accuracy": accuracy}


TASKS: Registry[type] = Registry(
  "task",
  "config.task.name",
  {
    "classification": ClassificationTask,
    "lm": TokenPredictionTask,
    "mlm": TokenPredictionTask,
    "seq2seq": Seq2SeqTask,
    "tabular_classification": TabularClassificationTask,
    "risk_forecast": RiskForecastTask,
    # Recommendation.
    "rating": RatingTask,
    "pointwise": PointwiseTask,
    "in_batch_softmax": InBatchSoftmaxTask,
  },
)


def check_task(task_config: Mapping[str, Any]) -> None:
  """ValueError for an unknown `task_config.name` or a key the task has no field for."""
  name = task_config.get("name")
  fields = {f.name for f in dataclasses.fields(TASKS.get(name))}
  unknown = set(task_config) - fields - {"name"}
  if unknown:
    raise ValueError(f"Unknown keys {sorted(unknown)} for task {name!r}; valid: {sorted(fields)}.")


def build_task(task_config: Mapping[str, Any]):
  """The task `task_config.name` with the config's other keys as its fields."""
  check_task(task_config)
  kwargs = {k: v for k, v in dict(task_config).items() if k != "name"}
  return TASKS.get(task_config["name"])(**kwargs)


# --- Detection (CenterNet; research/models/detector.py) ----------------------


def gaussian_radius(height: jax.Array, width: jax.Array, min_overlap: float = 0.7) -> jax.Array:
  """CenterNet's heatmap radius (its `gaussian_radius`, from CornerNet): the
  smallest of three radii such that a box whose corners are shifted by that much
  still overlaps the true box of `height` x `width` with IoU >= `min_overlap`.
  Any shape; the same shape out (float, in the units of height/width)."""
  height, width = jnp.asarray(height, jnp.float32), jnp.asarray(width, jnp.float32)
  b1 = height + width
  c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
  r1 = (b1 + jnp.sqrt(jnp.maximum(b1**2 - 4 * c1, 0.0))) / 2
  b2 = 2 * (height + width)
  c2 = (1 - min_overlap) * width * height
  r2 = (b2 + jnp.sqrt(jnp.maximum(b2**2 - 16 * c2, 0.0))) / 2
  a3 = 4 * min_overlap
  b3 = -2 * min_overlap * (height + width)
  c3 = (min_overlap - 1) * width * height
  r3 = (b3 + jnp.sqrt(jnp.maximum(b3**2 - 4 * a3 * c3, 0.0))) / 2
  return jnp.minimum(jnp.minimum(r1, r2), r3)


def centernet_targets(
  boxes: jax.Array, classes: jax.Array, grid: tuple[int, int], num_classes: int, min_overlap=0.7
) -> dict[str, jax.Array]:
  """CenterNet's training targets on an output grid of `grid` = (h, w) cells.

  Object i (classes >= 0) has its centre at cell (floor(cy), floor(cx)) of the
  grid; its class heatmap there is a Gaussian of sigma (2r + 1) / 6 around that
  cell (r = `gaussian_radius` of the box in cells, rounded down), cut at r
  cells, 1 exactly at the centre; overlapping Gaussians of one class take the
  maximum (the paper's rule).

  Args:
    boxes: float [b, M, 4] (ymin, xmin, ymax, xmax) normalised to [0, 1].
    classes: int [b, M], -1 for padding rows.
    grid: (h, w) of the model's output.
    num_classes: C.

  Returns:
    {'heatmap': float32 [b, h, w, C], 'index': int32 [b, M] (flat cell y * w + x),
     'size': float32 [b, M, 2] (box height, width in cells), 'offset': float32
     [b, M, 2] (centre minus its cell's corner), 'valid': float32 [b, M]}.
  """
  h, w = grid
  boxes = boxes.astype(jnp.float32) * jnp.asarray([h, w, h, w], jnp.float32)
  valid = classes >= 0
  size = jnp.stack([boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]], -1)
  centre = jnp.stack([boxes[..., 0] + boxes[..., 2], boxes[..., 1] + boxes[..., 3]], -1) / 2
  cell = jnp.clip(jnp.floor(centre), 0, jnp.asarray([h - 1, w - 1], jnp.float32))
  radius = jnp.floor(jnp.maximum(gaussian_radius(size[..., 0], size[..., 1], min_overlap), 0.0))
  sigma = (2 * radius + 1) / 6
  dy = jnp.arange(h, dtype=jnp.float32)[None, None, :, None] - cell[..., 0, None, None]
  dx = jnp.arange(w, dtype=jnp.float32)[None, None, None, :] - cell[..., 1, None, None]
  r, s = radius[..., None, None], sigma[..., None, None]
  gauss = jnp.exp(-(dy**2 + dx**2) / (2 * s**2))
  gauss = jnp.where((jnp.abs(dy) <= r) & (jnp.abs(dx) <= r) & valid[..., None, None], gauss, 0.0)
  one_hot = jax.nn.one_hot(jnp.where(valid, classes, -1), num_classes, dtype=jnp.float32)
  heatmap = (gauss[..., None] * one_hot[:, :, None, None, :]).max(axis=1)  # [b, h, w, C]
  index = (cell[..., 0] * w + cell[..., 1]).astype(jnp.int32)
  return {
    "heatmap": heatmap,
    "index": index,
    "size": size,
    "offset": centre - cell,
    "valid": valid.astype(jnp.float32),
  }


def centernet_focal_loss(logits: jax.Array, target: jax.Array) -> jax.Array:
  """CenterNet's penalty-reduced focal loss (alpha 2, beta 4) of heatmap logits
  and Gaussian targets (any equal shapes), summed and divided by the number of
  peaks (target == 1; at least 1)."""
  logits, target = logits.astype(jnp.float32), target.astype(jnp.float32)
  pos = (target == 1.0).astype(jnp.float32)
  p = jax.nn.sigmoid(logits)
  # log p and log(1 - p) from the logits: finite even where p rounds to 0 or 1.
  pos_loss = jax.nn.log_sigmoid(logits) * (1 - p) ** 2 * pos
  neg_loss = jax.nn.log_sigmoid(-logits) * p**2 * (1 - target) ** 4 * (1 - pos)
  return -(pos_loss.sum() + neg_loss.sum()) / jnp.maximum(pos.sum(), 1.0)


@dataclasses.dataclass(frozen=True)
class CenterNetTask:
  """CenterNet detection (Zhou et al. 2019): focal loss on the class heatmaps plus
  L1 on box size and centre offset at the object centres, weighted 1 / 0.1 / 1
  as in the paper.

  Batches hold `input_key` (images [b, H, W, c]), `boxes_key` (float [b, M, 4],
  (ymin, xmin, ymax, xmax) in [0, 1]) and `classes_key` (int [b, M], -1 =
  padding). Model outputs [b, h, w, C + 4] (research/models/detector.py); the
  targets are built here, in the jitted step, from the boxes
  (`centernet_targets`), so the data pipeline stays the plain scene schema.
  """

  num_classes: int
  input_key: str = "image"
  boxes_key: str = "boxes"
  classes_key: str = "classes"
  size_weight: float = 0.1
  offset_weight: float = 1.0
  min_overlap: float = 0.7

  def inputs(self, batch: Mapping[str, jax.Array]) -> ModelInput:
    return batch[self.input_key]

  def loss(self, outputs: jax.Array, batch: Mapping[str, jax.Array]):
    """Returns (loss [], {'loss', 'heatmap', 'size', 'offset'}): the focal loss per
    object and the L1 errors per box coordinate (in grid cells), over the batch."""
    c = self.num_classes
    b, h, w, _ = outputs.shape
    t = centernet_targets(
      batch[self.boxes_key], batch[self.classes_key], (h, w), c, self.min_overlap
    )
    outputs = outputs.astype(jnp.float32)
    heatmap = centernet_focal_loss(outputs[..., :c], t["heatmap"])
    at_centres = jnp.take_along_axis(
      outputs[..., c : c + 4].reshape(b, h * w, 4), t["index"][..., None], axis=1
    )  # [b, M, 4]
    weight = t["valid"][..., None]
    count = jnp.maximum(2 * t["valid"].sum(), 1.0)
    size = (jnp.abs(at_centres[..., :2] - t["size"]) * weight).sum() / count
    offset = (jnp.abs(at_centres[..., 2:] - t["offset"]) * weight).sum() / count
    loss = heatmap + self.size_weight * size + self.offset_weight * offset
    return loss, {"loss": loss, "heatmap": heatmap, "size": size, "offset": offset}


TASKS.add("centernet", CenterNetTask)


@dataclasses.dataclass(frozen=True)
class SegmentationTask:
  """Semantic segmentation: per-pixel softmax cross-entropy over K = num_classes + 1
  labels (0 = background, k + 1 = object class k; `research.metrics.segmentation`).

  Batches hold `input_key` (images [batch, H, W, C]) and `label_key` (int
  [batch, H, W]); target pixels outside [0, K) (e.g. -1 or VOC's 255 border)
  are ignored. Model outputs are logits [batch, H, W, K].
  """

  num_classes: int
  input_key: str = "image"
  label_key: str = "segmentation_mask"

  def inputs(self, batch: Mapping[str, jax.Array]) -> ModelInput:
    return batch[self.input_key]

  def loss(self, logits: jax.Array, batch: Mapping[str, jax.Array]):
    """Mean cross-entropy over the counted pixels of the batch.

    Returns:
      (loss [], {'loss': [], 'pixel_accuracy': []}).
    """
    num_labels = self.num_classes + 1
    if logits.shape[-1] != num_labels:
      raise ValueError(
        f"Segmentation of {self.num_classes} classes + background needs logits [..., "
        f"{num_labels}], got {logits.shape}; set config.model.num_classes={num_labels}."
      )
    labels = batch[self.label_key].astype(jnp.int32)
    valid = (labels >= 0) & (labels < num_labels)
    ce = optax.softmax_cross_entropy_with_integer_labels(
      logits.astype(jnp.float32), jnp.where(valid, labels, 0)
    )
    weights = valid.astype(jnp.float32)
    total = jnp.maximum(weights.sum(), 1.0)
    loss = (ce * weights).sum() / total
    correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
    return loss, {"loss": loss, "pixel_accuracy": (correct * weights).sum() / total}


TASKS.add("segmentation", SegmentationTask)


@dataclasses.dataclass(frozen=True)
class GANTask:
  """Adversarial training of a generator against a discriminator (DCGAN).

  Batches hold `input_key` (real images [batch, H, W, C] in the generator's
  output range). The model (research.models.gan.DCGAN) returns discriminator
  logits {'real', 'fake', 'fake_for_generator'} [batch], arranged so that the
  gradient of the one scalar returned here gives each player its own loss's
  gradient (see the model's docstring):

    L_D = softplus(-D(x)) + softplus(D(G(z)))   (cross-entropy, real = 1)
    L_G = softplus(-D(G(z)))                     (non-saturating, Goodfellow et al. 2014)

  Metrics: 'loss' (L_D + L_G), 'd_loss', 'g_loss', 'd_real' / 'd_fake' (mean
  p(real) the discriminator gives real and generated images).
  """

  input_key: str = "image"

  def inputs(self, batch: Mapping[str, jax.Array]) -> jax.Array:
    return batch[self.input_key]

  def loss(self, outputs: Mapping[str, jax.Array], batch: Mapping[str, jax.Array]):
    real = outputs["real"].astype(jnp.float32)
    fake = outputs["fake"].astype(jnp.float32)
    fake_g = outputs["fake_for_generator"].astype(jnp.float32)
    d_loss = (jax.nn.softplus(-real) + jax.nn.softplus(fake)).mean()
    g_loss = jax.nn.softplus(-fake_g).mean()
    loss = d_loss + g_loss
    return loss, {
      "loss": loss,
      "d_loss": d_loss,
      "g_loss": g_loss,
      "d_real": jax.nn.sigmoid(real).mean(),
      "d_fake": jax.nn.sigmoid(fake).mean(),
    }


# Registered here, after the table above, so the class can sit at the end of the file.
TASKS.add("gan", GANTask)
