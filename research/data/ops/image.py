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


# --- Augmentation: colour jitter, random erasing, mixup, cutmix ----------------------------------

# ITU-R 601-2 luma weights, as PIL's and torchvision's grayscale conversions use.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _is_number(v) -> bool:
  return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_probability(p, spec: str) -> None:
  if not _is_number(p) or not 0 <= p <= 1:
    raise ValueError(f"{spec}: p must be a probability in [0, 1].")


def _check_range(pair, spec: str, name: str, lo_bound: float = 0.0) -> tuple[float, float]:
  """`pair` as floats `(lo, hi)` with `lo_bound < lo <= hi` (a ValueError naming `name` else)."""
  if (
    not isinstance(pair, (tuple, list))
    or len(pair) != 2
    or not all(_is_number(v) for v in pair)
    or not lo_bound < pair[0] <= pair[1]
  ):
    raise ValueError(f"{spec}: {name} must be a pair (lo, hi) with {lo_bound} < lo <= hi.")
  return float(pair[0]), float(pair[1])


def _grey(x: np.ndarray, spec: str) -> np.ndarray:
  """Luma of `[b, H, W, C]` images as `[b, H, W, 1]` (C = 1: the image itself)."""
  if x.shape[-1] == 1:
    return x
  if x.shape[-1] == 3:
    return (x * _LUMA).sum(-1, keepdims=True, dtype=np.float32)
  raise ValueError(
    f"Op '{spec}' works on grey [H, W, 1] or RGB [H, W, 3] images, got {x.shape[-1]} channels."
  )


def _one_as_batch(batch_fn, key: str, spec: str):
  """The per-example op as the batched one on a batch of one (same draws, same formulas)."""

  def fn(example, rng):
    x = base.image_hwc(base.get(example, key, spec), spec)
    return base.replace(example, key, batch_fn({key: x[None]}, rng)[key][0])

  return fn


def color_jitter(
  brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0, *, key: str = "image"
) -> base.NamedOp:
  """Random brightness, contrast and saturation (torchvision's ColorJitter formulas).

  Each strength `s` draws a factor `f ~ U(max(0, 1 - s), 1 + s)` per example
  (`s = 0`: `f = 1`, no change) and blends, in this fixed order, clipping to
  `[0, 1]` after each step:
    brightness: `x * f`;
    contrast:   `f * x + (1 - f) * mean(grey(x))` (one mean per image);
    saturation: `f * x + (1 - f) * grey(x)` (grey = ITU-R 601-2 luma).
  On 1-channel (grey) images saturation leaves the image exactly unchanged: a
  grey image equals its own luma, so there is no colour to scale (its factor
  is still drawn, so the rng stream does not depend on the channel count).

  Input: float images in `[0, 1]`, `[H, W, C]` with C = 1 or 3 (put the op after
  `value_range(0, 1)` and before `standardize`); output float32, same shape.
  """
  spec = base.spec_string(
    "color_jitter", brightness=brightness, contrast=contrast, saturation=saturation, key=key
  )
  strengths = (brightness, contrast, saturation)
  if not all(_is_number(s) and s >= 0 for s in strengths):
    raise ValueError(f"{spec}: brightness, contrast and saturation must be numbers >= 0.")
  ranges = [(max(0.0, 1.0 - s), 1.0 + s) for s in strengths]

  def batch_fn(batch, rng):
    x = base.image_bhwc(base.get(batch, key, spec), spec)
    if not np.issubdtype(x.dtype, np.floating):
      raise ValueError(
        f"Op '{spec}' expects float images in [0, 1], got {x.dtype}: put value_range(0, 1) "
        "before it."
      )
    if x.size and (x.min() < -1e-6 or x.max() > 1 + 1e-6):
      raise ValueError(
        f"Op '{spec}' expects images in [0, 1], got values in [{x.min():.3g}, {x.max():.3g}]: put "
        "it after value_range(0, 1) and before standardize."
      )
    _grey(x[:0], spec)  # channel check before any draw
    shape = (x.shape[0], 1, 1, 1)
    fb, fc, fs = (rng.uniform(lo, hi, size=shape).astype(np.float32) for lo, hi in ranges)
    y = np.clip(x.astype(np.float32) * fb, 0, 1)
    mean = _grey(y, spec).mean(axis=(1, 2, 3), keepdims=True)
    y = np.clip(fc * y + (1 - fc) * mean, 0, 1)
    if y.shape[-1] != 1:  # grey images have no saturation to change
      y = np.clip(fs * y + (1 - fs) * _grey(y, spec), 0, 1)
    return base.replace(batch, key, y)

  return base.NamedOp(spec, _one_as_batch(batch_fn, key, spec), random=True, batch_fn=batch_fn)


# Rectangles random_erasing draws per example before giving up (torchvision's choice).
_ERASE_ATTEMPTS = 10


def random_erasing(
  p: float = 0.5,
  scale: Sequence[float] = (0.02, 0.4),
  ratio: Sequence[float] = (0.3, 1 / 0.3),
  value: float = 0.0,
  *,
  key: str = "image",
) -> base.NamedOp:
  """Random Erasing (Zhong et al. 2017, "Random Erasing Data Augmentation", Alg. 1).

  With probability `p` per example, a rectangle of area `S_e ~ U(*scale) * H * W`
  and aspect ratio `r_e = h / w ~ U(*ratio)` is placed uniformly inside the
  image and set to `value` in every channel: `h = round(sqrt(S_e * r_e))`,
  `w = round(sqrt(S_e / r_e))`. A rectangle that does not fit is redrawn, up to
  10 times (then the example is left unchanged). Defaults are the paper's
  (p = 0.5, s_l = 0.02, s_h = 0.4, r_1 = 0.3, used for its Fashion-MNIST and
  CIFAR results). The paper fills with random values, the authors' code with
  the mean pixel; `value=0` after `standardize` is the training-set mean.

  `[H, W, C]` in and out, dtype kept.
  """
  spec = base.spec_string("random_erasing", p=p, scale=scale, ratio=ratio, value=value, key=key)
  _check_probability(p, spec)
  s_lo, s_hi = _check_range(scale, spec, "scale")
  if s_hi > 1:
    raise ValueError(f"{spec}: scale is a fraction of the image area; hi must be <= 1.")
  r_lo, r_hi = _check_range(ratio, spec, "ratio")
  if not _is_number(value):
    raise ValueError(f"{spec}: value must be a number.")

  def batch_fn(batch, rng):
    x = base.image_bhwc(base.get(batch, key, spec), spec)
    b, height, width = x.shape[:3]
    erase = rng.random(b) < p
    area = rng.uniform(s_lo, s_hi, size=(b, _ERASE_ATTEMPTS)) * (height * width)
    aspect = rng.uniform(r_lo, r_hi, size=(b, _ERASE_ATTEMPTS))
    tops_u, lefts_u = rng.random(b), rng.random(b)
    hs = np.rint(np.sqrt(area * aspect)).astype(np.int64)  # [b, attempts]
    ws = np.rint(np.sqrt(area / aspect)).astype(np.int64)
    fits = (hs >= 1) & (ws >= 1) & (hs <= height) & (ws <= width)
    first = np.argmax(fits, axis=1)  # the first rectangle that fits
    erase &= fits.any(axis=1)
    h, w = hs[np.arange(b), first], ws[np.arange(b), first]
    h, w = np.where(erase, h, 0), np.where(erase, w, 0)
    top = np.floor(tops_u * (height - h + 1)).astype(np.int64)
    left = np.floor(lefts_u * (width - w + 1)).astype(np.int64)
    rows, cols = np.arange(height), np.arange(width)
    in_rows = (rows >= top[:, None]) & (rows < (top + h)[:, None])  # [b, H]
    in_cols = (cols >= left[:, None]) & (cols < (left + w)[:, None])  # [b, W]
    inside = in_rows[:, :, None, None] & in_cols[:, None, :, None]  # [b, H, W, 1]
    return base.replace(batch, key, np.where(inside, np.asarray(value, x.dtype), x))

  return base.NamedOp(spec, _one_as_batch(batch_fn, key, spec), random=True, batch_fn=batch_fn)


# Keys the mixing ops add; ClassificationTask reads them (research.core.tasks).
MIX_LABEL_KEY = "label_mix"
MIX_WEIGHT_KEY = "mix_weight"


def _mixing_op(spec: str, mix, *, p: float, key: str, label_key: str) -> base.NamedOp:
  """A batch-level mixing op around `mix(x [b, H, W, C] float32, perm [b], rng) -> (x, weight)`.

  With probability `p` per batch (one coin, drawn first), example i is mixed
  with example `perm[i]` of a random permutation of the batch; the batch gets
  `label_mix` = the partner's label and `mix_weight` (float32 [b]) = the weight
  of the example's own label. Without mixing: `label_mix = label`, weight 1, so
  every batch has the same keys and shapes. A single example (no batch to pair
  within, e.g. a shape probe or a per-example eval) is its own partner:
  unchanged, weight 1, so an eval pipeline never mixes.
  """
  _check_probability(p, spec)

  def outputs(batch, x, partner_labels, weight):
    if MIX_LABEL_KEY in batch or MIX_WEIGHT_KEY in batch:
      raise ValueError(
        f"Op '{spec}': the batch is already mixed ({MIX_LABEL_KEY!r} present); use one mixing op "
        "(mixup or cutmix) per pipeline."
      )
    out = base.replace(batch, key, x)
    out[MIX_LABEL_KEY] = partner_labels
    out[MIX_WEIGHT_KEY] = weight
    return out

  def batch_fn(batch, rng):
    x = base.image_bhwc(base.get(batch, key, spec), spec).astype(np.float32)
    labels = base.get(batch, label_key, spec)
    if labels.shape[:1] != x.shape[:1]:
      raise ValueError(f"Op '{spec}': {label_key!r} {labels.shape} and {key!r} {x.shape} differ.")
    # All draws happen whether or not the batch is mixed: the stream stays the same.
    apply = rng.random() < p
    perm = rng.permutation(x.shape[0])
    mixed, weight = mix(x, perm, rng)
    if not apply:
      return outputs(batch, x, labels, np.ones(x.shape[0], np.float32))
    return outputs(batch, mixed, labels[perm], np.full(x.shape[0], weight, np.float32))

  def fn(example, rng):
    del rng
    x = base.image_hwc(base.get(example, key, spec), spec).astype(np.float32)
    label = base.get(example, label_key, spec)
    return outputs(example, x, label, np.float32(1.0))

  return base.NamedOp(spec, fn, random=True, batch_fn=batch_fn)


def mixup(
  alpha: float = 0.2, p: float = 1.0, *, key: str = "image", label_key: str = "label"
) -> base.NamedOp:
  """mixup (Zhang et al. 2018): `x_i <- lam x_i + (1 - lam) x_perm[i]`, `lam ~ Beta(alpha, alpha)`.

  One `lam` and one random pairing (a permutation) per batch, as in the
  authors' code; `mix_weight = lam` for every example, and the task's loss is
  `lam CE(label) + (1 - lam) CE(label_mix)`. The paper uses alpha 0.1-0.4 on
  ImageNet and 1 on CIFAR. Batch-level (see `_mixing_op` for `p` and the added
  keys); `image` `[b, H, W, C]` becomes float32.
  """
  spec = base.spec_string("mixup", alpha=alpha, p=p, key=key, label_key=label_key)
  if not _is_number(alpha) or alpha <= 0:
    raise ValueError(f"{spec}: alpha must be a positive number.")

  def mix(x, perm, rng):
    lam = np.float32(rng.beta(alpha, alpha))
    return lam * x + (1 - lam) * x[perm], lam

  return _mixing_op(spec, mix, p=p, key=key, label_key=label_key)


def cutmix(
  beta: float = 1.0, p: float = 1.0, *, key: str = "image", label_key: str = "label"
) -> base.NamedOp:
  """CutMix (Yun et al. 2019): paste a box of the partner image into each image.

  As the authors' code: `lam ~ Beta(beta, beta)`; a box of
  `int(H sqrt(1 - lam)) x int(W sqrt(1 - lam))` centred on a uniform pixel and
  clipped to the image, the same box for the whole batch; example i gets
  example `perm[i]`'s pixels inside it. `mix_weight` is the area left
  unpasted, `1 - box area / (H W)` (not the drawn `lam`, which clipping changes).
  The paper uses beta 1 and, on CIFAR, p 0.5. Batch-level (see `_mixing_op` for
  `p` and the added keys); `image` `[b, H, W, C]` becomes float32.
  """
  spec = base.spec_string("cutmix", beta=beta, p=p, key=key, label_key=label_key)
  if not _is_number(beta) or beta <= 0:
    raise ValueError(f"{spec}: beta must be a positive number.")

  def mix(x, perm, rng):
    height, width = x.shape[1:3]
    lam = rng.beta(beta, beta)
    cut = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * cut), int(width * cut)
    cy, cx = int(rng.integers(height)), int(rng.integers(width))
    y1, y2 = np.clip([cy - cut_h // 2, cy + cut_h // 2], 0, height)
    x1, x2 = np.clip([cx - cut_w // 2, cx + cut_w // 2], 0, width)
    out = x.copy()
    out[:, y1:y2, x1:x2] = x[perm, y1:y2, x1:x2]
    return out, np.float32(1.0 - (y2 - y1) * (x2 - x1) / (height * width))

  return _mixing_op(spec, mix, p=p, key=key, label_key=label_key)
