"""Quality checks on the shipped checkpoints at small sample counts (no data sets needed)."""
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import studio
from studio.data.fashion_mnist import CLASS_NAMES

EXAMPLES = Path(__file__).resolve().parents[1] / "assets" / "examples"


def test_every_registered_local_checkpoint_loads():
    from studio.registry import local_names

    for name in local_names():
        model = studio.load(name)
        assert model.checkpoint.kind and not model.training


def test_evaluator_fmnist_classifies_the_held_out_examples():
    files = sorted(EXAMPLES.glob("fmnist-test-*.png"))
    assert len(files) == 10
    images = torch.stack([torch.from_numpy(np.asarray(Image.open(f), dtype=np.float32)) for f in files])[:, None] / 127.5 - 1
    names = ["-".join(f.stem.split("-")[3:]) for f in files]
    labels = torch.tensor([[n.lower().replace("/", "-").replace(" ", "-") for n in CLASS_NAMES].index(n) for n in names])
    preds = studio.load("evaluator-fmnist").predict(images)
    assert (preds == labels).sum() >= 9
