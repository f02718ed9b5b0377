"""Recompute a checkpoint's metrics on held-out data and write them into its model card.

    python -m train.evaluate NAME [--samples N] [--seed S] [--json]

Prints the metrics (one JSON object with --json), writes
``checkpoints/NAME/metrics.json`` and replaces the metrics table in the card.
Every number comes from held-out data (test splits) and fixed seeds.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Callable

import torch

import studio
from studio.hub import update_card_metrics
from studio.metrics import batched_features, class_accuracy, fd_floor, frechet_distance

from .datasets import labelled_split

EVALUATOR_FOR = {"fashion-mnist": "evaluator-fmnist", "emoji": "evaluator-emoji", "shapes3d": "evaluator-shapes3d"}


def evaluate_evaluator(model, samples: int, seed: int) -> dict:
    """Held-out test accuracy; for Fashion-MNIST also the FD floor (real train vs real test)."""
    dataset = model.config.dataset
    test = labelled_split(dataset, "test")
    metrics = {"test_accuracy": round(class_accuracy(model.predict(test.images), test.labels), 4), "test_images": len(test.labels)}
    if dataset == "fashion-mnist":
        train = labelled_split(dataset, "train")
        n = min(samples, len(test.images))
        metrics[f"fd_floor_{n}"] = round(fd_floor(model.features, train.images, test.images, n, seed), 4)
    return metrics


def _sample_in_batches(fn: Callable[[str, list], torch.Tensor], seeds: list[int], classes: list, batch: int = 100) -> torch.Tensor:
    out = []
    for i in range(0, len(seeds), batch):
        chunk = seeds[i : i + batch]
        out.append(fn(",".join(map(str, chunk)), classes[i : i + batch]))
    return torch.cat(out)


def evaluate_cdrl(model, samples: int, seed: int) -> dict:
    """Class accuracy at w = 0, 1, 3 (500 samples), FD at 2,000 samples (conditional and not), DRL's FD, costs."""
    judge = studio.load(EVALUATOR_FOR["fashion-mnist"])
    test = labelled_split("fashion-mnist", "test")
    real_feats = batched_features(judge.features, test.images[torch.randperm(len(test.images), generator=torch.Generator().manual_seed(seed))[:samples]])
    n_classes = model.config.num_classes
    seeds = list(range(seed * 100000, seed * 100000 + samples))
    metrics: dict = {}

    def run(m, w, classes):
        return _sample_in_batches(lambda s, c: m.generate(c, seeds=s, guidance=w)[0], seeds, classes)

    uncond = run(model, 0.0, [None] * samples)
    metrics["fd_uncond"] = round(frechet_distance(batched_features(judge.features, uncond), real_feats), 3)
    train = labelled_split("fashion-mnist", "train")
    metrics["fd_floor"] = round(fd_floor(judge.features, train.images, test.images, samples, seed), 3)
    classes = [i % n_classes for i in range(samples)]  # balanced; the first 500 hold 50 per class
    for w in (0.0, 1.0, 3.0):
        x = run(model, w, classes)
        tag = f"w{int(w)}"
        n_acc = min(500, samples)
        metrics[f"class_accuracy_{tag}"] = round(class_accuracy(judge.predict(x[:n_acc]), torch.tensor(classes[:n_acc])), 4)
        metrics[f"fd_{tag}"] = round(frechet_distance(batched_features(judge.features, x), real_feats), 3)
    metrics["cdrl_evals" if model.checkpoint.kind == "cdrl" else "drl_evals"] = model.network_evaluations()
    if model.checkpoint.kind == "cdrl":
        metrics.update(_drl_baseline(run, real_feats, judge, samples))
    start = time.perf_counter()
    model.generate(None, seeds="0-15", steps=15)
    metrics["seconds_per_16_samples"] = round(time.perf_counter() - start, 2)
    metrics["samples"] = samples
    return metrics


def card_extra(kind: str, name: str, metrics: dict) -> str:
    """Extra model-card markdown next to the metrics table (CDRL: the guidance trade-off table and plot)."""
    if kind != "cdrl" or "fd_w1" not in metrics:
        return ""
    svg = write_guidance_tradeoff(metrics, Path(name).name)
    rows = "\n".join(f"| {w} | {metrics[f'class_accuracy_w{w}']} | {metrics[f'fd_w{w}']} |" for w in (0, 1, 3))
    return (f"Guidance trade-off (FD floor at the same sample count: {metrics['fd_floor']}):\n\n"
            f"| w | class accuracy | FD |\n|---|---|---|\n{rows}\n\n![guidance trade-off](../../assets/{svg.name})")


def write_guidance_tradeoff(metrics: dict, name: str) -> Path:
    """FD vs class accuracy as w varies: an SVG in assets/ (the model card links it)."""
    from studio.viz import line_plot_svg

    ws = [0, 1, 3]
    svg = line_plot_svg([metrics[f"fd_w{w}"] for w in ws], [metrics[f"class_accuracy_w{w}"] for w in ws], [f"w={w}" for w in ws],
                        "FD (lower is better)", "class accuracy", f"{name}: guidance trade-off")
    path = Path(__file__).resolve().parents[1] / "assets" / f"{name}-guidance-tradeoff.svg"
    path.parent.mkdir(exist_ok=True)
    path.write_text(svg)
    return path


def _drl_baseline(run, real_feats, judge, samples: int) -> dict:
    """DRL's unconditional FD at the same seeds, if the checkpoint is present."""
    try:
        drl = studio.load("drl-fmnist")
    except studio.CheckpointError as err:
        print(f"DRL baseline not evaluated: {err}")
        return {}
    fd = frechet_distance(batched_features(judge.features, run(drl, 0.0, [None] * samples)), real_feats)
    return {"drl_fd_uncond": round(fd, 3), "drl_evals": drl.network_evaluations()}


def evaluate_toy(model, samples: int, seed: int) -> dict:
    """Sampler fidelity on the analytic energy: the default Langevin settings from fixed seeds."""
    x, _ = model.sample(seeds=f"{seed}-{seed + samples - 1}", steps=500, step_size=0.01, record_every=0)
    if model.checkpoint.kind == "toy-ring":
        r = x.norm(dim=1)
        return {"mean_radius": round(float(r.mean()), 4), "target_radius": model.config.radius,
                "radius_std": round(float(r.std()), 4), "samples": samples}
    d = torch.cdist(x, model.means.detach())
    nearest = d.argmin(1)
    within = (d.min(1).values < 3 * model.config.std).float().mean()
    counts = torch.bincount(nearest, minlength=model.config.num_components).float() / samples
    return {"modes_covered": int((counts > 0).sum()), "num_modes": model.config.num_components,
            "within_3_std": round(float(within), 4), "max_mode_share": round(float(counts.max()), 4), "samples": samples}


EVALUATORS: dict[str, Callable] = {"evaluator": evaluate_evaluator, "cdrl": evaluate_cdrl, "drl": evaluate_cdrl,
                                   "toy-ring": evaluate_toy, "toy-gaussian-mixture": evaluate_toy}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="checkpoint name (see studio.list_models()) or directory")
    parser.add_argument("--samples", type=int, default=2000, help="sample count for FD (default 2000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.samples < 10:
        parser.error("--samples must be at least 10")
    model = studio.load(args.name)
    kind = model.checkpoint.kind
    if kind not in EVALUATORS:
        parser.error(f"no evaluation defined for kind '{kind}' (known: {sorted(EVALUATORS)})")
    torch.manual_seed(args.seed)
    metrics = EVALUATORS[kind](model, args.samples, args.seed)
    path = Path(model.checkpoint.path)
    if model.checkpoint.source != "hub":
        (path / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        update_card_metrics(path / "README.md", metrics, card_extra(kind, model.checkpoint.name, metrics))
    print(json.dumps(metrics) if args.json else "\n".join(f"{k}: {v}" for k, v in metrics.items()))


if __name__ == "__main__":
    main()
