"""Twitter and Google emoji: the same emoji drawn in two styles (unpaired training, paired evaluation).

Files come from the npm packs installed by ``train/get_data.sh`` into
``<data>/emoji/<style>/{emoji.json, img/<style>/64/*.png}``. Image file names
match across styles, which gives ground-truth pairs for evaluation.

* RGBA is composited on white before any resizing.
* The train/test split is by *base* emoji (a stable hash of its ``unified``
  code); skin-tone variants follow their base, so no test pair, nor a variant
  of one, is ever seen in training.
"""
from __future__ import annotations

import hashlib
import json
import numbers
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image

from ..errors import DataNotFoundError, StudioError
from . import data_dir

STYLES = ("twitter", "google")
TEST_FRACTION = 0.15
SPLITS = ("train", "test", "all")
CACHE_VERSION = 1
_INSTALL_HINT = "Run `bash train/get_data.sh` to install it."


@dataclass(frozen=True)
class EmojiEntry:
    image: str  # file name, shared by both styles
    base: str  # unified code of the base emoji (split key)
    category: str


@dataclass
class EmojiPairs:
    names: list[str]
    twitter: torch.Tensor  # [N, 3, S, S] in [-1, 1]
    google: torch.Tensor
    categories: list[str]

    def __len__(self) -> int:
        return len(self.names)

    def style(self, name: str) -> torch.Tensor:
        if name not in STYLES:
            raise StudioError(f"Unknown style '{name}'; choose one of {STYLES}.")
        return getattr(self, name)


def default_root() -> Path:
    return data_dir() / "emoji"


def _unit_hash(text: str) -> float:
    return int(hashlib.sha1(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def split_of(base: str) -> str:
    """Stable split assignment: the same emoji lands in the same split on every machine."""
    return "test" if _unit_hash(base) < TEST_FRACTION else "train"


def holdout_mask(names: list[str], fraction: float, root: str | Path | None = None) -> torch.Tensor:
    """Which of the images ``names`` (one split's ``EmojiPairs.names``) fall in a validation fold of about
    ``fraction`` of the base emoji. Like the test split it goes by base emoji (skin-tone variants follow
    their base) with a hash of its own, so a model trained without the fold can be tuned on it and the
    test pairs stay untouched."""
    if not 0.0 <= fraction < 1.0:
        raise StudioError(f"The holdout fraction must be in [0, 1); got {fraction}.")
    return torch.tensor([fraction > 0 and _unit_hash("holdout:" + b) < fraction for b in base_names(names, root)], dtype=torch.bool)


def base_names(names: list[str], root: str | Path | None = None) -> list[str]:
    """The base emoji (its ``unified`` code) of each image in ``names``: skin-tone variants share their base's."""
    base_of = {e.image: e.base for e in index(Path(root) if root else None)}
    return [base_of[n] for n in names]


def _read_meta(root: Path, style: str) -> list[dict]:
    path = root / style / "emoji.json"
    if not path.exists():
        raise DataNotFoundError(f"Emoji data for '{style}' not found at {path}. {_INSTALL_HINT}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise StudioError(f"{path} is not valid JSON ({err}); delete {path.parent} and run `bash train/get_data.sh` again.") from None


def index(root: Path | None = None) -> list[EmojiEntry]:
    """Entries (with skin variants) that have an image in both styles, Component category excluded."""
    root = Path(root or default_root())
    metas = {s: _read_meta(root, s) for s in STYLES}
    other = {e["unified"]: e for e in metas["google"]}
    entries = []
    for e in metas["twitter"]:
        g = other.get(e["unified"])
        if g is None or e.get("category") == "Component":
            continue
        candidates = [(e, g)] + [(v, g.get("skin_variations", {}).get(k)) for k, v in e.get("skin_variations", {}).items()]
        for t_item, g_item in candidates:
            if g_item and t_item.get("has_img_twitter") and g_item.get("has_img_google") and t_item["image"] == g_item["image"]:
                entries.append(EmojiEntry(t_item["image"], e["unified"], e["category"]))
    return entries


def _load_image(path: Path, size: int) -> np.ndarray:
    """RGBA file -> uint8 [size, size, 3]: composite on white first, so resampling never mixes in hidden colours."""
    if not path.exists():
        raise DataNotFoundError(f"Emoji image {path} is missing (incomplete install?). {_INSTALL_HINT}")
    try:
        im = Image.open(path).convert("RGBA")
    except (OSError, ValueError) as err:
        raise StudioError(f"Cannot read emoji image {path}: {err}") from None
    im = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), im).convert("RGB")
    if im.size != (size, size):
        im = im.resize((size, size), Image.LANCZOS)
    return np.asarray(im, dtype=np.uint8)


def _cache_path(root: Path, split: str, size: int, entries: list[EmojiEntry]) -> Path:
    """One file per (root, split, size); the key also hashes the file list, so a changed install misses."""
    names = hashlib.sha1("\n".join(e.image for e in entries).encode()).hexdigest()
    key = hashlib.sha1(f"{root.resolve()}|{split}|{size}|{names}|{CACHE_VERSION}".encode()).hexdigest()[:12]
    return data_dir() / "cache" / f"emoji-{split}-{size}-{key}.npz"


def _read_cache(path: Path, count: int, size: int) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None when absent, unreadable or of the wrong shape (then they are rebuilt)."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {s: z[s] for s in STYLES}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    ok = all(a.shape == (count, size, size, 3) and a.dtype == np.uint8 for a in arrays.values())
    return arrays if ok else None


def _write_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write via a temporary file and rename, so a crash or a concurrent reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a cache of public images need not be
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _decode(root: Path, entries: list[EmojiEntry], size: int) -> dict[str, np.ndarray]:
    return {s: np.stack([_load_image(root / s / "img" / s / "64" / e.image, size) for e in entries])
            if entries else np.zeros((0, size, size, 3), np.uint8) for s in STYLES}


def _positive_int(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise StudioError(f"{what} must be a positive integer; got {value!r}.")
    return int(value)


def load_emoji_pairs(split: str = "train", size: int = 64, root: str | Path | None = None, cache: bool = True) -> EmojiPairs:
    """Paired Twitter/Google images of a split, composited on white, at ``size`` px, in [-1, 1]."""
    if split not in SPLITS:
        raise StudioError(f"Unknown split '{split}'; choose one of {SPLITS}.")
    size = _positive_int(size, "size")
    root = Path(root or default_root())
    entries = [e for e in index(root) if split == "all" or split_of(e.base) == split]
    cpath = _cache_path(root, split, size, entries)
    arrays = _read_cache(cpath, len(entries), size) if cache else None
    if arrays is None:
        arrays = _decode(root, entries, size)
        if cache:
            _write_cache(cpath, arrays)
    tensors = {s: torch.from_numpy(arrays[s]).permute(0, 3, 1, 2).float().div(127.5).sub(1) for s in STYLES}
    return EmojiPairs([e.image for e in entries], tensors["twitter"], tensors["google"], [e.category for e in entries])


def unpaired_batches(pairs: EmojiPairs, batch_size: int, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless training batches with the two domains shuffled independently (no pairing leaks)."""
    n = len(pairs)
    _positive_int(batch_size, "batch_size")
    if n < batch_size:
        raise StudioError(f"batch_size {batch_size} exceeds the {n} emoji available.")
    while True:
        pt, pg = torch.randperm(n, generator=generator), torch.randperm(n, generator=generator)
        for i in range(0, n - batch_size + 1, batch_size):
            yield pairs.twitter[pt[i : i + batch_size]], pairs.google[pg[i : i + batch_size]]


def paired_batches(pairs: EmojiPairs, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Evaluation batches in a fixed order, with index i of both domains the same emoji."""
    _positive_int(batch_size, "batch_size")
    for i in range(0, len(pairs), batch_size):
        yield pairs.twitter[i : i + batch_size], pairs.google[i : i + batch_size]
