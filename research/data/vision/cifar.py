"""Reader for the CIFAR-10 "python version" files, unpacked or straight from the tarball.

The official distribution (`cifar-10-python.tar.gz`, folder `cifar-10-batches-py/`)
stores each batch as a python pickle: `{b'data': uint8 [10000, 3072],
b'labels': [int] * 10000}`, rows holding the R, G and B 32x32 planes in turn.
Pickles can run code, so they are read with an unpickler that only rebuilds
numpy arrays and plain containers.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile

import numpy as np

FOLDER = "cifar-10-batches-py"
TARBALL = "cifar-10-python.tar.gz"
_BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


class _NumpyOnlyUnpickler(pickle.Unpickler):
  """Refuses every global except what a pickled numpy array needs."""

  _ALLOWED = frozenset(
    {
      ("numpy.core.multiarray", "_reconstruct"),
      ("numpy._core.multiarray", "_reconstruct"),
      ("numpy", "ndarray"),
      ("numpy", "dtype"),
      # Python 3 pickles (protocol 2) store bytes as _codecs.encode(str, 'latin1').
      ("_codecs", "encode"),
    }
  )

  def find_class(self, module, name):
    if (module, name) in self._ALLOWED:
      return super().find_class(module, name)
    raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR pickle")


def _unpickle(data: bytes, where: str) -> dict:
  try:
    # encoding='bytes': the files were written by python 2 (keys are bytes).
    obj = _NumpyOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
  except Exception as e:  # noqa: BLE001  # a damaged pickle can raise almost anything
    raise ValueError(
      f"{where}: cannot read CIFAR-10 batch ({type(e).__name__}: {e}); "
      "the file is damaged, download it again."
    ) from None
  if not isinstance(obj, dict):
    raise ValueError(f"{where}: expected a dict in a CIFAR-10 batch, got {type(obj).__name__}.")
  return obj


def find(directory: str) -> str:
  """The CIFAR-10 folder or tarball inside `directory` (or `directory` itself).

  Raises:
    FileNotFoundError: listing what was looked for.
  """
  for candidate in (os.path.join(directory, FOLDER), directory):
    if os.path.isfile(os.path.join(candidate, "test_batch")):
      return candidate
  tarball = os.path.join(directory, TARBALL)
  if os.path.isfile(tarball):
    return tarball
  raise FileNotFoundError(
    f"no {FOLDER}/ (with data_batch_1..5, test_batch) or {TARBALL} in {directory}"
  )


def _read_members(path: str, names: list[str]) -> dict[str, tuple[bytes, str]]:
  """`{name: (bytes, where)}` for batch files in a folder or a .tar.gz."""
  out = {}
  if os.path.isdir(path):
    for name in names + ["batches.meta"]:
      file = os.path.join(path, name)
      if not os.path.isfile(file):
        if name == "batches.meta":
          continue
        raise FileNotFoundError(f"{file} is missing (the CIFAR-10 folder is incomplete)")
      with open(file, "rb") as f:
        out[name] = (f.read(), file)
    return out
  try:
    with tarfile.open(path, "r:gz") as tar:
      for name in names + ["batches.meta"]:
        member = f"{FOLDER}/{name}"
        try:
          member_file = tar.extractfile(member)  # None: not a regular file
        except KeyError:
          member_file = None
        if member_file is None:
          if name == "batches.meta":
            continue
          raise ValueError(
            f"{path}: has no member {member}; not the CIFAR-10 python "
            "tarball or damaged, download it again."
          )
        out[name] = (member_file.read(), f"{path}:{member}")
  except (tarfile.TarError, EOFError, OSError) as e:
    raise ValueError(
      f"{path}: cannot read tarball ({type(e).__name__}: {e}); it is "
      "truncated or damaged, download it again."
    ) from None
  return out


def load_split(path: str, split: str) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
  """CIFAR-10 `split` from a folder or tarball -> (uint8 `[N, 32, 32, 3]`, int32 `[N]`, names).

  `names` is the 10 class names from `batches.meta`, or None if absent.
  """
  if split not in _BATCHES:
    raise ValueError(f"CIFAR-10 split must be one of {sorted(_BATCHES)}, got {split!r}.")
  members = _read_members(path, _BATCHES[split])
  images, labels = [], []
  for name in _BATCHES[split]:
    data, where = members[name]
    batch = _unpickle(data, where)
    x = np.asarray(batch.get(b"data"))
    y = np.asarray(batch.get(b"labels"))
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32:
      raise ValueError(f"{where}: expected uint8 data [N, 3072], got {x.dtype} {x.shape}.")
    if y.shape != (len(x),):
      raise ValueError(f"{where}: {len(x)} images but labels of shape {y.shape}.")
    # Rows are channel planes: [N, 3, 32, 32] -> [N, 32, 32, 3].
    images.append(x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    labels.append(y.astype(np.int32))
  names = None
  if "batches.meta" in members:
    meta = _unpickle(*members["batches.meta"])
    names = [
      n.decode() if isinstance(n, bytes) else str(n) for n in meta.get(b"label_names", [])
    ] or None
  return np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels), names
