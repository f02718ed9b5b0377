"""studio.data.fashion_mnist on tiny IDX fixtures the tests write (no Debian package needed)."""
import gzip
import struct
import sys
import types

import numpy as np
import pytest
import torch

from studio.data import fashion_mnist as fm
from studio.errors import DataNotFoundError, StudioError

N_TRAIN, N_TEST = 60, 20


def _images(n: int) -> np.ndarray:
    """Random images whose first pixel is the row number, so rows can be identified after splitting."""
    x = np.random.default_rng(n).integers(0, 256, (n, 28, 28), dtype=np.uint8)
    x[:, 0, 0] = np.arange(n)
    x[0, 5, 5], x[0, 5, 6] = 255, 0  # the extremes map to exactly +1 and -1
    return x


def _write_split(folder, prefix: str, n: int, ext: str = ".gz") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    fm.write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", _images(n))
    fm.write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", ((np.arange(n) * 7) % 10).astype(np.uint8))


@pytest.fixture
def root(tmp_path):
    _write_split(tmp_path / "fmnist", "train", N_TRAIN)
    _write_split(tmp_path / "fmnist", "t10k", N_TEST)
    return tmp_path / "fmnist"


def _row_ids(data: fm.FashionMNIST) -> list[int]:
    return [round((float(v) + 1) * 127.5) for v in data.images[:, 0, 2, 2]]


# ----------------------------------------------------------------------------- IDX format


def test_read_idx_parses_the_standard_layout(tmp_path):
    # Built by hand (not by write_idx): magic 0x00000803 = unsigned bytes, 3 dims, big-endian sizes.
    payload = bytes(range(12))
    (tmp_path / "x").write_bytes(struct.pack(">BBBB3I", 0, 0, 0x08, 3, 2, 3, 2) + payload)
    arr = fm.read_idx(tmp_path / "x")
    assert arr.shape == (2, 3, 2) and arr.dtype == np.uint8
    assert arr.flatten().tolist() == list(payload)
    (tmp_path / "y.gz").write_bytes(gzip.compress(struct.pack(">BBBBI", 0, 0, 0x0C, 1, 2) + struct.pack(">2i", -5, 70000)))
    assert fm.read_idx(tmp_path / "y.gz").tolist() == [-5, 70000]


@pytest.mark.parametrize("name", ["a.gz", "a"])
@pytest.mark.parametrize("array", [np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
                                   np.array([[-3, 1_000_000]], dtype=np.int32),
                                   np.array([0.5, -2.25], dtype=np.float32)])
def test_write_idx_round_trips(tmp_path, name, array):
    fm.write_idx(tmp_path / name, array)
    back = fm.read_idx(tmp_path / name)
    assert back.dtype == array.dtype and back.shape == array.shape and np.array_equal(back, array)
    raw = (tmp_path / name).read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == name.endswith(".gz")  # gzipped exactly when asked


def test_malformed_idx_files_raise_studio_errors(tmp_path):
    cases = {
        "magic.gz": gzip.compress(b"\x01\x02\x03\x04hello"),
        "short": b"\x00\x00",
        "nonzero": struct.pack(">BBBBI", 1, 1, 0x08, 1, 3) + bytes(3),  # a valid layout behind a wrong magic
        "extra": struct.pack(">BBBBI", 0, 0, 0x08, 1, 3) + bytes(5),  # trailing bytes: not what the header says
        "header": struct.pack(">BBBBI", 0, 0, 0x08, 3, 2),  # promises 3 dims, holds 1
        "payload": struct.pack(">BBBB2I", 0, 0, 0x08, 2, 3, 4) + bytes(10),  # 12 bytes promised
    }
    messages = {"magic.gz": "magic", "short": "magic", "nonzero": "magic", "extra": "corrupt",
                "header": "truncated", "payload": "truncated"}
    for name, raw in cases.items():
        (tmp_path / name).write_bytes(raw)
        with pytest.raises(StudioError, match=messages[name]):
            fm.read_idx(tmp_path / name)
    (tmp_path / "notgzip.gz").write_bytes(b"plain bytes, not gzip")
    with pytest.raises(StudioError, match="gzip"):
        fm.read_idx(tmp_path / "notgzip.gz")


# ----------------------------------------------------------------------------- loading


def test_test_split_is_padded_scaled_and_keeps_labels(root):
    data = fm.load_fashion_mnist("test", root=root)
    assert len(data) == N_TEST and data.images.shape == (N_TEST, 1, 32, 32) and data.images.dtype == torch.float32
    assert data.labels.dtype == torch.int64 and data.labels.tolist() == [(i * 7) % 10 for i in range(N_TEST)]
    assert data.class_names == fm.CLASS_NAMES and data.class_names[0] == "T-shirt/top" and data.class_names[9] == "Ankle boot"
    x = data.images
    assert x.min() >= -1 and x.max() <= 1
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert (x[:, 0][:, border] == -1).all()  # 2 px of background on every side
    raw = fm.read_idx(root / "t10k-images-idx3-ubyte.gz")
    torch.testing.assert_close(x[:, 0, 2:30, 2:30], torch.from_numpy(raw).float() / 127.5 - 1)
    assert x[0, 0, 7, 7] == 1.0 and x[0, 0, 7, 8] == -1.0


def test_train_and_val_partition_the_training_set_deterministically(root):
    train, val, full = (fm.load_fashion_mnist(s, root=root) for s in ("train", "val", "train_full"))
    assert (len(train), len(val), len(full)) == (N_TRAIN - N_TRAIN // 10, N_TRAIN // 10, N_TRAIN)
    ids_train, ids_val = _row_ids(train), _row_ids(val)
    assert set(ids_train).isdisjoint(ids_val) and sorted(ids_train + ids_val) == list(range(N_TRAIN))
    assert ids_val == sorted(np.random.default_rng(0).permutation(N_TRAIN)[: N_TRAIN // 10].tolist())
    assert val.labels.tolist() == [(i * 7) % 10 for i in ids_val]  # labels travel with their images
    again = fm.load_fashion_mnist("val", root=root)
    assert torch.equal(again.images, val.images) and torch.equal(again.labels, val.labels)
    assert len(fm.val_indices(60_000)) == fm.VAL_SIZE == 5000


def test_plain_idx_files_and_env_override(tmp_path, monkeypatch):
    _write_split(tmp_path / "plain", "t10k", 4, ext="")
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp_path / "plain"))
    assert len(fm.load_fashion_mnist("test")) == 4
    _write_split(tmp_path / "arg", "t10k", 3)
    assert len(fm.load_fashion_mnist("test", root=tmp_path / "arg")) == 3  # the argument beats the env


def test_missing_data_error_says_where_it_looked_and_what_to_do(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataNotFoundError) as info:
        fm.load_fashion_mnist("test", root=missing)
    msg = str(info.value)
    assert str(missing / "t10k-images-idx3-ubyte") in msg
    assert "bash train/get_data.sh" in msg and "dataset-fashion-mnist" in msg and "download=True" in msg
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, StudioError)


def test_bad_split_and_inconsistent_files(root, tmp_path):
    with pytest.raises(StudioError, match="Unknown split 'dev'"):
        fm.load_fashion_mnist("dev", root=root)
    fm.write_idx(root / "t10k-labels-idx1-ubyte.gz", np.zeros(N_TEST - 1, np.uint8))
    with pytest.raises(StudioError, match="unexpected shapes"):
        fm.load_fashion_mnist("test", root=root)
    fm.write_idx(root / "t10k-labels-idx1-ubyte.gz", np.full(N_TEST, 10, np.uint8))
    with pytest.raises(StudioError, match="labels"):
        fm.load_fashion_mnist("test", root=root)


def _fake_torchvision(monkeypatch, downloader):
    module = types.ModuleType("torchvision.datasets")
    module.FashionMNIST = downloader
    monkeypatch.setitem(sys.modules, "torchvision.datasets", module)


def test_download_fallback_uses_torchvision_layout(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_DATA_DIR", str(tmp_path / "data"))
    calls = []

    def fake_download(root, train, download):
        calls.append((root, train, download))
        _write_split(tmp_path / "data" / "torchvision" / "FashionMNIST" / "raw", "train" if train else "t10k", 5)

    _fake_torchvision(monkeypatch, fake_download)
    assert len(fm.load_fashion_mnist("test", root=tmp_path / "empty", download=True)) == 5
    assert calls == [(str(tmp_path / "data" / "torchvision"), False, True)]
    with pytest.raises(DataNotFoundError):  # without download=True nothing is fetched
        fm.load_fashion_mnist("train", root=tmp_path / "empty")
    assert len(calls) == 1


def test_failed_download_becomes_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_DATA_DIR", str(tmp_path / "data"))

    def offline(root, train, download):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    _fake_torchvision(monkeypatch, offline)
    with pytest.raises(DataNotFoundError, match="Downloading Fashion-MNIST.*failed.*get_data.sh"):
        fm.load_fashion_mnist("train", root=tmp_path / "empty", download=True)
