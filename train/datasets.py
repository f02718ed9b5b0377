"""Labelled splits used to train and evaluate the reference evaluators.

Each data set has ``train`` / ``val`` (both from the training data) and
``test`` (held out: never used for training or model selection).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from studio.errors import StudioError

DATA_CREDITS = {
    "fashion-mnist": "Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017), MIT licence, from Debian's dataset-fashion-mnist.",
    "emoji": "Twemoji (Twitter, CC-BY 4.0) and Noto Emoji (Google, Apache 2.0), via the npm packages "
             "emoji-datasource-twitter@16.0.0 and emoji-datasource-google@16.0.0 (MIT).",
    "shapes3d": "Procedural 3D shapes rendered by studio.data.shapes3d (the project's own).",
}


@dataclass
class LabelledData:
    images: torch.Tensor  # [N, C, H, W] in [-1, 1]
    labels: torch.Tensor  # [N] int64
    class_names: list[str]


def _fashion(split: str) -> LabelledData:
    from studio.data.fashion_mnist import load_fashion_mnist

    d = load_fashion_mnist(split)
    return LabelledData(d.images, d.labels, d.class_names)


def _emoji(split: str) -> LabelledData:
    """Style classification: label 0 = Twitter, 1 = Google; val is a fixed tenth of the train pairs."""
    from studio.data.emoji import load_emoji_pairs

    pairs = load_emoji_pairs("test" if split == "test" else "train", size=64)
    n = len(pairs.names)
    idx = torch.arange(n)
    if split != "test":
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
        idx = perm[: n // 10] if split == "val" else perm[n // 10 :]
    images = torch.cat([pairs.twitter[idx], pairs.google[idx]])
    labels = torch.cat([torch.zeros(len(idx), dtype=torch.long), torch.ones(len(idx), dtype=torch.long)])
    return LabelledData(images, labels, ["twitter", "google"])


def _shapes(split: str) -> LabelledData:
    """Category classification of single views; val = the last tenth of the training objects."""
    from studio.data import shapes3d

    if split == "test":
        data = shapes3d.build_dataset("test", shapes3d.DEFAULT_TEST_OBJECTS, progress=True)
    else:
        data = shapes3d.build_dataset("train", shapes3d.DEFAULT_TRAIN_OBJECTS, progress=True)
        n_val = len(data.label) // 10
        sl = slice(len(data.label) - n_val, None) if split == "val" else slice(0, len(data.label) - n_val)
        data = data.subset(sl)
    if split != "test":
        # Four well-spread views per training object keep the set small; test uses all views.
        data.rgb = data.rgb[:, :: max(1, data.rgb.shape[1] // 4)]
    n, v = data.rgb.shape[:2]
    rgb = data.rgb.reshape(n * v, *data.rgb.shape[2:])
    images = rgb.float() / 127.5 - 1 if rgb.dtype == torch.uint8 else rgb * 2 - 1
    labels = data.label.repeat_interleave(v)
    return LabelledData(images, labels, list(shapes3d.CATEGORIES))


LOADERS = {"fashion-mnist": _fashion, "emoji": _emoji, "shapes3d": _shapes}


def labelled_split(dataset: str, split: str) -> LabelledData:
    if dataset not in LOADERS:
        raise StudioError(f"Unknown dataset '{dataset}'; choose one of {sorted(LOADERS)}.")
    if split not in ("train", "val", "test"):
        raise StudioError(f"Unknown split '{split}'; choose train, val or test.")
    return LOADERS[dataset](split)
