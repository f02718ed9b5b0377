"""Fashion-MNIST from the Debian package's IDX files (offline), with a torchvision fallback online.

Images come padded from 28x28 to 32x32 (background -1) in [-1, 1]. Splits:
``train`` (55,000), ``val`` (a fixed 5,000 held out of the official training
set), ``train_full`` (60,000) and ``test`` (10,000).

Where the files are looked for, in order: the ``root`` argument, else
``$FASHION_MNIST_DIR``, else the Debian package's folder plus the folder a
previous ``download=True`` filled.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataNotFoundError, StudioError
from . import data_dir

CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"
SPLITS = ("train", "val", "train_full", "test")
VAL_SIZE = 5000
SIZE = 32
# IDX type codes -> big-endian numpy dtypes (the format stores multi-byte values big-endian).
_DTYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
           0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_INSTALL_HINT = ("Install it with `bash train/get_data.sh` (or `apt-get install dataset-fashion-mnist`), "
                 "point FASHION_MNIST_DIR at a folder holding the IDX files, or pass download=True when online.")


@dataclass
class FashionMNIST:
    images: torch.Tensor  # [N, 1, 32, 32] float32 in [-1, 1]
    labels: torch.Tensor  # [N] int64
    class_names: list[str]

    def __len__(self) -> int:
        return len(self.labels)


def _open(path: Path, mode: str):
    return gzip.open(path, mode) if path.suffix == ".gz" else open(path, mode)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzipped when the name ends in .gz) into a native-endian numpy array."""
    path = Path(path)
    try:
        with _open(path, "rb") as fh:
            raw = fh.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise StudioError(f"{path} is not a valid gzip file ({err}); reinstall the data.") from None
    return _parse_idx(raw, path)


def _parse_idx(raw: bytes, path: Path) -> np.ndarray:
    """Check the header (magic number, dimensions, length) and view the payload."""
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _DTYPES or raw[3] == 0:
        raise StudioError(f"{path} is not an IDX file (bad magic number {raw[:4].hex() or 'none'}).")
    ndim, dtype = raw[3], _DTYPES[raw[2]]
    offset = 4 + 4 * ndim
    if len(raw) < offset:
        raise StudioError(f"{path} is truncated: its header promises {ndim} dimensions.")
    dims = struct.unpack(f">{ndim}I", raw[4:offset])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - offset != expected:
        raise StudioError(f"{path} is truncated or corrupt: header says {expected} data bytes, found {len(raw) - offset}.")
    return np.frombuffer(raw, dtype, offset=offset).reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write an IDX file (gzipped when the name ends in .gz); tests use it to build fixtures."""
    arr = np.asarray(array)
    code = next((c for c, d in _DTYPES.items() if (d.kind, d.itemsize) == (arr.dtype.kind, arr.dtype.itemsize)), None)
    if code is None or arr.ndim == 0:
        raise StudioError(f"write_idx cannot store a {arr.ndim}-d {arr.dtype} array.")
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with _open(Path(path), "wb") as fh:
        fh.write(header + arr.astype(_DTYPES[code]).tobytes())


def _file_pair(folder: Path, prefix: str) -> tuple[Path, Path] | None:
    """The images/labels files of ``prefix`` (train or t10k) in ``folder``, gzipped or not."""
    for ext in (".gz", ""):
        img, lab = folder / f"{prefix}-images-idx3-ubyte{ext}", folder / f"{prefix}-labels-idx1-ubyte{ext}"
        if img.exists() and lab.exists():
            return img, lab
    return None


def _torchvision_dir() -> Path:
    return data_dir() / "torchvision" / "FashionMNIST" / "raw"


def _download(train: bool) -> None:
    """Fetch with torchvision into ``_torchvision_dir()``; any failure becomes one clear error."""
    root = data_dir() / "torchvision"
    try:
        from torchvision.datasets import FashionMNIST as TorchvisionFashionMNIST

        TorchvisionFashionMNIST(str(root), train=train, download=True)
    except Exception as err:  # offline, no torchvision, or a mirror down: all mean "get it another way"
        raise DataNotFoundError(f"Downloading Fashion-MNIST into {root} failed ({err}). {_INSTALL_HINT}") from err


def _load_raw(prefix: str, folders: list[Path], download: bool) -> tuple[np.ndarray, np.ndarray]:
    found = next((pair for f in folders if (pair := _file_pair(f, prefix))), None)
    if found is None and download:
        _download(train=prefix == "train")
        found = _file_pair(_torchvision_dir(), prefix)
    if found is None:
        tried = ", ".join(str(f / f"{prefix}-images-idx3-ubyte[.gz]") for f in folders)
        raise DataNotFoundError(f"Fashion-MNIST '{prefix}' files not found (tried {tried}). {_INSTALL_HINT}")
    images, labels = read_idx(found[0]), read_idx(found[1])
    if images.shape[1:] != (28, 28) or labels.ndim != 1 or len(images) != len(labels):
        raise StudioError(f"Fashion-MNIST files in {found[0].parent} have unexpected shapes {images.shape}, {labels.shape}.")
    if labels.size and not 0 <= labels.min() <= labels.max() < len(CLASS_NAMES):
        raise StudioError(f"Fashion-MNIST labels in {found[1]} fall outside 0..{len(CLASS_NAMES) - 1}.")
    return images, labels


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 [N, 28, 28] -> float [N, 1, 32, 32] in [-1, 1], padded with the background value -1."""
    x = torch.from_numpy(np.asarray(images, dtype=np.float32)).div_(127.5).sub_(1.0).unsqueeze(1)
    pad = (SIZE - x.shape[-1]) // 2
    return F.pad(x, (pad, pad, pad, pad), value=-1.0) if pad > 0 else x


def _search_folders(root: str | os.PathLike | None) -> list[Path]:
    """An explicit root (argument or env) is the only place looked at; otherwise the defaults."""
    explicit = root or os.environ.get("FASHION_MNIST_DIR")
    return [Path(explicit)] if explicit else [Path(DEFAULT_ROOT), _torchvision_dir()]


def val_indices(n: int) -> np.ndarray:
    """The fixed validation rows of an ``n``-image training set (5,000 of 60,000; a tenth of tiny sets)."""
    perm = np.random.default_rng(0).permutation(n)  # seeded: the same rows on every run and machine
    return np.sort(perm[: min(VAL_SIZE, n // 10)])


def load_fashion_mnist(split: str = "train", root: str | os.PathLike | None = None, download: bool = False) -> FashionMNIST:
    """Load a split as tensors (see the module docstring for the splits and where files are found)."""
    if split not in SPLITS:
        raise StudioError(f"Unknown split '{split}'; choose one of {SPLITS}.")
    images, labels = _load_raw("t10k" if split == "test" else "train", _search_folders(root), download)
    if split in ("train", "val"):
        is_val = np.zeros(len(labels), bool)
        is_val[val_indices(len(labels))] = True
        keep = is_val if split == "val" else ~is_val
        images, labels = images[keep], labels[keep]
    return FashionMNIST(to_tensor(images), torch.from_numpy(labels.astype(np.int64)), list(CLASS_NAMES))
