"""Compare CDRL checkpoints fine-tuned with the two initializer targets, on validation images (issue 22).

    python -m train.cdrl_compare_init_targets refined=runs/cdrl-refined-export data=runs/cdrl-data-export \
        [start=cdrl-fmnist] [--samples 1000] [--json runs/cdrl-init-targets.json] [--write checkpoints/cdrl-fmnist]

The paper's initializer regresses on the EBM-refined sample ("refined"); its ablation regresses on the data
("data"). Each candidate is measured the same way, at the same seeds (far from the test evaluation's), against
the 5,000 validation images no model trained on:

- ``fd_uncond_val``: Frechet distance (evaluator-fmnist features) of ``samples`` unconditional samples;
- ``fd_w1_val`` and ``class_accuracy_w1_val``: 500 class-conditional samples at guidance 1 (50 per class).

The rule for shipping: the lower ``fd_uncond_val`` (the issue's unconditional bar), reported beside the
accuracy. ``--write`` stores the table as ``init_target_comparison.json`` in the shipped checkpoint, where
``python -m train.evaluate`` picks it up for the card.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import studio
from studio.metrics import batched_features, class_accuracy, frechet_distance

from .eval_common import sample_in_batches

SEED_OFFSET = 8_000_000  # far from the test evaluation's seeds (0..N-1) and the CF-EBM scan's (7,000,000+)
CONDITIONAL_SAMPLES = 500
COMPARISON_FILE = "init_target_comparison.json"


def _samples(model, classes: list, guidance: float) -> torch.Tensor:
    seeds = [SEED_OFFSET + j for j in range(len(classes))]
    return sample_in_batches(lambda s, c: model.generate(c, seeds=s, guidance=guidance)[0].cpu(), seeds, classes)


def training_summary(model) -> dict:
    """The candidate's last training run (command, steps, minutes) and how many runs it came from."""
    extra = model.checkpoint.extra
    run = extra.get("training", {})
    return {"command": run.get("command"), "steps": run.get("steps"), "wall_time_minutes": run.get("wall_time_minutes"),
            "runs": len(extra.get("earlier_training", [])) + 1}


def measure(model, judge, real_feats: torch.Tensor, samples: int) -> dict:
    uncond = _samples(model, [None] * samples, 0.0)
    classes = [i % model.config.num_classes for i in range(CONDITIONAL_SAMPLES)]
    cond = _samples(model, classes, 1.0)
    return {"fd_uncond_val": round(frechet_distance(batched_features(judge.features, uncond), real_feats), 3),
            "fd_w1_val": round(frechet_distance(batched_features(judge.features, cond), real_feats), 3),
            "class_accuracy_w1_val": round(class_accuracy(judge.predict(cond), torch.tensor(classes)), 4)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("candidates", nargs="+", help="label=checkpoint pairs (a name or a folder)")
    parser.add_argument("--samples", type=int, default=1000, help="unconditional samples per candidate")
    parser.add_argument("--json", default=None, help="also write the table here")
    parser.add_argument("--write", default=None, help="checkpoint folder to store the table in (the shipped one)")
    args = parser.parse_args(argv)
    pairs = [c.split("=", 1) for c in args.candidates]
    if any(len(p) != 2 or not all(p) for p in pairs):
        parser.error("each candidate is label=checkpoint, e.g. refined=runs/cdrl-refined-export")
    if args.samples < 10:
        parser.error("--samples must be at least 10")

    from studio.data.fashion_mnist import load_fashion_mnist

    judge = studio.load("evaluator-fmnist")
    val = load_fashion_mnist("val").images
    real = batched_features(judge.features, val)
    table = {}
    for label, where in pairs:
        model = studio.load(where)
        if model.checkpoint.kind != "cdrl":
            parser.error(f"{where} is a '{model.checkpoint.kind}' checkpoint, not CDRL")
        table[label] = {**training_summary(model), **measure(model, judge, real, args.samples)}
        print(json.dumps({label: table[label]}), flush=True)
    out = {"validation_images": len(val), "samples": args.samples, "conditional_samples": CONDITIONAL_SAMPLES,
           "seed_offset": SEED_OFFSET, "candidates": table,
           "lowest_fd_uncond_val": min(table, key=lambda k: table[k]["fd_uncond_val"])}
    print(json.dumps({"lowest_fd_uncond_val": out["lowest_fd_uncond_val"]}))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    if args.write:
        Path(args.write, COMPARISON_FILE).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
