"""Choose CoopFlow's sampler defaults (T, delta, noise) on validation images, without touching the test split.

    python -m train.coopflow_choose_sampler coopflow-fmnist [--samples 300] [--json runs/coopflow-sampler.json] [--write]

Each candidate (T, delta, noise) from the grids refines the flow's proposals at ``--samples`` seeds that the test
evaluation (``python -m train.evaluate``, seeds 0..N-1) never uses; its score is the Frechet distance
(evaluator-fmnist features) to ``--reference`` of the 5,000 validation images that no CoopFlow saw in training
(``load_fashion_mnist("val")``). One chain per (delta, noise) to the largest T gives every T of the grid: its state
after T steps is exactly a T-step chain's result. The predicted-class entropy (nats; ln 10 = 2.303 is all classes
evenly) is printed beside each FD, and the flow's proposals (T = 0) are the baseline.

The rule: the lowest validation FD; among the candidates within ``--tolerance`` (relative, 2%) of it, the fewest
steps (cheaper, and nearer the T the EBM was trained with: a short-run EBM is not a convergent sampler), then the
lowest FD. ``--write`` stores the choice as the checkpoint's ``sampler_defaults`` in config.json (which
``CoopFlow.sample`` uses when T, delta or noise are not given; the config, including the trained T, and the weights
are unchanged), the scan as ``sampler_scan``, and a "Sampler defaults" section in its card.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import studio
from studio.hub import ModelCard, save_checkpoint
from studio.metrics import batched_features, frechet_distance

from .eval_coopflow import chain_states, class_entropy

SEED_OFFSET = 9_000_000  # far from the test evaluation's seeds (and from the other choosers' 7M and 8M)


def _grid(text: str, cast) -> list:
    try:
        values = [cast(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"Cannot read the grid {text!r}: write numbers separated by commas.") from None
    if not values:
        raise SystemExit(f"The grid {text!r} is empty.")
    return values


def scan(model, judge, real: torch.Tensor, steps: list[int], deltas: list[float], noises: list[float], n: int,
         batch: int = 100) -> tuple[dict, list[dict]]:
    """(the flow-only baseline, one row per candidate) with the FD to ``real`` features and the class entropy."""
    seeds = list(range(SEED_OFFSET, SEED_OFFSET + n))
    fd = lambda x: round(frechet_distance(batched_features(judge.features, x), real), 3)  # noqa: E731
    baseline, rows = None, []
    for delta in deltas:
        for noise in noises:
            states = chain_states(model, seeds, [0, *steps], batch=batch, step_size=delta, noise=noise)
            if baseline is None:  # the proposals do not depend on delta or noise
                baseline = {"steps": 0, "fd_val": fd(states[0]), "class_entropy": round(class_entropy(judge, states[0]), 3)}
                print(f"flow only (T = 0): FD to validation {baseline['fd_val']}, class entropy {baseline['class_entropy']}",
                      flush=True)
            for t in steps:
                x = states[t]
                rows.append({"steps": t, "step_size": delta, "noise": noise, "fd_val": fd(x),
                             "class_entropy": round(class_entropy(judge, x), 3),
                             "finite": bool(torch.isfinite(x).all())})
                print(json.dumps(rows[-1]), flush=True)
    return baseline, rows


def choose(rows: list[dict], tolerance: float) -> dict:
    best = min(r["fd_val"] for r in rows)
    near = [r for r in rows if r["fd_val"] <= best * (1 + tolerance)]
    return min(near, key=lambda r: (r["steps"], r["fd_val"]))


def table(rows: list[dict], baseline: dict, chosen: dict, trained: int) -> str:
    lines = ["| T | delta | noise | FD to validation | class entropy |", "|---|---|---|---|---|",
             f"| 0 (flow only) | - | - | {baseline['fd_val']} | {baseline['class_entropy']} |"]
    for r in sorted(rows, key=lambda r: (r["steps"], r["step_size"], r["noise"])):
        mark = " **chosen**" if r is chosen else ""
        past = " (past the trained T)" if r["steps"] > trained else ""
        lines.append(f"| {r['steps']}{past} | {r['step_size']:g} | {r['noise']:g} | {r['fd_val']}{mark} | {r['class_entropy']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="a CoopFlow checkpoint (name or folder) trained on Fashion-MNIST")
    parser.add_argument("--samples", type=int, default=300, help="samples per candidate")
    parser.add_argument("--reference", type=int, default=2000, help="validation images in the FD reference (at most 5,000)")
    parser.add_argument("--steps-grid", default="10,20,30,40", help="Langevin steps T to try")
    parser.add_argument("--delta-grid", default="0.03,0.04,0.05", help="step sizes delta to try")
    parser.add_argument("--noise-grid", default="0,0.1", help="Langevin noise (a fraction of delta) to try")
    parser.add_argument("--tolerance", type=float, default=0.02, help="FDs within this fraction of the best count as equal")
    parser.add_argument("--json", default=None, help="also write the scan here")
    parser.add_argument("--write", action="store_true", help="store the choice in the checkpoint's config.json and card")
    args = parser.parse_args(argv)
    if args.samples < 10:
        parser.error("--samples must be at least 10")
    steps = _grid(args.steps_grid, int)
    if min(steps) < 1:
        parser.error("--steps-grid: every T must be at least 1 (T = 0, the flow alone, is always reported)")

    from studio.data.fashion_mnist import load_fashion_mnist

    model = studio.load(args.name, kind="coopflow")
    if args.write and model.checkpoint.source == "hub":
        parser.error("--write needs a local checkpoint folder, not a Hub download")
    judge = studio.load("evaluator-fmnist")
    val = load_fashion_mnist("val").images[: args.reference]
    real = batched_features(judge.features, val)
    baseline, rows = scan(model, judge, real, steps, _grid(args.delta_grid, float), _grid(args.noise_grid, float), args.samples)
    usable = [r for r in rows if r["finite"]]
    if not usable:
        raise SystemExit("Every candidate produced non-finite samples; try smaller step sizes.")
    chosen = choose(usable, args.tolerance)
    trained = model.trained_steps
    rule = (f"lowest FD to {len(val)} validation images; among candidates within {args.tolerance:.0%} of it, the fewest "
            "steps, then the lowest FD")
    print(table(rows, baseline, chosen, trained))
    defaults = {"steps": chosen["steps"], "step_size": chosen["step_size"], "noise": chosen["noise"]}
    print(json.dumps({"chosen": defaults, "trained_steps": trained}))
    result = {"validation_images": len(val), "samples": args.samples, "seed_offset": SEED_OFFSET, "trained_steps": trained,
              "rule": rule, "flow_only": baseline, "rows": rows, "chosen": defaults}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    if args.write:
        write_choice(model, defaults, result, table(rows, baseline, chosen, trained))


def write_choice(model, defaults: dict, scan_result: dict, table_md: str) -> None:
    """Rewrite the checkpoint (atomically, through save_checkpoint) with ``sampler_defaults`` and ``sampler_scan`` in
    config.json and a card section; config, weights, metrics and the rest of the card are kept."""
    info = model.checkpoint
    folder = Path(info.path)
    card_text = (folder / "README.md").read_text()
    extra = {k: v for k, v in info.extra.items() if k not in ("format_version", "code_version", "weights_sha256")}
    extra["sampler_defaults"] = {**extra.get("sampler_defaults", {}), **defaults}
    extra["sampler_scan"] = scan_result
    save_checkpoint(folder, info.kind, model.config, model.state_dict(), ModelCard(summary=""), extra=extra)
    note = (f"## Sampler defaults\n\nChosen on validation images, never the test split (`python -m train.coopflow_choose_sampler`, "
            f"{scan_result['samples']} samples per candidate; rule: {scan_result['rule']}): **T = {defaults['steps']}, "
            f"delta = {defaults['step_size']:g}, noise = {defaults['noise']:g}** (the EBM was trained with T = "
            f"{scan_result['trained_steps']}).\n\n{table_md}\n\n")
    head, sep, tail = card_text.partition("## Metrics")
    if "## Sampler defaults" in head:
        head = head[: head.index("## Sampler defaults")]
    (folder / "README.md").write_text(head + note + sep + tail if sep else card_text.rstrip() + "\n\n" + note)
    print(f"Wrote sampler defaults {defaults} to {folder}")


if __name__ == "__main__":
    main()
