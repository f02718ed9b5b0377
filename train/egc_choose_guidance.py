"""Choose EGC's default classifier-guidance scale on validation images, without touching the test split.

    python -m train.egc_choose_guidance egc-fmnist [--samples 100] [--grid 1,2,4,8] [--write]

Classifier guidance trades diversity for class fidelity: a larger s makes evaluator-fmnist read more samples
as the asked class, and at some point the samples leave the data (the FD rises). For each scale in the grid,
``--samples`` class-guided DDIM samples (class i % 10 for seed i, at the checkpoint's default DDIM steps, seeds
that the test evaluation never uses) are judged by evaluator-fmnist's accuracy and by the FD to the 5,000
validation images (``load_fashion_mnist("val")``, never trained on).

The rule: the lowest FD among the scales whose accuracy reaches ``--min-accuracy`` (0.85: a margin over the
0.80 bar for a small sample); if none does, the most accurate scale. ``--write`` stores the choice as the
checkpoint's ``guidance`` (weights unchanged) and the scan in its config (``guidance_scan``).
"""
from __future__ import annotations

import argparse
import json

import torch

import studio
from studio.hub import ModelCard, save_checkpoint
from studio.metrics import batched_features, frechet_distance

SEED_OFFSET = 8_000_000  # far from the test evaluation's seeds


def scan(model, judge, real: torch.Tensor, grid: list[float], n: int, batch: int = 50) -> list[dict]:
    classes = [i % model.config.num_classes for i in range(n)]
    rows = []
    for s in grid:
        xs = []
        for i in range(0, n, batch):
            seeds = ",".join(str(SEED_OFFSET + j) for j in range(i, min(n, i + batch)))
            xs.append(model.generate(classes[i : i + batch], seeds=seeds, guidance=s)[0].cpu())
        x = torch.cat(xs)
        acc = float((judge.predict(x) == torch.tensor(classes)).float().mean())
        fd = frechet_distance(batched_features(judge.features, x), real)
        rows.append({"guidance": s, "val_class_accuracy": round(acc, 4), "fd_val": round(fd, 3)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def choose(rows: list[dict], min_accuracy: float) -> float:
    good = [r for r in rows if r["val_class_accuracy"] >= min_accuracy]
    if good:
        return min(good, key=lambda r: r["fd_val"])["guidance"]
    return max(rows, key=lambda r: r["val_class_accuracy"])["guidance"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name")
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--grid", default="1,2,4,8")
    parser.add_argument("--min-accuracy", type=float, default=0.85)
    parser.add_argument("--write", action="store_true", help="store the choice in the checkpoint")
    args = parser.parse_args(argv)

    from studio.data.fashion_mnist import load_fashion_mnist

    model = studio.load(args.name)
    judge = studio.load("evaluator-fmnist")
    real = batched_features(judge.features, load_fashion_mnist("val").images[:1000])
    rows = scan(model, judge, real, [float(v) for v in args.grid.split(",")], args.samples)
    chosen = choose(rows, args.min_accuracy)
    print(json.dumps({"chosen_guidance": chosen}))
    if args.write:
        write_choice(model, chosen, rows, args)


def write_choice(model, chosen: float, rows: list[dict], args) -> None:
    """Rewrite the checkpoint (the config is stored with the weights, so through save_checkpoint, atomically)
    with the chosen guidance, the scan in its config, and a card section; weights, metrics and card kept."""
    info = model.checkpoint
    folder = info.path
    card_text = (folder / "README.md").read_text()
    config = type(model.config)(**{**model.config.__dict__, "guidance": chosen})
    extra = {k: v for k, v in info.extra.items() if k not in ("format_version", "code_version", "weights_sha256")}
    extra["sampler_defaults"] = {**extra.get("sampler_defaults", {}), "guidance": chosen}
    rule = f"lowest validation FD among scales with accuracy >= {args.min_accuracy}"
    if not any(r["val_class_accuracy"] >= args.min_accuracy for r in rows):
        rule += "; no scale reached it, so the most accurate one"
    extra["guidance_scan"] = {"rows": rows, "rule": rule,
                              "samples": args.samples, "reference": "1,000 validation images", "chosen": chosen}
    save_checkpoint(folder, info.kind, config, model.state_dict(), ModelCard(summary=""), extra=extra)
    table = "\n".join(f"| {r['guidance']:g} | {r['val_class_accuracy']} | {r['fd_val']} |" for r in rows)
    note = (f"## Default guidance\n\nChosen on validation images (`python -m train.egc_choose_guidance`, {args.samples} "
            f"class-guided samples per scale at {model.config.sample_steps} DDIM steps; rule: {extra['guidance_scan']['rule']}): "
            f"**s = {chosen:g}**.\n\n| guidance s | evaluator accuracy | FD to validation |\n|---|---|---|\n{table}\n\n")
    head, sep, tail = card_text.partition("## Metrics")
    if "## Default guidance" in head:
        head = head[: head.index("## Default guidance")]
    (folder / "README.md").write_text(head + note + sep + tail if sep else card_text + "\n" + note)
    print(f"Wrote guidance {chosen} to {folder}")

if __name__ == "__main__":
    main()
