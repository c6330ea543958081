"""Reader for IDX files (the original MNIST / Fashion-MNIST format), gzip or raw.

IDX layout: 4 magic bytes `00 00 <dtype code> <ndim>`, then `ndim` big-endian
uint32 dims, then the data in C order, big-endian. Every file is validated
against its own header, so a truncated download fails loudly with the file
name instead of producing a short or garbled array.
"""

from __future__ import annotations

import os
import zlib

import numpy as np

# IDX dtype codes -> big-endian numpy dtypes.
_DTYPES: dict[int, np.dtype] = {
  0x08: np.dtype("u1"),
  0x09: np.dtype("i1"),
  0x0B: np.dtype(">i2"),
  0x0C: np.dtype(">i4"),
  0x0D: np.dtype(">f4"),
  0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: str) -> tuple[bytes, str]:
  """File contents, gunzipped if it is gzip (by magic, not by name).

  Returns (data, problem) where problem is '' or says why the gzip stream is
  incomplete; a truncated stream still returns what could be decompressed so
  the caller can report expected vs found bytes.
  """
  with open(path, "rb") as f:
    raw = f.read()
  if not raw.startswith(_GZIP_MAGIC):
    return raw, ""
  chunks = []
  while raw:
    # wbits=31: gzip container. One decompressobj per gzip member.
    d = zlib.decompressobj(wbits=31)
    try:
      chunks.append(d.decompress(raw))
      chunks.append(d.flush())
    except zlib.error as e:
      return b"".join(chunks), f"corrupt gzip stream ({e})"
    if not d.eof:
      return b"".join(chunks), "gzip stream ends before its end-of-stream marker (truncated)"
    raw = d.unused_data
  return b"".join(chunks), ""


def read_idx(path: str | os.PathLike) -> np.ndarray:
  """Reads one IDX file (optionally gzipped) into a native-endian array.

  Returns an array of the header's dims, e.g. uint8 `[60000, 28, 28]` for MNIST
  training images or uint8 `[60000]` for labels.

  Raises:
    ValueError: wrong magic, or data truncated / longer than the header says;
      the message names the file and the expected vs found byte counts.
  """
  path = os.fspath(path)
  data, gzip_problem = _read_bytes(path)
  redownload = "The file is damaged; delete it and download it again."
  if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES or data[3] == 0:
    if len(data) < 4 and gzip_problem:
      raise ValueError(
        f"{path}: truncated: {gzip_problem}; got only {len(data)} bytes. {redownload}"
      )
    raise ValueError(
      f"{path}: not an IDX file: magic bytes {data[:4].hex(' ')!r}, expected "
      f"'00 00 <dtype code in {[hex(c) for c in _DTYPES]}> <ndim>'. {redownload}"
    )
  dtype, ndim = _DTYPES[data[2]], data[3]
  header = 4 + 4 * ndim
  if len(data) < header:
    raise ValueError(
      f"{path}: truncated IDX header: expected {header} bytes, found {len(data)}. {redownload}"
    )
  dims = tuple(int(d) for d in np.frombuffer(data, ">u4", ndim, 4))
  expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
  found = len(data) - header
  if found < expected or gzip_problem:
    why = f" ({gzip_problem})" if gzip_problem else ""
    raise ValueError(
      f"{path}: truncated IDX file{why}: header dims {dims} need {expected} "
      f"data bytes, found {found}. {redownload}"
    )
  if found > expected:
    raise ValueError(
      f"{path}: IDX file has {found - expected} bytes more than its header "
      f"dims {dims} need ({expected}). {redownload}"
    )
  array = np.frombuffer(data, dtype, int(np.prod(dims)), header).reshape(dims)
  return array.astype(dtype.newbyteorder("="), copy=False)


# Original file names; '.idx3-ubyte' is how some mirrors spell the unpacked ones.
_PREFIX = {"train": "train", "test": "t10k"}


def _candidates(kind: str, split: str) -> list[str]:
  prefix, n = _PREFIX[split], 3 if kind == "images" else 1
  name = f"{prefix}-{kind}-idx{n}-ubyte"
  return [name + ".gz", name, f"{prefix}-{kind}.idx{n}-ubyte"]


def find_split_files(directory: str, split: str) -> tuple[str, str]:
  """Paths of (images, labels) for `split` ('train' | 'test') in `directory`.

  Raises:
    FileNotFoundError: listing the names looked for.
  """
  if split not in _PREFIX:
    raise ValueError(f"IDX split must be one of {sorted(_PREFIX)}, got {split!r}.")
  found = []
  for kind in ("images", "labels"):
    names = _candidates(kind, split)
    path = next(
      (os.path.join(directory, n) for n in names if os.path.isfile(os.path.join(directory, n))),
      None,
    )
    if path is None:
      raise FileNotFoundError(f"no {' / '.join(names)} in {directory}")
    found.append(path)
  return found[0], found[1]


def load_split(directory: str, split: str) -> tuple[np.ndarray, np.ndarray]:
  """MNIST-style `split` from `directory` -> (uint8 `[N, H, W, 1]`, int32 `[N]`).

  Raises:
    FileNotFoundError: the files are not there.
    ValueError: a file is damaged, or images and labels disagree.
  """
  images_path, labels_path = find_split_files(directory, split)
  images, labels = read_idx(images_path), read_idx(labels_path)
  if images.ndim != 3 or images.dtype != np.uint8:
    raise ValueError(
      f"{images_path}: expected uint8 images [N, H, W], got {images.dtype} {images.shape}."
    )
  if labels.ndim != 1:
    raise ValueError(f"{labels_path}: expected labels [N], got shape {labels.shape}.")
  if len(images) != len(labels):
    raise ValueError(
      f"{images_path} has {len(images)} images but {labels_path} has "
      f"{len(labels)} labels; one of them is damaged or from another set."
    )
  return images[..., None], labels.astype(np.int32)
