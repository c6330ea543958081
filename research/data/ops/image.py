"""Image ops on one example's `[H, W, C]` array (key 'image' unless `key=`).

Random ops draw only from the rng they are given, so the grain pipeline's
rng (derived from seed and batch position) makes them reproducible and
resumable. Every op but `random_rotate_scale` also has a batched
implementation on `[b, H, W, C]` (see `base`): deterministic ones give results
identical to the per-example op; random ones draw each example's offsets or
coin flip from the same distribution, all at once. `research.data.ops.OPS`
names them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import scipy.ndimage

from research.data.ops import base


def value_range(lo: float, hi: float, in_max: float = 255, *, key: str = "image") -> base.NamedOp:
  """Maps `[0, in_max]` linearly to `[lo, hi]`; output float32, same shape."""
  spec = base.spec_string("value_range", lo, hi, in_max=in_max, key=key)
  if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi, in_max)):
    raise ValueError(f"{spec}: lo, hi and in_max must be numbers.")
  if in_max <= 0:
    raise ValueError(f"{spec}: in_max must be positive.")
  scale = np.float32((hi - lo) / in_max)

  def fn(example, rng):
    del rng
    x = base.get(example, key, spec).astype(np.float32)
    return base.replace(example, key, x * scale + np.float32(lo))

  # Elementwise: the same function is the batched implementation.
  return base.NamedOp(spec, fn, batch_fn=fn)


def standardize(
  mean: float | Sequence[float], std: float | Sequence[float], *, key: str = "image"
) -> base.NamedOp:
  """`(x - mean) / std` in float32; mean/std are scalars or one value per channel."""
  spec = base.spec_string("standardize", mean, std, key=key)
  try:
    mean_a = np.asarray(mean, np.float32)
    std_a = np.asarray(std, np.float32)
  except (TypeError, ValueError):
    raise ValueError(f"{spec}: mean and std must be numbers or lists of numbers.") from None
  if mean_a.ndim > 1 or std_a.ndim > 1:
    raise ValueError(f"{spec}: mean and std must be scalars or 1-D (one value per channel).")
  if np.any(std_a <= 0):
    raise ValueError(f"{spec}: std must be positive.")

  def make(batched: bool):
    lead = 1 if batched else 0  # a batch has one more (leading) dimension

    def fn(example, rng):
      del rng
      x = base.get(example, key, spec).astype(np.float32)
      for a in (mean_a, std_a):
        if a.ndim == 1 and (x.ndim == lead or x.shape[-1] != a.shape[0]):
          raise ValueError(
            f"Op '{spec}': {a.shape[0]} per-channel values do not match "
            f"array of shape {x.shape[lead:]} (channels last)."
          )
      return base.replace(example, key, (x - mean_a) / std_a)

    return fn

  return base.NamedOp(spec, make(False), batch_fn=make(True))


def random_crop(size: int | Sequence[int], pad: int = 0, *, key: str = "image") -> base.NamedOp:
  """Zero-pads `pad` pixels on each side of H and W, then crops `size` at random.

  `[H, W, C] -> [h, w, C]`, dtype kept.
  """
  spec = base.spec_string("random_crop", size, pad=pad, key=key)
  h, w = base.size_hw(size, spec)
  if not isinstance(pad, int) or isinstance(pad, bool) or pad < 0:
    raise ValueError(f"{spec}: pad must be a non-negative int.")

  def fn(example, rng):
    x = base.image_hwc(base.get(example, key, spec), spec)
    if pad:
      x = np.pad(x, ((pad, pad), (pad, pad), (0, 0)))
    if h > x.shape[0] or w > x.shape[1]:
      raise ValueError(f"Op '{spec}': crop {(h, w)} larger than padded image {x.shape[:2]}.")
    top = rng.integers(0, x.shape[0] - h + 1)
    left = rng.integers(0, x.shape[1] - w + 1)
    return base.replace(example, key, x[top : top + h, left : left + w])

  def batch_fn(batch, rng):
    x = base.image_bhwc(base.get(batch, key, spec), spec)  # [b, H, W, C]
    b, height, width = x.shape[0], x.shape[1] + 2 * pad, x.shape[2] + 2 * pad
    if h > height or w > width:
      raise ValueError(f"Op '{spec}': crop {(h, w)} larger than padded image {(height, width)}.")
    # One offset pair per example, uniform like the per-example op's.
    tops = rng.integers(0, height - h + 1, size=b)
    lefts = rng.integers(0, width - w + 1, size=b)
    if pad:
      x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    # Vectorised gather: out[i, r, c] = x[i, tops[i] + r, lefts[i] + c], one
    # fancy index for the whole batch (rows [b, h, 1], cols [b, 1, w]).
    rows = (tops[:, None] + np.arange(h))[:, :, None]
    cols = (lefts[:, None] + np.arange(w))[:, None, :]
    return base.replace(batch, key, x[np.arange(b)[:, None, None], rows, cols])

  return base.NamedOp(spec, fn, random=True, batch_fn=batch_fn)


def center_crop(size: int | Sequence[int], *, key: str = "image") -> base.NamedOp:
  """Crops the central `size` window: `[H, W, C] -> [h, w, C]`, dtype kept."""
  spec = base.spec_string("center_crop", size, key=key)
  h, w = base.size_hw(size, spec)

  def fn(example, rng):
    del rng
    x = base.image_hwc(base.get(example, key, spec), spec)
    if h > x.shape[0] or w > x.shape[1]:
      raise ValueError(f"Op '{spec}': crop {(h, w)} larger than image {x.shape[:2]}.")
    top, left = (x.shape[0] - h) // 2, (x.shape[1] - w) // 2
    return base.replace(example, key, x[top : top + h, left : left + w])

  def batch_fn(batch, rng):
    del rng
    x = base.image_bhwc(base.get(batch, key, spec), spec)
    if h > x.shape[1] or w > x.shape[2]:
      raise ValueError(f"Op '{spec}': crop {(h, w)} larger than image {x.shape[1:3]}.")
    top, left = (x.shape[1] - h) // 2, (x.shape[2] - w) // 2
    return base.replace(batch, key, x[:, top : top + h, left : left + w])

  return base.NamedOp(spec, fn, batch_fn=batch_fn)


def flip_lr(p: float = 0.5, *, key: str = "image") -> base.NamedOp:
  """Mirrors the W axis (axis -2 of `[..., W, C]`) with probability `p`."""
  spec = base.spec_string("flip_lr", p=p, key=key)
  if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0 <= p <= 1:
    raise ValueError(f"{spec}: p must be a probability in [0, 1].")

  def fn(example, rng):
    x = base.get(example, key, spec)
    if x.ndim < 2:
      raise ValueError(f"Op '{spec}' expects [..., W, C], got shape {x.shape}.")
    # Always draw, so the rng stream does not depend on the outcome.
    if rng.random() < p:
      x = np.flip(x, axis=-2)
    return base.replace(example, key, x)

  def batch_fn(batch, rng):
    x = base.get(batch, key, spec)
    if x.ndim < 3:
      raise ValueError(f"Op '{spec}' expects a batch [b, ..., W, C], got shape {x.shape}.")
    flip = rng.random(x.shape[0]) < p  # one coin per example, as in the per-example op
    # A copy either way: the output never aliases the input batch.
    out = x.copy()
    out[flip] = np.flip(x[flip], axis=-2)
    return base.replace(batch, key, out)

  return base.NamedOp(spec, fn, random=True, batch_fn=batch_fn)


def random_rotate_scale(
  max_degrees: float = 10, scale: Sequence[float] = (0.9, 1.1), *, key: str = "image"
) -> base.NamedOp:
  """Rotates by U(-max_degrees, max_degrees) and scales by U(*scale) about the centre.

  Bilinear (scipy.ndimage.affine_transform, order=1), zeros outside the input.
  `[H, W, C]` in and out; integer dtypes are rounded and clipped back.
  """
  spec = base.spec_string("random_rotate_scale", max_degrees, scale, key=key)
  if not isinstance(max_degrees, (int, float)) or isinstance(max_degrees, bool) or max_degrees < 0:
    raise ValueError(f"{spec}: max_degrees must be a non-negative number.")
  if (
    not isinstance(scale, (tuple, list))
    or len(scale) != 2
    or not all(isinstance(s, (int, float)) and not isinstance(s, bool) for s in scale)
    or not 0 < scale[0] <= scale[1]
  ):
    raise ValueError(f"{spec}: scale must be a pair (lo, hi) with 0 < lo <= hi.")
  s_lo, s_hi = float(scale[0]), float(scale[1])

  def fn(example, rng):
    x = base.image_hwc(base.get(example, key, spec), spec)
    theta = math.radians(rng.uniform(-max_degrees, max_degrees))
    s = rng.uniform(s_lo, s_hi)
    # affine_transform maps each output coordinate to an input coordinate, so
    # it needs the inverse warp: rotate by -theta and shrink by 1/s.
    c, si = math.cos(theta) / s, math.sin(theta) / s
    matrix = np.array([[c, -si, 0.0], [si, c, 0.0], [0.0, 0.0, 1.0]])
    centre = np.array([(x.shape[0] - 1) / 2, (x.shape[1] - 1) / 2, 0.0])
    offset = centre - matrix @ centre
    y = scipy.ndimage.affine_transform(
      x.astype(np.float32), matrix, offset, order=1, mode="constant", cval=0.0
    )
    if np.issubdtype(x.dtype, np.integer):
      info = np.iinfo(x.dtype)
      y = np.clip(np.rint(y), info.min, info.max)
    return base.replace(example, key, y.astype(x.dtype))

  return base.NamedOp(spec, fn, random=True)
