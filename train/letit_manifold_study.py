"""Sampler-side fixes for blotchy LETIT translations, measured on a shipped checkpoint (no retraining).

    python -m train.letit_manifold_study letit-emoji --split validation [--pairs 128] [--variants default,project_end]
    python -m train.letit_manifold_study letit-emoji --split test --out runs/reports/letit-manifold-test.json

The latent chain moves codes to where the decoder was not trained, and the decoder draws the result with
blotches. Each variant changes only how the shipped EBMs are sampled or decoded:

* ``default``: the checkpoint's own sampler (its default steps, step size and noise);
* ``project_end`` / ``project_k``: the manifold projection z <- Enc(Dec(z)) once after the chain, or every
  k steps and at the end (``LETIT.translate(project_every=...)``);
* ``noise0``: the same chain without noise (the authors' code samples without noise);
* ``steps_n``: n steps instead of the default; ``half_step``: half the step size for twice the steps;
* ``blur_s``: the latent shift z_T - z_0 low-passed over the latent map by a Gaussian of s latent pixels
  before decoding (the EBM's gradient is spatially rough; the decoder turns rough codes into texture).

Per direction and variant: PSNR and SSIM to the true counterpart (beside the untranslated input's), the
re-encode PSNR (output vs Dec(Enc(output)); real drawings give the reference), the evaluator's probability
of the target style and its accuracy, FD to the split's target-style drawings (at this count it is biased
upwards; compare variants with each other, not with the full-count card), CPU seconds per image, and the
95% interval of each variant's paired PSNR and SSIM difference to ``default`` (a bootstrap over whole base
emoji, since skin-tone variants of one emoji are not independent pairs).

Splits: ``test`` is the held-out test pairs (evenly spaced ``--pairs`` of the 512; the numbers to report);
``validation`` is the fold of the train split that train/letit.py leaves out with ``holdout_fraction=0.1``
(evenly spaced ``--pairs`` of its 399 pairs; where a default is chosen). The shipped g2t EBM never saw that
fold; the shipped t2g EBM was trained without one, so for t2g the fold holds (unpaired) training images,
and the autoencoder of both saw them. Pair i gets seed i.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import studio
from studio.letit import DIRECTIONS
from studio.metrics import (
    batched_features,
    frechet_distance,
    grouped_bootstrap_lower_bound,
    psnr,
    ssim,
)

VARIANTS = ["default", "residual", "residual_32", "project_end", "project_12", "project_6", "project_3", "noise0", "steps_16", "steps_32",
            "half_step", "blur_1", "blur_2"]


def gaussian_blur(z: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a [B, C, h, w] map (reflect padding), per channel."""
    radius = max(1, int(3 * sigma + 0.5))
    coords = torch.arange(-radius, radius + 1, dtype=z.dtype)
    k = torch.exp(-coords**2 / (2 * sigma**2))
    k = k / k.sum()
    c = z.shape[1]
    out = F.conv2d(F.pad(z, (radius, radius, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(out, (0, 0, radius, radius), mode="reflect"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def run_variant(model, direction: str, name: str, source: torch.Tensor) -> torch.Tensor:
    """Outputs [B, 3, S, S] of one variant (seeds 0..B-1)."""
    d = model.sampler_defaults(direction)
    seeds = f"0-{len(source) - 1}"
    kwargs: dict = {"project_every": 0}
    if name.startswith("project_"):
        k = name.split("_")[1]
        kwargs["project_every"] = d["steps"] if k == "end" else int(k)
    elif name == "noise0":
        kwargs["noise"] = 0.0
    elif name.startswith("steps_"):
        kwargs["steps"] = int(name.split("_")[1])
    elif name == "half_step":
        kwargs.update(steps=2 * d["steps"], step_size=d["step_size"] / 2)
    elif name.startswith("residual"):  # decode the shift as an edit of the input: x + Dec(z_T) - Dec(z_0)
        if name != "residual":
            kwargs["steps"] = int(name.split("_")[1])
        r = model.translate(source, direction, seeds=seeds, **kwargs)
        return (source.to(r.outputs.device) + r.outputs - r.reconstructions).clamp(-1, 1).cpu()
    elif name.startswith("blur_"):
        r = model.translate(source, direction, seeds=seeds, **kwargs)
        z = r.source_latents + gaussian_blur(r.latents - r.source_latents, float(name.split("_")[1]))
        with torch.no_grad():
            return model.decode(z).cpu()
    elif name != "default":
        raise ValueError(f"unknown variant {name!r}; choose from {VARIANTS}")
    return model.translate(source, direction, seeds=seeds, **kwargs).outputs


def measure(model, judge, direction: str, name: str, source, target, target_feats) -> dict:
    style = judge.config.class_names.index(DIRECTIONS[direction][1])
    start = time.process_time()
    out = run_variant(model, direction, name, source)
    seconds = (time.process_time() - start) / len(source)  # CPU time: the machine is shared, wall time is not comparable
    with torch.no_grad():
        probs = judge(out).softmax(-1)
    fd = frechet_distance(batched_features(judge.features, out), target_feats)
    per_psnr, per_ssim = psnr(out, target), ssim(out, target)
    return {"direction": direction, "variant": name, "psnr": float(per_psnr.mean()),
            "psnr_gain": float(per_psnr.mean() - psnr(source, target).mean()),
            "ssim": float(per_ssim.mean()), "reencode_psnr": float(model.reencode_psnr(out).mean()),
            "target_score": float(probs[:, style].mean()), "target_accuracy": float((probs.argmax(1) == style).float().mean()),
            "fd": fd, "cpu_seconds_per_image": seconds,
            "per_image": {"psnr": per_psnr.tolist(), "ssim": per_ssim.tolist(), "target_score": probs[:, style].tolist()}}


def paired_interval(a: list[float], b: list[float], groups: list[str], confidence: float = 0.95) -> tuple[float, float]:
    """A two-sided interval of mean(a - b) over paired items, by a bootstrap over whole groups (base emoji)."""
    diff = torch.tensor(a, dtype=torch.float64) - torch.tensor(b, dtype=torch.float64)
    tail = 1 - (1 - confidence) / 2
    return grouped_bootstrap_lower_bound(diff, groups, tail), -grouped_bootstrap_lower_bound(-diff, groups, tail)


def compare_with_default(result: dict, groups: list[str]) -> None:
    """Add to every row its 95% interval of the paired PSNR, SSIM and target-score differences to ``default``."""
    for d in result["reference"]:
        base = next((r for r in result["rows"] if r["direction"] == d and r["variant"] == "default"), None)
        if base is None:
            continue
        for r in result["rows"]:
            if r["direction"] == d and r is not base:
                r["vs_default"] = {k: paired_interval(r["per_image"][k], base["per_image"][k], groups)
                                   for k in ("psnr", "ssim", "target_score")}


def pairs_for(split: str, count: int, size: int):
    from studio.data.emoji import base_names, holdout_mask, load_emoji_pairs

    if split == "test":
        pairs = load_emoji_pairs("test", size=size)
        pool = torch.arange(len(pairs))
    else:
        pairs = load_emoji_pairs("train", size=size)
        pool = holdout_mask(pairs.names, 0.1).nonzero().flatten()
    pick = pool[torch.linspace(0, len(pool) - 1, min(count, len(pool))).round().long()]
    bases = base_names(pairs.names)
    groups = [bases[i] for i in pick.tolist()]  # base emoji: skin-tone variants are not independent draws
    return pairs.twitter[pick], pairs.google[pick], pairs.twitter[pool], pairs.google[pool], groups


def _intervals(row: dict) -> str:
    v = row.get("vs_default")
    if not v:
        return ""
    return f"[{v['psnr'][0]:+.3f}, {v['psnr'][1]:+.3f}] dB; [{v['ssim'][0]:+.4f}, {v['ssim'][1]:+.4f}]"


def markdown(result: dict) -> str:
    lines = [f"Split `{result['split']}`, {result['pairs']} pairs, checkpoint `{result['checkpoint']}`.", "",
             ("| direction | variant | PSNR (dB) | gain (dB) | SSIM | re-encode PSNR (dB) | target prob | target acc | FD | "
              "CPU s/img | vs default: PSNR, SSIM (95% intervals) |"),
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for d, ref in result["reference"].items():
        lines.append(f"| {d} | untranslated input | {ref['identity_psnr']:.3f} | 0 | {ref['identity_ssim']:.4f} | "
                     f"{ref['reencode_psnr_source']:.2f} (real source) | {ref['source_target_score']:.3f} | | | | |")
        lines.append(f"| {d} | real target drawings | | | | {ref['reencode_psnr_target']:.2f} | {ref['target_target_score']:.3f} | | | | |")
        for r in result["rows"]:
            if r["direction"] == d:
                lines.append(f"| {d} | {r['variant']} | {r['psnr']:.3f} | {r['psnr_gain']:+.3f} | {r['ssim']:.4f} | "
                             f"{r['reencode_psnr']:.2f} | {r['target_score']:.3f} | {r['target_accuracy']:.3f} | {r['fd']:.2f} | "
                             f"{r['cpu_seconds_per_image']:.3f} | {_intervals(r)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="LETIT checkpoint name or folder")
    parser.add_argument("--split", choices=["validation", "test"], required=True)
    parser.add_argument("--pairs", type=int, default=128)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, from: " + ", ".join(VARIANTS))
    parser.add_argument("--directions", default="", help="comma-separated (default: every trained one)")
    parser.add_argument("--out", default="", help="JSON file for the results (written after every row)")
    args = parser.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in variants if v not in VARIANTS and not v.split("_")[0] in ("project", "steps", "blur")]
    if bad or args.pairs < 2:
        parser.error(f"unknown variants {bad}" if bad else "--pairs must be >= 2")
    model = studio.load(args.name)
    judge = studio.load("evaluator-emoji")
    twitter, google, all_twitter, all_google, groups = pairs_for(args.split, args.pairs, model.config.image_size)
    styles = {"twitter": twitter, "google": google}
    everything = {"twitter": all_twitter, "google": all_google}
    directions = [d.strip() for d in args.directions.split(",") if d.strip()] or model.trained_directions
    result = {"checkpoint": str(args.name), "split": args.split, "pairs": len(twitter), "reference": {}, "rows": []}
    for d in directions:
        src_style, tgt_style = DIRECTIONS[d]
        source, target = styles[src_style], styles[tgt_style]
        cls = judge.config.class_names.index(tgt_style)
        with torch.no_grad():
            src_score, tgt_score = (float(judge(x).softmax(-1)[:, cls].mean()) for x in (source, target))
        result["reference"][d] = {"identity_psnr": float(psnr(source, target).mean()), "identity_ssim": float(ssim(source, target).mean()),
                                  "reencode_psnr_source": float(model.reencode_psnr(source).mean()),
                                  "reencode_psnr_target": float(model.reencode_psnr(target).mean()),
                                  "source_target_score": src_score, "target_target_score": tgt_score}
        target_feats = batched_features(judge.features, everything[tgt_style])
        for v in variants:
            row = measure(model, judge, d, v, source, target, target_feats)
            result["rows"].append(row)
            compare_with_default(result, groups)
            print(json.dumps({k: round(x, 4) if isinstance(x, float) else x for k, x in row.items() if k != "per_image"}), flush=True)
            if args.out:
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                Path(args.out).write_text(json.dumps(result, indent=1))
    print(markdown(result))


if __name__ == "__main__":
    main()
