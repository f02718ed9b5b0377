"""Choose LETIT's default number of translation steps per direction, on *training* pairs only.

    python -m train.letit_choose_steps letit-emoji [--pairs 128] [--grid 10,15,...]

A latent EBM trained with T-step chains may translate the style more strongly with more steps, at the cost
of content. The rule: the largest number of steps whose output is still closer (PSNR) to the true
counterpart drawing than the untranslated input is, on ``--pairs`` evenly spaced pairs of the emoji *train*
split (the held-out test pairs stay untouched for evaluation). If no grid value qualifies, the trained T
stays the default. The choice and the whole scan are written into the checkpoint's config
(``directions[d]["translate_steps"]``, ``steps_scan``) and model card; ``python -m train.evaluate`` then measures it.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import studio
from studio.hub import ModelCard, save_checkpoint
from studio.letit import DIRECTIONS, LETITConfig
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
    folder = Path(model.checkpoint.path)
    payload = json.loads((folder / "config.json").read_text())
    directions = {d: dict(v) for d, v in model.config.directions.items()}
    lines = []
    for d in model.trained_directions:
        source, target = pairs.style(DIRECTIONS[d][0])[idx], pairs.style(DIRECTIONS[d][1])[idx]
        identity = round(float(psnr(source, target).mean()), 3)
        rows = scan(model, d, source, target, grid, judge)
        entry = directions[d]
        entry["translate_steps"] = choose(rows, identity, entry["steps"])
        entry["steps_scan"] = {"split": "train", "pairs": args.pairs, "identity_psnr": identity, "rows": rows}
        table = ", ".join(f"{r['steps']}: {r['psnr']} dB / {r['target_score']}" for r in rows)
        lines.append(f"- `{d}`: default {entry['translate_steps']} steps (trained T = {entry['steps']}). Scan on {args.pairs} "
                     f"training pairs, steps: PSNR to the true drawing / target-style probability = {table}; "
                     f"untranslated input {identity} dB.")
        print(f"{d}: identity PSNR {identity} dB -> default {entry['translate_steps']} steps (trained T = {entry['steps']})")
    # The config is stored with the weights too (the loader checks both agree), so the checkpoint is rewritten
    # through save_checkpoint (atomically), with the same weights, extras, metrics and card.
    card_text = (folder / "README.md").read_text()
    extra = {k: v for k, v in payload.items() if k not in ("kind", "format_version", "config", "code_version", "weights_sha256")}
    config = LETITConfig(**{**model.config.__dict__, "directions": directions})
    save_checkpoint(folder, "letit", config, model.state_dict(), ModelCard(summary=""), extra=extra)
    note = "## Default number of steps\n\n" + "\n".join(lines) + "\n\n"
    head, sep, tail = card_text.partition("## Metrics")
    if "## Default number of steps" in head:
        head = head[: head.index("## Default number of steps")]
    (folder / "README.md").write_text(head + note + sep + tail if sep else card_text + "\n" + note)


if __name__ == "__main__":
    main()
