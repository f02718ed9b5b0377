"""Evaluation helpers shared by ``train/evaluate.py`` and the per-method evaluators (``train/eval_*.py``).

They live here so that evaluate.py can import the per-method evaluators and those can use these helpers without
importing evaluate.py back (no import cycle; ``tests/test_import_graph.py`` checks).
"""
from __future__ import annotations

from typing import Callable

import torch

import studio
from studio.metrics import batched_features, frechet_distance, psnr, ssim

from .datasets import labelled_split

# The reference classifier (train/evaluator.py) whose features define FD for each dataset.
EVALUATOR_FOR = {"fashion-mnist": "evaluator-fmnist", "emoji": "evaluator-emoji", "shapes3d": "evaluator-shapes3d"}


def sample_in_batches(fn: Callable[[str, list], torch.Tensor], seeds: list[int], classes: list, batch: int = 100) -> torch.Tensor:
    """``fn(seeds_text, classes)`` over ``seeds`` in batches of ``batch``, concatenated (one chain per seed)."""
    out = []
    for i in range(0, len(seeds), batch):
        chunk = seeds[i : i + batch]
        out.append(fn(",".join(map(str, chunk)), classes[i : i + batch]))
    return torch.cat(out)


def training_cost(model) -> dict:
    """``train_hours`` summed over every run the checkpoint came from (--init-from keeps the earlier ones)."""
    extra = model.checkpoint.extra
    runs = [*extra.get("earlier_training", []), extra.get("training", {})]
    walls = [r["wall_time_minutes"] for r in runs if r.get("wall_time_minutes") is not None]
    return {"train_hours": round(sum(walls) / 60, 2), "train_runs": len(walls)} if walls else {}


def fmnist_reference(samples: int, seed: int):
    """The FD judge, the test images, a fixed permutation of them and the features of the first ``samples``."""
    judge = studio.load(EVALUATOR_FOR["fashion-mnist"])
    test = labelled_split("fashion-mnist", "test").images
    perm = torch.randperm(len(test), generator=torch.Generator().manual_seed(seed))
    return judge, test, perm, batched_features(judge.features, test[perm[:samples]])


def per_image_chains(fn: Callable[[torch.Tensor, str], torch.Tensor], images: torch.Tensor, seeds: list[int],
                     batch: int = 100) -> torch.Tensor:
    """``fn(images, seeds)`` over batches, one seed per image (as a comma-separated seed list)."""
    return torch.cat([fn(images[i : i + batch], ",".join(map(str, seeds[i : i + batch]))) for i in range(0, len(images), batch)])


def translation_metrics(translate: Callable[[torch.Tensor, str], torch.Tensor], prefix: str, direction: str,
                        limit: int = 0) -> dict:
    """Faithfulness against the true pairs of the held-out emoji test split: PSNR/SSIM to the target
    drawing (and of the untranslated input, the identity baseline), the evaluator's probability of the
    target style, and FD to the target-style test set. ``translate(images, seeds)`` returns outputs."""
    from studio.data.emoji import load_emoji_pairs

    source_style, target_style = {"t2g": ("twitter", "google"), "g2t": ("google", "twitter")}[direction]
    pairs = load_emoji_pairs("test", size=64)
    source, target = pairs.style(source_style), pairs.style(target_style)
    if limit:
        source, target = source[:limit], target[:limit]
    out = per_image_chains(translate, source, list(range(len(source))), batch=64)
    judge = studio.load(EVALUATOR_FOR["emoji"])
    style = judge.config.class_names.index(target_style)
    with torch.no_grad():
        probs = torch.cat([judge(out[i : i + 256]).softmax(-1)[:, style] for i in range(0, len(out), 256)])
    fd = frechet_distance(batched_features(judge.features, out), batched_features(judge.features, target))
    out_psnr, identity_psnr = float(psnr(out, target).mean()), float(psnr(source, target).mean())
    # The bar is out_psnr > identity_psnr; the gain keeps three decimals so a small margin is not lost to rounding.
    return {f"{prefix}_psnr": round(out_psnr, 2), f"{prefix}_psnr_gain": round(out_psnr - identity_psnr, 3),
            f"{prefix}_ssim": round(float(ssim(out, target).mean()), 4),
            f"identity_{direction}_psnr": round(identity_psnr, 2),
            f"identity_{direction}_ssim": round(float(ssim(source, target).mean()), 4),
            f"{prefix}_target_score": round(float(probs.mean()), 4), f"{prefix}_fd": round(fd, 3),
            f"{prefix}_pairs": len(source)}
