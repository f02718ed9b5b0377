"""Recompute a checkpoint's metrics on held-out data and write them into its model card.

    python -m train.evaluate NAME [--samples N] [--seed S] [--json] [--only inpainting|ablation|compose|drl-baseline]

Prints the metrics (one JSON object with --json), writes
``checkpoints/NAME/metrics.json`` and replaces the metrics table in the card.
``--only GROUP`` computes one group of metrics and merges it into the existing ones.
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
from studio.metrics import auroc, batched_features, class_accuracy, fd_floor, frechet_distance, psnr, spearman

from .cdrl_compare_init_targets import COMPARISON_FILE
from .datasets import labelled_split
from .eval_common import (EVALUATOR_FOR, fmnist_reference, per_image_chains, sample_in_batches, training_cost,
                          translation_metrics)
from .eval_coopflow import card_extra as coopflow_card_extra
from .eval_letit import card_extra as letit_card_extra
from .eval_letit import evaluate_letit
from .eval_coopflow import evaluate_coopflow
from .eval_compose import card_extra as compose_card_extra
from .eval_compose import evaluate_cdrl_attributes, evaluate_compose_not
from .eval_egc import card_extra as egc_card_extra
from .eval_egc import evaluate_egc
from .eval_nerf import card_extra as nerf_card_extra
from .eval_nerf import evaluate_nerf_lebm


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


def evaluate_cdrl(model, samples: int, seed: int) -> dict:
    """Class accuracy at w = 0, 1, 3 (500 samples), FD at 2,000 samples (conditional and not), DRL's FD, costs."""
    judge, test, real_feats, run = _cdrl_eval_setup(samples, seed)
    n_classes = model.config.num_classes
    metrics: dict = {}
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
    metrics.update(training_cost(model))
    if model.checkpoint.kind == "cdrl":
        metrics.update(_drl_baseline(run, real_feats, judge, samples))
        metrics.update(evaluate_inpainting(model, samples, seed))
        metrics.update(init_target_comparison(Path(model.checkpoint.path)))
    start = time.perf_counter()
    model.generate(None, seeds="0-15", steps=15)
    metrics["seconds_per_16_samples"] = round(time.perf_counter() - start, 2)
    metrics["samples"] = samples
    return metrics


def _cdrl_eval_setup(samples: int, seed: int):
    """The judge, the test split, the FD reference (``samples`` test images in a seeded order) and ``run(model, w,
    classes)``, which samples at the evaluation's seeds; shared so that DRL's baseline uses the very same ones."""
    judge = studio.load(EVALUATOR_FOR["fashion-mnist"])
    test = labelled_split("fashion-mnist", "test")
    real_feats = batched_features(judge.features, test.images[torch.randperm(len(test.images), generator=torch.Generator().manual_seed(seed))[:samples]])
    seeds = list(range(seed * 100000, seed * 100000 + samples))

    def run(m, w, classes):
        return sample_in_batches(lambda s, c: m.generate(c, seeds=s, guidance=w)[0], seeds, classes)

    return judge, test, real_feats, run


def evaluate_drl_baseline(model, samples: int, seed: int) -> dict:
    """Only the DRL baseline of a CDRL card (``--only drl-baseline``): re-measure it after drl-fmnist changed."""
    judge, _, real_feats, run = _cdrl_eval_setup(samples, seed)
    return _drl_baseline(run, real_feats, judge, samples)


def init_target_comparison(path: Path) -> dict:
    """The initializer-target comparison stored with the checkpoint by ``train.cdrl_compare_init_targets --write``
    (validation FD and accuracy of the candidates after equal fine-tuning time); empty when there is none."""
    stored = path / COMPARISON_FILE
    if not stored.exists():
        return {}
    table = json.loads(stored.read_text())["candidates"]
    keys = ("fd_uncond_val", "class_accuracy_w1_val", "fd_w1_val", "steps", "wall_time_minutes")
    return {"init_target_comparison": {label: {k: row.get(k) for k in keys} for label, row in table.items()}}


def init_target_markdown(metrics: dict) -> str:
    table = metrics.get("init_target_comparison")
    if not table:
        return ""
    rows = "\n".join(f"| {label} | {r['wall_time_minutes']} min, {r['steps']} steps | {r['fd_uncond_val']} | "
                     f"{r['class_accuracy_w1_val']} | {r['fd_w1_val']} |" for label, r in table.items())
    return ("Initializer target, after equal fine-tuning time from the same start (`python -m train.cdrl_compare_init_targets`;"
            " validation images, the same seeds for every row):\n\n| candidate | fine-tuning | unconditional FD | "
            f"accuracy at w = 1 | FD at w = 1 |\n|---|---|---|---|---|\n{rows}")


def card_extra(kind: str, name: str, metrics: dict) -> str:
    """Extra model-card markdown next to the metrics table (CDRL: the guidance trade-off table and plot)."""
    if kind == "coopflow":
        return coopflow_card_extra(metrics)
    if kind == "egc":
        return egc_card_extra(metrics)
    if kind == "cfebm":
        return cfebm_card_extra(metrics)
    if kind == "letit":
        return letit_card_extra(metrics)
    if kind == "nerf_lebm":
        return nerf_card_extra(metrics)
    if kind != "cdrl" or "fd_w1" not in metrics:
        return ""
    svg = write_guidance_tradeoff(metrics, Path(name).name)
    rows = "\n".join(f"| {w} | {metrics[f'class_accuracy_w{w}']} | {metrics[f'fd_w{w}']} |" for w in (0, 1, 3))
    return (f"Guidance trade-off (FD floor at the same sample count: {metrics['fd_floor']}):\n\n"
            f"| w | class accuracy | FD |\n|---|---|---|\n{rows}\n\n![guidance trade-off](../../assets/{svg.name})"
            + ("\n\n" + init_target_markdown(metrics) if "init_target_comparison" in metrics else ""))


def cfebm_card_extra(m: dict) -> str:
    """What the CF-EBM numbers mean, written from the numbers themselves."""
    lines = []
    if "fd_single_scale_model" in m:
        won = m["fd"] < m["fd_single_scale_model"]
        lines.append(f"- Coarse-to-fine vs the single-scale ablation (same network, same training images): FD {m['fd']} vs "
                     f"{m['fd_single_scale_model']}; coarse-to-fine {'won' if won else 'did not win'} at this budget.")
    if "denoise_psnr_out" in m:
        lines.append(f"- Denoising (noise std {DENOISE_STD}): PSNR {m['denoise_psnr_in']} dB in ({m['denoise_psnr_in_clamped']} "
                     f"after clipping to [-1, 1]) -> {m['denoise_psnr_out']} dB out, on {m['restoration_images']} test images.")
    if "inpaint_psnr_hole" in m:
        lines.append(f"- Inpainting the centre {HOLE}x{HOLE}: hole PSNR {m['inpaint_psnr_hole']} dB vs "
                     f"{m['inpaint_psnr_hole_meanfill']} dB for filling with the training mean.")
    ood = {k.removeprefix("ood_auroc_"): v for k, v in m.items() if k.startswith("ood_auroc_")}
    if ood:
        below = [k for k, v in ood.items() if v < 0.5]
        lines.append("- OOD AUROC of -energy (Fashion-MNIST test = in-distribution): " + ", ".join(f"{k} {v}" for k, v in ood.items())
                     + (f". Below 0.5 for {', '.join(below)}: the energy ranks those inputs as *more* likely than "
                        "Fashion-MNIST, the known failure of likelihood-style OOD scores on simpler data." if below else "."))
    return "\n".join(lines)


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


RESTORATION_IMAGES = 500  # the fixed count for denoising and inpainting
DENOISE_STD = 0.3  # in [-1, 1] units
HOLE = 12  # centre HOLE x HOLE square masked for inpainting
SINGLE_SCALE_ABLATION = {"cfebm-fmnist": "ebm-single-fmnist"}


def _seed_range(seed: int, n: int) -> list[int]:
    return list(range(seed * 100000, seed * 100000 + n))


def cfebm_fd(model, judge, real_feats, samples: int, seed: int, multiscale: bool = False) -> float:
    x = sample_in_batches(lambda s, _: model.generate(seeds=s, multiscale=multiscale)[0], _seed_range(seed, samples), [None] * samples)
    return round(frechet_distance(batched_features(judge.features, x), real_feats), 3)


def saliency_agreement(model, count: int = 20) -> dict:
    """Mean over ``count`` held-out emoji of the Spearman correlation between the generative saliency
    of the translation chain and (a) |output - input|, (b) |true target - input| (per pixel, L2 over
    channels). The images are every 26th of the test split, as shipped in assets/examples/emoji."""
    from studio.data.emoji import load_emoji_pairs

    pairs = load_emoji_pairs("test", size=64)
    pick = list(range(0, len(pairs), 26))[:count]
    source, target = pairs.style(model.config.source_domain)[pick], pairs.style(model.config.target_domain)[pick]
    out, trace = model.translate(source, seeds=f"0-{count - 1}")
    sal = trace.saliency()
    rho = lambda ref: round(sum(spearman(sal[i], ref[i]) for i in range(count)) / count, 4)  # noqa: E731
    return {f"saliency_spearman_change_{count}": rho((out - source).norm(dim=1)),
            f"saliency_spearman_true_difference_{count}": rho((target - source).norm(dim=1))}


def evaluate_cfebm_translation(model, samples: int, seed: int) -> dict:
    """The pixel-space translation baseline on the true pairs, plus its saliency/change agreement."""
    direction = {"twitter": "t2g", "google": "g2t"}[model.config.source_domain]
    metrics = translation_metrics(lambda x, s: model.translate(x, seeds=s)[0], f"cfebm_{direction}", direction)
    metrics.update(saliency_agreement(model))
    metrics.update(training_cost(model))
    from tools.bench import timed

    metrics["seconds_per_translation"] = round(timed(lambda: model.translate(torch.zeros(3, 64, 64), seeds="0"), 3), 3)
    return metrics


def evaluate_cfebm(model, samples: int, seed: int) -> dict:
    """FD (single- and multi-scale samplers, and the single-scale ablation), denoising and inpainting
    PSNR on held-out test images, OOD AUROC of -energy against MNIST digits, noise and constants."""
    if model.config.target_domain:
        return evaluate_cfebm_translation(model, samples, seed)
    judge, test, perm, real_feats = fmnist_reference(samples, seed)
    metrics: dict = {"fd": cfebm_fd(model, judge, real_feats, samples, seed)}
    if model.coarse:
        metrics["fd_multiscale"] = cfebm_fd(model, judge, real_feats, samples, seed, multiscale=True)
    metrics.update(evaluate_ablation(model, samples, seed, (judge, real_feats)))
    train_images = labelled_split("fashion-mnist", "train").images
    metrics["fd_floor"] = round(fd_floor(judge.features, train_images, test, samples, seed), 3)
    held_out = test[perm[:RESTORATION_IMAGES]]
    metrics.update(restoration_metrics(model, held_out, train_images.mean(0), seed))
    metrics.update(ood_metrics(model, test[perm[:samples]], seed))
    metrics.update(evaluate_inpainting(model, samples, seed))
    metrics.update(training_cost(model))
    start = time.perf_counter()
    model.generate(seeds="0-15")
    metrics["seconds_per_16_samples"] = round(time.perf_counter() - start, 2)
    metrics["samples"] = samples
    return metrics


def evaluate_ablation(model, samples: int, seed: int, reference=None) -> dict:
    """FD of the single-scale ablation checkpoint at the same seeds and reference images."""
    ablation = SINGLE_SCALE_ABLATION.get(model.checkpoint.name)
    if not ablation:
        return {}
    if reference is None:
        judge, _, _, real_feats = fmnist_reference(samples, seed)
    else:
        judge, real_feats = reference
    try:
        return {"fd_single_scale_model": cfebm_fd(studio.load(ablation), judge, real_feats, samples, seed)}
    except studio.CheckpointError as err:
        print(f"Single-scale ablation not evaluated: {err}")
        return {}


def restoration_metrics(model, clean: torch.Tensor, train_mean: torch.Tensor, seed: int) -> dict:
    """Denoising from x + N(0, 0.3^2) and centre-hole inpainting; each image gets its own chain seed."""
    n = len(clean)
    gen = torch.Generator().manual_seed(seed + 1)
    noisy = clean + DENOISE_STD * torch.randn(clean.shape, generator=gen)
    denoised = per_image_chains(lambda x, s: model.denoise(x, seeds=s)[0], noisy, _seed_range(seed, n))
    return {"denoise_psnr_in": round(float(psnr(noisy, clean).mean()), 2),
            # The chain clamps to [-1, 1]; clamping alone already helps, so report that baseline too.
            "denoise_psnr_in_clamped": round(float(psnr(noisy.clamp(-1, 1), clean).mean()), 2),
            "denoise_psnr_out": round(float(psnr(denoised, clean).mean()), 2),
            **inpaint_metrics(model, clean, train_mean, seed), "restoration_images": n}


def centre_hole(res: int, hole: int = HOLE) -> torch.Tensor:
    """A [res, res] 0/1 mask, 1 = known pixel, with the centre hole x hole square unknown."""
    known = torch.ones(res, res)
    lo = (res - hole) // 2
    known[lo : lo + hole, lo : lo + hole] = 0
    return known


def inpaint_metrics(model, clean: torch.Tensor, train_mean: torch.Tensor, seed: int, completions: int = 1) -> dict:
    """Hole-only PSNR of the completions and of filling the hole with the training mean; with several
    completions per image, also their diversity (mean pairwise L2 distance inside the hole)."""
    known = centre_hole(clean.shape[-1])
    hole = (known == 0).expand_as(clean[0])
    repeated = clean.repeat_interleave(completions, 0)
    filled = per_image_chains(lambda x, s: model.inpaint(x, known, seeds=s)[0], repeated, _seed_range(seed, len(repeated)))
    hole_psnr = lambda x, ref: float(psnr(x[:, hole], ref[:, hole]).mean())  # noqa: E731
    meanfill = known * clean + (1 - known) * train_mean
    prefix = "inpaint" if completions == 1 else f"inpaint_{len(clean)}x{completions}"
    out = {f"{prefix}_psnr_hole": round(hole_psnr(filled, repeated), 2), f"{prefix}_psnr_hole_meanfill": round(hole_psnr(meanfill, clean), 2)}
    if completions > 1:
        holes = filled[:, hole].reshape(len(clean), completions, -1)
        pairs = torch.cdist(holes, holes)  # [images, k, k]
        out[f"{prefix}_diversity"] = round(float(pairs.sum((1, 2)).mean() / (completions * (completions - 1))), 3)
    return out


def evaluate_inpainting(model, samples: int, seed: int) -> dict:
    """The interactive-inpainting benchmark: 200 held-out images, centre 12x12 hole, 4 completions each."""
    test = labelled_split("fashion-mnist", "test").images
    clean = test[torch.randperm(len(test), generator=torch.Generator().manual_seed(seed))[:200]]
    return inpaint_metrics(model, clean, labelled_split("fashion-mnist", "train").images.mean(0), seed, completions=4)


def ood_metrics(model, in_dist: torch.Tensor, seed: int) -> dict:
    """AUROC of the score -E(x): Fashion-MNIST test (positive) against each out-of-distribution set."""
    from studio.data.mnist_digits import load_mnist_digits

    n = len(in_dist)
    gen = torch.Generator().manual_seed(seed + 2)
    shape = (n, *in_dist.shape[1:])
    sets = {"noise": torch.rand(shape, generator=gen) * 2 - 1,
            "constant": (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1).expand(shape).contiguous()}
    try:
        digits = load_mnist_digits()[0]
        sets["mnist"] = digits[torch.randperm(len(digits), generator=gen)[:n]]
    except studio.DataNotFoundError as err:
        print(f"MNIST OOD not evaluated: {err}")
    score = lambda x: torch.cat([model.ood_score(x[i : i + 500]).detach() for i in range(0, len(x), 500)])  # noqa: E731
    pos = score(in_dist)
    return {f"ood_auroc_{k}": round(auroc(pos, score(v)), 4) for k, v in sorted(sets.items())}


EVALUATORS: dict[str, Callable] = {"evaluator": evaluate_evaluator, "cdrl": evaluate_cdrl, "drl": evaluate_cdrl,
                                   "cfebm": evaluate_cfebm, "letit": evaluate_letit, "toy-ring": evaluate_toy, "toy-gaussian-mixture": evaluate_toy,
                                   "nerf_lebm": evaluate_nerf_lebm}
EVALUATORS["coopflow"] = evaluate_coopflow  # bulk in train/eval_coopflow.py
EVALUATORS["egc"] = evaluate_egc  # bulk in train/eval_egc.py

# Metric groups that can be recomputed alone (--only) and merged into an existing metrics.json.
GROUPS: dict[str, tuple[set[str], Callable]] = {"inpainting": ({"cdrl", "drl", "cfebm"}, evaluate_inpainting),
                                                "ablation": ({"cfebm"}, evaluate_ablation),
                                                "compose": ({"cdrl"}, evaluate_compose_not),
                                                "drl-baseline": ({"cdrl"}, evaluate_drl_baseline)}


def evaluator_for(model) -> Callable:
    """The full evaluation of a checkpoint: by kind, except that an attribute-conditional CDRL is judged on
    its attributes (class accuracy does not apply to it)."""
    if model.checkpoint.kind == "cdrl" and getattr(model.config, "attributes", None):
        return evaluate_cdrl_attributes
    return EVALUATORS[model.checkpoint.kind]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="checkpoint name (see studio.list_models()) or directory")
    parser.add_argument("--samples", type=int, default=2000, help="sample count for FD (default 2000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--only", choices=sorted(GROUPS), default=None,
                        help="compute one group of metrics and merge it into the checkpoint's metrics.json")
    args = parser.parse_args(argv)
    if args.samples < 10:
        parser.error("--samples must be at least 10")
    model = studio.load(args.name)
    kind = model.checkpoint.kind
    if kind not in EVALUATORS:
        parser.error(f"no evaluation defined for kind '{kind}' (known: {sorted(EVALUATORS)})")
    torch.manual_seed(args.seed)
    path = Path(model.checkpoint.path)
    if args.only:
        kinds, fn = GROUPS[args.only]
        if kind not in kinds:
            parser.error(f"--only {args.only} applies to kinds {sorted(kinds)}, not '{kind}'")
        old = path / "metrics.json"
        metrics = {**(json.loads(old.read_text()) if old.exists() else {}), **fn(model, args.samples, args.seed)}
    else:
        metrics = evaluator_for(model)(model, args.samples, args.seed)
    if model.checkpoint.source != "hub":
        (path / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        compose = compose_card_extra(model, metrics) if kind == "cdrl" else ""
        extra = "\n\n".join(filter(None, [card_extra(kind, model.checkpoint.name, metrics), compose]))
        update_card_metrics(path / "README.md", metrics, extra)
    print(json.dumps(metrics) if args.json else "\n".join(f"{k}: {v}" for k, v in metrics.items()))


if __name__ == "__main__":
    main()
