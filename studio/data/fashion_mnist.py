"""Fashion-MNIST from the Debian package's IDX files (offline), with a torchvision fallback online.

Images come padded from 28x28 to 32x32 (background -1) in [-1, 1]. Splits:
``train`` (55,000), ``val`` (a fixed 5,000 held out of the official training
set), ``train_full`` (60,000) and ``test`` (10,000).
"""
from __future__ import annotations

import gzip
import os
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
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a numpy array, checking its header."""
    path = Path(path)
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise StudioError(f"{path} is not an IDX file (bad magic number).")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(_DTYPES[raw[2]])
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - offset != expected:
        raise StudioError(f"{path} is truncated or corrupt: header says {expected} data bytes, found {len(raw) - offset}.")
    return np.frombuffer(raw, dtype, offset=offset).reshape(dims)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write an IDX file (gzipped when the name ends in .gz); used by tests to build fixtures."""
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09}
    arr = np.ascontiguousarray(array)
    if arr.dtype not in codes:
        raise StudioError(f"write_idx supports uint8/int8 arrays, not {arr.dtype}.")
    header = bytes([0, 0, codes[arr.dtype], arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    path = Path(path)
    with (gzip.open if path.suffix == ".gz" else open)(path, "wb") as fh:
        fh.write(header + arr.tobytes())


@dataclass
class FashionMNIST:
    images: torch.Tensor  # [N, 1, 32, 32] float32 in [-1, 1]
    labels: torch.Tensor  # [N] int64
    class_names: list[str]

    def __len__(self) -> int:
        return len(self.labels)


def _find_files(root: Path, prefix: str) -> tuple[Path, Path] | None:
    for ext in (".gz", ""):
        img, lab = root / f"{prefix}-images-idx3-ubyte{ext}", root / f"{prefix}-labels-idx1-ubyte{ext}"
        if img.exists() and lab.exists():
            return img, lab
    return None


def _load_raw(prefix: str, root: Path, download: bool) -> tuple[np.ndarray, np.ndarray]:
    found = _find_files(root, prefix)
    if found is None and download:
        from torchvision.datasets import FashionMNIST as TV

        tv_root = data_dir() / "torchvision"
        TV(str(tv_root), train=prefix == "train", download=True)
        found = _find_files(tv_root / "FashionMNIST" / "raw", prefix)
    if found is None:
        raise DataNotFoundError(
            f"Fashion-MNIST '{prefix}' files not found in {root}. Install them with `bash train/get_data.sh` "
            "(or `apt-get install dataset-fashion-mnist`), point FASHION_MNIST_DIR at a folder with the IDX files, "
            "or pass download=True when online."
        )
    images, labels = read_idx(found[0]), read_idx(found[1])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise StudioError(f"Fashion-MNIST files in {found[0].parent} have inconsistent shapes {images.shape}, {labels.shape}.")
    return images, labels


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 [N, 28, 28] -> float [N, 1, 32, 32] in [-1, 1], padded with the background value -1."""
    x = torch.from_numpy(np.asarray(images, dtype=np.float32)).div_(127.5).sub_(1.0).unsqueeze(1)
    pad = (32 - x.shape[-1]) // 2
    return F.pad(x, (pad, pad, pad, pad), value=-1.0) if pad > 0 else x


def load_fashion_mnist(split: str = "train", root: str | os.PathLike | None = None, download: bool = False) -> FashionMNIST:
    """Load a split as tensors (see the module docstring for the splits)."""
    if split not in SPLITS:
        raise StudioError(f"Unknown split '{split}'; choose one of {SPLITS}.")
    root = Path(root or os.environ.get("FASHION_MNIST_DIR", DEFAULT_ROOT))
    images, labels = _load_raw("t10k" if split == "test" else "train", root, download)
    if split in ("train", "val"):
        # A fixed permutation: the validation part never changes between runs or machines.
        perm = np.random.default_rng(0).permutation(len(labels))
        n_val = min(VAL_SIZE, len(labels) // 10) if len(labels) < 10 * VAL_SIZE else VAL_SIZE
        idx = np.sort(perm[:n_val] if split == "val" else perm[n_val:])
        images, labels = images[idx], labels[idx]
    return FashionMNIST(to_tensor(images), torch.from_numpy(labels.astype(np.int64)), list(CLASS_NAMES))
