"""A small one-stage, anchor-free detector: CenterNet ("Objects as Points",
Zhou, Wang and Kraehenbuehl 2019) with a small U-shaped backbone.

Every object is the peak of a class heatmap at its box centre, on a grid
`stride` (4) times coarser than the image; two more heads regress, at that
cell, the box size and the sub-cell offset of the centre. Decoding keeps the
heatmap's local maxima (a 3x3 max-pool compare, the paper's NMS substitute)
and their top K scores; `research.metrics.detection.batched_nms` may run a
class-wise box NMS after it.

Why anchor-free centre points rather than SSD: there are no anchor shapes,
scales or matching rules to tune for the data, the targets are dense maps of
fixed shape (jit-friendly with a fixed number of boxes), and decoding is a
max-pool plus top-K.

The model returns one array, so it is the `logits` every evaluator receives:
  [batch, H/4, W/4, C + 4]: channels [0, C) heatmap logits (sigmoid = score),
  [C, C + 2) box (height, width) in grid cells, [C + 2, C + 4) centre offset
  (dy, dx) in cells from the cell's top-left corner.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

# Heatmap bias at initialisation: sigmoid(-2.19) = 0.1, the paper's prior, so the
# focal loss of the (mostly background) heatmap starts small and stable.
HEATMAP_PRIOR_BIAS = -2.19


def _upsample2(x: jnp.ndarray) -> jnp.ndarray:
  """Nearest-neighbour x2: [b, h, w, c] -> [b, 2h, 2w, c]."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class CenterNet(nn.Module):
  """CenterNet on a small U-shaped convolutional backbone (output stride 4).

  Input [batch, H, W, channels] float, H and W multiples of 8; output float32
  [batch, H/4, W/4, num_classes + 4] (the module docstring's channel layout).

  Backbone: a strided 3x3 convolution to 1/2 resolution (`features[0]`
  channels; the full-resolution map is never convolved, which keeps the model
  cheap on CPU), then at 1/4 and 1/8 two 3x3 convolutions each, the first
  strided (`features[1]`, `features[2]`); the 1/8 map is upsampled and
  concatenated with the 1/4 map (the U-shape gives the stride-4 cells context
  from a receptive field as large as the objects), then one 3x3 convolution
  (`features[1]`). Each head: 3x3 conv (`head_features`) -> relu -> 1x1 conv.
  """

  num_classes: int
  features: Sequence[int] = (16, 32, 64)
  head_features: int = 32
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool = False) -> jnp.ndarray:
    del train  # no dropout or batch statistics
    if len(self.features) != 3:
      raise ValueError(
        f"CenterNet.features needs 3 widths (resolutions 1/2, 1/4, 1/8), got {self.features}."
      )

    def conv(f: int, stride: int = 1) -> nn.Conv:
      return nn.Conv(
        f, (3, 3), strides=(stride, stride), dtype=self.dtype, param_dtype=self.param_dtype
      )

    x = nn.relu(conv(self.features[0], 2)(jnp.asarray(x, self.dtype)))
    quarter = nn.relu(conv(self.features[1])(nn.relu(conv(self.features[1], 2)(x))))
    eighth = nn.relu(conv(self.features[2])(nn.relu(conv(self.features[2], 2)(quarter))))
    x = jnp.concatenate([_upsample2(eighth), quarter], axis=-1)
    x = nn.relu(conv(self.features[1])(x))

    def head(out: int, bias_init=nn.initializers.zeros) -> jnp.ndarray:
      h = nn.relu(conv(self.head_features)(x))
      return nn.Conv(
        out, (1, 1), dtype=self.dtype, param_dtype=self.param_dtype, bias_init=bias_init
      )(h)

    heatmap = head(self.num_classes, nn.initializers.constant(HEATMAP_PRIOR_BIAS))
    return jnp.concatenate([heatmap, head(2), head(2)], axis=-1).astype(jnp.float32)


def split_outputs(outputs: jax.Array, num_classes: int):
  """[b, h, w, C + 4] -> (heatmap logits [b, h, w, C], size [b, h, w, 2], offset [b, h, w, 2])."""
  c = num_classes
  return outputs[..., :c], outputs[..., c : c + 2], outputs[..., c + 2 : c + 4]


def decode(outputs: jax.Array, num_classes: int, max_detections: int = 100):
  """Detections from CenterNet outputs, jit-friendly (fixed K = max_detections).

  A heatmap cell is a detection candidate when its score equals the maximum of
  its 3x3 neighbourhood (same class); the K best candidates over all cells and
  classes are kept (the rest get score 0, so K may exceed the candidates).

  Args:
    outputs: float [b, h, w, C + 4] (the module docstring's layout).
    num_classes: C.
    max_detections: K <= h * w * C.

  Returns:
    boxes float32 [b, K, 4] (ymin, xmin, ymax, xmax) normalised to [0, 1] and
    clipped to the image; scores float32 [b, K] (sigmoid, descending); classes
    int32 [b, K].
  """
  logits, size, offset = split_outputs(outputs.astype(jnp.float32), num_classes)
  b, h, w, c = logits.shape
  heat = jax.nn.sigmoid(logits)
  peak = jax.lax.reduce_window(heat, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, 1, 1, 1), "SAME")
  heat = jnp.where(heat == peak, heat, 0.0)
  scores, index = jax.lax.top_k(heat.reshape(b, h * w * c), max_detections)
  cell, classes = index // c, index % c
  ys, xs = cell // w, cell % w
  gather = lambda m: jnp.take_along_axis(m.reshape(b, h * w, 2), cell[..., None], axis=1)
  hw = jnp.maximum(gather(size), 0.0)
  off = gather(offset)
  cy = ys + off[..., 0]
  cx = xs + off[..., 1]
  boxes = jnp.stack(
    [
      (cy - hw[..., 0] / 2) / h,
      (cx - hw[..., 1] / 2) / w,
      (cy + hw[..., 0] / 2) / h,
      (cx + hw[..., 1] / 2) / w,
    ],
    axis=-1,
  )
  return jnp.clip(boxes, 0.0, 1.0), scores, classes.astype(jnp.int32)
