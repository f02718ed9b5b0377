"""Inputs the analysis tabs share: what a local checkpoint offers (its kind's ``studio.protocol`` declarations, read
from config.json without weights), which chain tasks the tabs can show, and held-out example images.

Held-out examples are addressed by their index in the data set's **test** split. When the data set is
installed, any index works; when it is not, the tabs fall back to the held-out images shipped in
``assets/examples`` (their file names carry the same test index), so the app works out of the box.
"""
from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError, DataNotFoundError, SamplingError, StudioError
from ..paths import assets_dir
from ..protocol import EnergySpec, TaskSpec, offers
from .masks import animated_note, image_for_model, to_array

EXAMPLES_DIR = assets_dir() / "examples"
EMOJI_DIR = EXAMPLES_DIR / "emoji"


# -- checkpoints and what they offer (studio.protocol) ----------------------------------------------------


def checkpoint_config(name: str) -> tuple[str, dict]:
    """(kind, config dict) of a local checkpoint, read from its config.json without loading weights."""
    from ..hub import checkpoints_dir, read_config

    payload = read_config(checkpoints_dir() / name)
    return str(payload["kind"]), dict(payload["config"])


@dataclass(frozen=True)
class Offer:
    """What a local checkpoint offers, from its config.json alone (no weights): its model class, typed config and
    config dict, its tasks and how its image-space energy reads (None: it has none)."""

    name: str
    cls: type
    config: Any
    raw: dict
    tasks: tuple[TaskSpec, ...]
    energy: EnergySpec | None

    @property
    def title(self) -> str:
        return self.cls.display_name()

    def task(self, name: str) -> TaskSpec | None:
        return next((t for t in self.tasks if t.name == name), None)


def offer(name: str) -> Offer:
    """What the local checkpoint ``name`` offers (its kind's ``task_specs`` and ``image_energy_spec``)."""
    from .. import registry  # noqa: F401  (registers every shipped kind)
    from ..hub import MODEL_KINDS, build_config

    kind, raw = checkpoint_config(name)
    if kind not in MODEL_KINDS:
        raise CheckpointError(f"Checkpoint '{name}' has kind '{kind}', which this version of studio does not know.")
    cls = MODEL_KINDS[kind]
    config = build_config(cls, raw, f"checkpoint '{name}'")
    tasks, energy = offers(cls, config)
    return Offer(name, cls, config, raw, tuple(tasks), energy)


def local_offers() -> dict[str, Offer]:
    """Every readable local checkpoint: name -> Offer. Unreadable folders and unknown kinds are skipped."""
    from ..registry import local_names

    out = {}
    for name in local_names():
        try:
            out[name] = offer(name)
        except StudioError:
            continue
    return out


def is_translation(config: dict) -> bool:
    """A pixel-space translation model (CF-EBM section 6): its energy is that of a target domain."""
    return bool(config.get("target_domain"))


# -- chain tasks -----------------------------------------------------------------------------------

# The task families whose chains the analysis tabs can start themselves: from noise (generate), from a held-out
# image with a preset mask (inpaint) or from a held-out image of the source domain (translate).
CHAIN_FAMILIES = ("generate", "inpaint", "translate")


def chain_tasks(offered: Offer) -> list[TaskSpec]:
    """The tasks of a checkpoint whose chain the Trajectory and Saliency tabs can run and show: the model records
    the chain (``TaskSpec.chain``) and needs nothing beyond an image and a mask. Toys and evaluators offer none,
    nor does a Gaussian prior (it has no chain). A new kind is offered by its own ``task_specs``."""
    return [t for t in offered.tasks if t.chain and t.task in CHAIN_FAMILIES and t.inputs <= {"image", "mask"}]


def task_choices(tasks: list[TaskSpec]) -> list[tuple[str, str]]:
    """(label, value) pairs for a picker: the API takes the task's name, people read its label
    (e.g. "translate (twitter -> google)")."""
    return [(t.label, t.name) for t in tasks]


# -- held-out examples ---------------------------------------------------------------------------


def _index(value) -> int:
    try:
        ok = float(value).is_integer() and int(value) >= 0
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise SamplingError(f"The example index must be a non-negative integer; got {value}.")
    return int(value)


def _shipped(folder: Path, pattern: str) -> dict[int, Path]:
    """Shipped example files by test index (the number after 'test-' in the file name)."""
    out = {}
    for path in sorted(folder.glob(pattern)):
        m = re.search(r"-test-(\d+)-", path.name)
        if m:
            out[int(m.group(1))] = path
    return out


@functools.lru_cache(maxsize=4)
def _emoji_test(size: int, data_root: str):
    from ..data.emoji import load_emoji_pairs

    return load_emoji_pairs("test", size=size)


def on_white(image) -> np.ndarray:
    """Composite any transparency on white (how the emoji data are prepared) -> uint8 H x W x 3 (or 1)."""
    arr = to_array(image)
    if arr.shape[2] in (2, 4):
        alpha = arr[..., -1:].astype(np.float32) / 255
        arr = (arr[..., :-1] * alpha + 255 * (1 - alpha)).round().astype(np.uint8)
    return arr


def held_out_emoji(index, size: int, style: str = "twitter") -> tuple[torch.Tensor, str]:
    """Emoji pair ``index`` of the test split in one style: ([3, size, size] in [-1, 1], a label)."""
    from ..data import data_dir

    i = _index(index)
    try:
        pairs = _emoji_test(int(size), str(data_dir()))
    except DataNotFoundError:
        shipped = _shipped(EMOJI_DIR, f"emoji-test-*-{style}.png")
        if i not in shipped:
            raise DataNotFoundError(
                "The emoji data are not installed (run `bash train/get_data.sh` for all test pairs), so only the "
                f"held-out emoji shipped in assets/examples/emoji can be used: indices {', '.join(map(str, shipped))}; "
                f"got {i}. Or upload an image.") from None
        x, _ = image_for_model(on_white(shipped[i]), size, 3)
        code = shipped[i].name[len(f"emoji-test-{i:03d}-"):-len(f"-{style}.png")]
        return x, f"held-out emoji #{i} ({code}, {style} style)"
    if i >= len(pairs):
        raise SamplingError(f"The emoji test split has {len(pairs)} pairs: the index must be 0 to {len(pairs) - 1}; got {i}.")
    return pairs.style(style)[i].clone(), f"held-out emoji #{i} ({Path(pairs.names[i]).stem}, {style} style)"


@functools.lru_cache(maxsize=2)
def _fmnist_test(search: str):
    from ..data.fashion_mnist import load_fashion_mnist

    return load_fashion_mnist("test")


def held_out_fmnist(index, size: int) -> tuple[torch.Tensor, str]:
    """Fashion-MNIST test image ``index``: ([1, size, size] in [-1, 1], a label)."""
    i = _index(index)
    try:
        data = _fmnist_test(os.environ.get("FASHION_MNIST_DIR", ""))
    except DataNotFoundError:
        shipped = _shipped(EXAMPLES_DIR, "fmnist-test-*.png")
        if i not in shipped:
            raise DataNotFoundError(
                "Fashion-MNIST is not installed (run `bash train/get_data.sh` for the whole test split), so only "
                f"the held-out images shipped in assets/examples can be used: indices {', '.join(map(str, shipped))}; "
                f"got {i}. Or upload an image.") from None
        x, _ = image_for_model(shipped[i], size, 1)
        return x, f"held-out Fashion-MNIST test image #{i} ({shipped[i].stem.split('-', 3)[-1]})"
    if i >= len(data):
        raise SamplingError(f"The Fashion-MNIST test split has {len(data)} images: the index must be 0 to {len(data) - 1}; got {i}.")
    x = data.images[i]
    if x.shape[-1] != size:
        x = torch.nn.functional.interpolate(x[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
    return x.clone(), f"held-out Fashion-MNIST test image #{i} ({data.class_names[int(data.labels[i])]})"


def _source(config: dict, source: str | None) -> str | None:
    """The input domain: the one given, else a translation model's source domain, else None (own data)."""
    if source:
        return source
    return (config.get("source_domain") or "twitter") if is_translation(config) else None


def held_out(config: dict, index, source: str | None = None) -> tuple[torch.Tensor, str]:
    """The held-out example of a model's input domain: ``source`` (an emoji style) when given, the source
    domain of a translation model, Fashion-MNIST for grey models. Other domains take uploads."""
    size = int(config.get("image_size") or config.get("resolution"))
    channels = int(config.get("channels", 1))
    source = _source(config, source)
    if source:
        from ..data.emoji import STYLES

        if source not in STYLES:
            raise SamplingError(f"No held-out examples for the domain '{source}': upload an image instead.")
        return held_out_emoji(index, size, source)
    if channels == 1:
        return held_out_fmnist(index, size)
    raise SamplingError("This model has no held-out examples: upload an image instead.")


def model_input(config: dict, index, upload, source: str | None = None) -> tuple[torch.Tensor, str, list[str]]:
    """The image a tab works on: an upload wins over the held-out index. Emoji-domain uploads (``source``
    given, or a translation model) are composited on white, like their training data; others follow
    ``image_for_model``."""
    size = int(config.get("image_size") or config.get("resolution"))
    channels = int(config.get("channels", 1))
    if upload is not None:
        # The index is not even checked: an upload wins, whatever the index field holds.
        ignored = ["The held-out example index is not used while an image is uploaded (clear the upload to use it)."]
        if not _source(config, source):
            x, notes = image_for_model(upload, size, channels)
            return x, "your upload", ignored + notes
        arr = to_array(upload)
        transparent = arr.shape[2] in (2, 4) and bool((arr[..., -1] < 255).any())
        x, notes = image_for_model(on_white(arr), size, channels)
        # image_for_model only sees the decoded first frame here, so the animation note comes from the upload itself.
        first = animated_note(upload)
        white = ["Transparent pixels were composited on white (as the emoji training data are)."] if transparent else []
        return x, "your upload", ignored + first + white + notes
    x, label = held_out(config, index, source)
    return x, label, []
