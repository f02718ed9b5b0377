"""Choose LETIT's default number of translation steps per direction, on *training* pairs only.

    python -m train.letit_choose_steps letit-emoji [--pairs 128] [--grid 10,15,...]

A latent EBM trained with T-step chains may translate the style more strongly with more steps, at the cost
of content. The rule: the largest number of steps whose output is still closer (PSNR) to the true
counterpart drawing than the untranslated input is, on ``--pairs`` evenly spaced pairs of the emoji *train*
split (the held-out test pairs stay untouched for evaluation). If no grid value qualifies, the trained T
stays the default. The choice and the whole scan are written into the checkpoint's config.json
(``directions[d]["translate_steps"]``, ``steps_scan``); ``python -m train.evaluate`` then measures it.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

import studio
from studio.letit import DIRECTIONS
from studio.metrics import psnr


def scan(model, direction: str, source: torch.Tensor, target: torch.Tensor, grid: list[int], judge) -> list[dict]:
    style = judge.config.class_names.index(DIRECTIONS[direction][1])
    rows = []
    for steps in grid:
        out = model.translate(source, direction, steps=steps, seeds=f"0-{len(source) - 1}").outputs
        with torch.no_grad():
            score = float(judge(out).softmax(-1)[:, style].mean())
        rows.append({"steps": steps, "psnr": round(float(psnr(out, target).mean()), 3), "target_score": round(score, 4)})
        print(f"{direction} steps {steps}: PSNR {rows[-1]['psnr']} dB, target-style probability {rows[-1]['target_score']}", flush=True)
    return rows


def choose(rows: list[dict], identity_psnr: float, trained_steps: int) -> int:
    ok = [r["steps"] for r in rows if r["psnr"] >= identity_psnr]
    return max(ok) if ok else trained_steps


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="LETIT checkpoint name or folder")
    parser.add_argument("--pairs", type=int, default=128, help="training pairs used for the choice")
    parser.add_argument("--grid", default="10,15,20,25,30,35,40,50,60", help="comma-separated step counts to try")
    args = parser.parse_args(argv)
    grid = sorted({int(g) for g in args.grid.split(",") if g.strip()})
    if args.pairs < 8 or not grid or min(grid) < 1:
        parser.error("--pairs must be >= 8 and --grid positive integers")
    from studio.data.emoji import load_emoji_pairs

    model = studio.load(args.name)
    if model.checkpoint.kind != "letit":
        parser.error(f"{args.name} is a '{model.checkpoint.kind}' checkpoint, not LETIT")
    judge = studio.load("evaluator-emoji")
    pairs = load_emoji_pairs("train", size=model.config.image_size)
    idx = torch.linspace(0, len(pairs) - 1, args.pairs).long()
    path = Path(model.checkpoint.path) / "config.json"
    config = json.loads(path.read_text())
    for d in model.trained_directions:
        source, target = pairs.style(DIRECTIONS[d][0])[idx], pairs.style(DIRECTIONS[d][1])[idx]
        identity = round(float(psnr(source, target).mean()), 3)
        rows = scan(model, d, source, target, grid, judge)
        entry = config["config"]["directions"][d]
        entry["translate_steps"] = choose(rows, identity, entry["steps"])
        entry["steps_scan"] = {"split": "train", "pairs": args.pairs, "identity_psnr": identity, "rows": rows}
        print(f"{d}: identity PSNR {identity} dB -> default {entry['translate_steps']} steps (trained T = {entry['steps']})")
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(config, indent=2) + "\n")
    os.replace(tmp, path)  # atomic: a crash never leaves a half-written config


if __name__ == "__main__":
    main()
