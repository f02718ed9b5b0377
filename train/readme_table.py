"""The README's model table, generated from the model cards so it cannot drift from them.

    python -m train.readme_table           # rewrite the table between the markers in README.md
    python -m train.readme_table --check   # exit 1 if README.md's table differs from the cards

Every measured number comes from ``checkpoints/<name>/metrics.json`` (written by ``python -m
train.evaluate NAME``); settings (levels, K, steps) come from the checkpoint's ``config.json``; the bars
and whether each is met come from ``studio.bars``. A row whose metrics lack a key it needs says
"not measured" for that part instead of keeping an old number. Run it after every evaluation;
``tests/test_readme_table.py`` fails while the README and the cards disagree.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from studio import bars
from studio.hub import checkpoints_dir

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- models:start (python -m train.readme_table) -->", "<!-- models:end -->"
HEADER = ("| name | method | data | measured (held-out; `python -m train.evaluate NAME` writes `metrics.json`) |\n"
          "|---|---|---|---|")


class Card:
    """One checkpoint's numbers: ``m("key")`` reads metrics.json, ``c("key")`` config.json's config."""

    def __init__(self, name: str, root: Path):
        self.name = name
        self.metrics = bars.read_metrics(name, root)
        try:
            payload = json.loads((root / name / "config.json").read_text())
        except (OSError, ValueError):
            payload = {}
        self.config = payload.get("config", {}) if isinstance(payload, dict) else {}
        self.payload = payload if isinstance(payload, dict) else {}

    def m(self, key: str):
        if key not in self.metrics:
            raise Missing(key)
        return self.metrics[key]

    def c(self, key: str):
        if key not in self.config:
            raise Missing(f"config.{key}")
        return self.config[key]

    def has(self, *keys: str) -> bool:
        return all(k in self.metrics for k in keys)


class Missing(KeyError):
    """A number the row needs is not in the card."""


def n(v) -> str:
    """Counts with thousands separators (2,000)."""
    return f"{int(v):,}"


def grown(c: Card) -> str:
    """"8 -> 16 -> 32" from a CF-EBM config (each stage doubles the resolution)."""
    sizes, r = [], int(c.c("base_resolution"))
    while r <= int(c.c("resolution")):
        sizes.append(str(r))
        r *= 2
    return " -> ".join(sizes)


def minutes(hours: float) -> str:
    return f"{hours * 60:.0f} min"


def part(card: Card, fn: Callable[[Card], str]) -> str:
    """One clause of a row; "not measured" instead of a stale number when its keys are missing."""
    try:
        return fn(card)
    except Missing as key:
        return f"{str(key).strip(chr(39))} not measured"


def bar_summary(card: Card) -> str:
    """"bars: ... met; ... missed" from studio.bars and the card's metrics."""
    verdicts = bars.verdicts(card.name, metrics=card.metrics)
    if not verdicts:
        return ""
    met = [v for v in verdicts if v.met]
    missed = [v for v in verdicts if not v.met]
    out = []
    if missed:
        out.append("**bars missed:** " + "; ".join(v.describe() for v in missed))
    if met:
        out.append("bars met: " + "; ".join(v.describe() for v in met))
    return ". ".join(out)


@dataclass(frozen=True)
class Row:
    name: str
    method: Callable[[Card], str]
    data: str
    measured: tuple[Callable[[Card], str], ...]


def _cdrl_like(c: Card) -> str:
    return (f"class accuracy {c.m('class_accuracy_w0'):.3f} / {c.m('class_accuracy_w1'):.3f} / {c.m('class_accuracy_w3'):.3f} "
            f"at w = 0 / 1 / 3; FD {c.m('fd_uncond'):.2f} unconditional, {c.m('fd_w1'):.2f} at w = 1 ({n(c.m('samples'))} "
            f"samples; floor {c.m('fd_floor'):.3f} at that count)")


ROWS: tuple[Row, ...] = (
    Row("toy-gaussian-mixture", lambda c: "analytic 2-D energy (playground)", "—", (
        lambda c: (f"{n(c.m('samples'))} chains: {c.m('modes_covered')}/{c.m('num_modes')} modes covered, "
                   f"{c.m('within_3_std'):.1%} within 3 std of a mode, largest mode share {c.m('max_mode_share'):.3f} "
                   f"(ideal {1 / c.m('num_modes'):.3f})"),)),
    Row("toy-ring", lambda c: "analytic 2-D energy (playground)", "—", (
        lambda c: (f"{n(c.m('samples'))} chains: mean radius {c.m('mean_radius'):.3f} (target {c.m('target_radius'):g}), "
                   f"radius std {c.m('radius_std'):.3f}"),)),
    Row("cdrl-fmnist", lambda c: f"CDRL, class-conditional, T = {c.c('num_levels')}, K = {c.c('langevin_steps')}",
        "Fashion-MNIST 32x32", (
            _cdrl_like,
            lambda c: f"{c.m('cdrl_evals')} network evaluations per sample; {c.m('seconds_per_16_samples'):.2f} s per 16 samples",
            lambda c: (f"inpainting (200 images x 4 completions, centre 12x12) hole PSNR {c.m('inpaint_200x4_psnr_hole'):.2f} "
                       f"vs {c.m('inpaint_200x4_psnr_hole_meanfill'):.2f} mean-fill, diversity {c.m('inpaint_200x4_diversity'):.2f}"))),
    Row("cdrl-fmnist-attributes", lambda c: (f"CDRL conditional on {len(c.c('attributes'))} binary attributes "
                                             f"({', '.join(c.c('attributes'))}), composed AND / NOT"), "Fashion-MNIST 32x32", (
        lambda c: (f"composition at w = {c.m('compose_guidance'):g} ({c.m('compose_samples_per_setting')} samples per setting): "
                   f"single-attribute accuracy {c.m('compose_single_accuracy'):.3f}, pairs {c.m('compose_pair_accuracy'):.3f}, "
                   f"triples {c.m('compose_triple_accuracy'):.3f}"),
        lambda c: (f"unconditional FD {c.m('fd_uncond'):.2f} ({n(c.m('samples'))} samples); "
                   f"{c.m('seconds_per_16_single_attribute_samples'):.2f} s per 16 single-attribute samples"))),
    Row("drl-fmnist", lambda c: f"DRL baseline (no initializer), T = {c.c('num_levels')}, K = {c.c('langevin_steps')}",
        "Fashion-MNIST 32x32", (
            _cdrl_like,
            lambda c: f"{c.m('drl_evals')} network evaluations per sample; {c.m('seconds_per_16_samples'):.2f} s per 16 samples")),
    Row("cfebm-fmnist", lambda c: f"CF-EBM grown {grown(c)} px", "Fashion-MNIST 32x32", (
        lambda c: (f"FD {c.m('fd'):.2f} single-scale sampler, {c.m('fd_multiscale'):.2f} multi-scale ({n(c.m('samples'))} samples; "
                   f"floor {c.m('fd_floor'):.3f}); the single-scale ablation model {c.m('fd_single_scale_model'):.2f}"),
        lambda c: (f"denoising (std 0.3, {c.m('restoration_images')} images) {c.m('denoise_psnr_in'):.2f} -> {c.m('denoise_psnr_out'):.2f} dB "
                   f"({c.m('denoise_psnr_in_clamped'):.2f} after clipping alone); centre-12x12 inpainting hole PSNR "
                   f"{c.m('inpaint_psnr_hole'):.2f} vs {c.m('inpaint_psnr_hole_meanfill'):.2f} mean-fill"),
        lambda c: (f"OOD AUROC noise {c.m('ood_auroc_noise'):.3f}, constant {c.m('ood_auroc_constant'):.3f}, "
                   f"MNIST {c.m('ood_auroc_mnist'):.3f}; {c.m('train_hours'):.2f} h of training"))),
    Row("ebm-single-fmnist", lambda c: f"ablation: the same network at {c.c('resolution')} px only", "Fashion-MNIST 32x32", (
        lambda c: f"FD {c.m('fd'):.2f} ({n(c.m('samples'))} samples, floor {c.m('fd_floor'):.3f})",
        lambda c: f"denoising {c.m('denoise_psnr_in'):.2f} -> {c.m('denoise_psnr_out'):.2f} dB; {c.m('train_hours'):.2f} h of training")),
    Row("cfebm-emoji-t2g", lambda c: (f"CF-EBM pixel-space translation {c.c('source_domain')} -> {c.c('target_domain')}, "
                                      f"grown {grown(c)} px"), "emoji 64x64", (
        lambda c: (f"on the {c.m('cfebm_t2g_pairs')} held-out true pairs: PSNR {c.m('cfebm_t2g_psnr'):.2f} vs {c.m('identity_t2g_psnr'):.2f} "
                   f"untranslated, SSIM {c.m('cfebm_t2g_ssim'):.3f} vs {c.m('identity_t2g_ssim'):.3f}, evaluator's \"google\" probability "
                   f"{c.m('cfebm_t2g_target_score'):.3f}, FD {c.m('cfebm_t2g_fd'):.2f}"),
        lambda c: (f"saliency vs \\|output - input\\| Spearman {c.m('saliency_spearman_change_20'):.3f}, vs the true Google-Twitter "
                   f"difference {c.m('saliency_spearman_true_difference_20'):.3f} (20 held-out emoji); {c.m('train_hours'):.2f} h of training"))),
    Row("letit-emoji", lambda c: (f"LETIT: autoencoder to a {c.c('image_size') // 4}x{c.c('image_size') // 4}x{c.c('latent_channels')} "
                                  "latent map + one latent EBM per direction"), "emoji 64x64", (
        lambda c: (f"on the {c.m('t2g_pairs')} held-out true pairs: Twitter -> Google ({c.m('t2g_steps')} steps) \"google\" probability "
                   f"{c.m('t2g_target_score'):.3f}, PSNR {c.m('t2g_psnr'):.2f} vs {c.m('identity_t2g_psnr'):.2f} untranslated "
                   f"({c.m('t2g_psnr_gain'):+.3f} dB), SSIM {c.m('t2g_ssim'):.3f} vs {c.m('identity_t2g_ssim'):.3f}, FD {c.m('t2g_fd'):.2f}"),
        lambda c: (f"Google -> Twitter ({c.m('g2t_steps')} steps) \"twitter\" probability {c.m('g2t_target_score'):.3f}, PSNR "
                   f"{c.m('g2t_psnr'):.2f} vs {c.m('identity_g2t_psnr'):.2f} ({c.m('g2t_psnr_gain'):+.3f} dB), SSIM {c.m('g2t_ssim'):.3f} "
                   f"vs {c.m('identity_g2t_ssim'):.3f}, FD {c.m('g2t_fd'):.2f}"),
        lambda c: (f"reconstruction {c.m('recon_psnr'):.1f} dB; {c.m('seconds_per_translation'):.3f} s per translation; "
                   f"{c.m('ae_train_seconds') / 60:.0f} min autoencoder + "
                   + (f"{c.m('decoder_train_seconds') / 60:.0f} min robust decoder + " if c.has("decoder_train_seconds") else "")
                   + f"{c.m('ebm_t2g_train_seconds') / 60:.0f} min (t2g) / "
                   f"{c.m('ebm_g2t_train_seconds') / 60:.0f} min (g2t) latent EBMs"))),
    Row("egc-fmnist", lambda c: "EGC: one U-Net classifier whose logsumexp input gradient is the diffusion epsilon",
        "Fashion-MNIST 32x32", (
            lambda c: (f"test accuracy {c.m('egc_test_accuracy'):.3f} ({n(c.m('egc_test_images'))} images; "
                       f"{n(c.m('egc_parameters'))} parameters)"),
            lambda c: (f"FGSM at eps {c.m('fgsm_epsilon'):g}: EGC keeps {c.m('fgsm_accuracy_egc'):.3f} accuracy vs evaluator-fmnist "
                       f"{c.m('fgsm_accuracy_evaluator'):.3f} ({n(c.m('fgsm_images'))} test images)"),
            lambda c: (f"guided DDIM samples ({c.m('egc_ddim_steps')} steps, guidance {c.m('egc_guidance'):g}): evaluator accuracy "
                       f"{c.m('egc_class_accuracy_guided'):.3f}, FD {c.m('egc_fd'):.2f} ({n(c.m('egc_samples'))} samples, floor "
                       f"{c.m('fd_floor'):.3f})"),
            lambda c: f"{minutes(c.m('egc_train_hours'))} of training in {c.m('egc_train_runs')} runs")),
    Row("coopflow-fmnist", lambda c: (f"CoopFlow: Glow-style flow proposals refined by Langevin steps on an EBM "
                                      f"(trained with T = {c.c('langevin_steps')})"), "Fashion-MNIST 32x32", (
        lambda c: (f"FD {c.m('coopflow_fd_flow'):.2f} flow-only -> {c.m('coopflow_fd_refined'):.2f} refined "
                   f"(T = {c.m('sample_steps')}, delta {c.m('step_size'):g}) at the same "
                   f"{n(c.m('samples'))} seeds (floor {c.m('fd_floor'):.3f})"),
        lambda c: f"predicted-class entropy {c.m('coopflow_class_entropy'):.2f} nats (ln 10 = 2.303)",
        lambda c: (f"flow {c.m('coopflow_flow_test_bpd'):.2f} bits/dim on 1,000 test images; "
                   f"{minutes(c.m('coopflow_train_hours'))} of training"))),
    Row("nerf-lebm-shapes", lambda c: ("NeRF-LEBM: triplane field with shape (density) and appearance (colour-only) latents, "
                                       "one MLP energy prior each, amortised encoder"), "shapes3d 64x64", (
        lambda c: (f"novel views from one input view, {c.m('novel_view_objects')} held-out objects x {c.m('novel_views_per_object')} "
                   f"views: {c.m('novel_view_psnr'):.2f} dB (NeRF-VAE {c.m('nerf_vae_novel_view_psnr'):.2f})"),
        lambda c: (f"FD of {n(c.m('fd_samples'))} prior renders {c.m('fd_ebm_prior'):.2f} (EBM prior) vs {c.m('fd_gaussian_prior'):.2f} "
                   f"(Gaussian prior of NeRF-VAE) and {c.m('fd_lebm_generator_gaussian_prior'):.2f} (this generator with N(0, I) latents)"),
        lambda c: (f"{round(c.m('class_coverage') * 6)} of 6 categories among the samples; {c.m('seconds_per_view_64'):.3f} s per 64x64 view; "
                   f"{minutes(c.m('train_hours'))} of training"))),
    Row("nerf-vae-shapes", lambda c: "the Gaussian-prior baseline: same field and encoder, same budget", "shapes3d 64x64", (
        lambda c: f"novel-view PSNR {c.m('novel_view_psnr'):.2f} dB; FD {c.m('fd_gaussian_prior'):.2f}",
        lambda c: (f"{round(c.m('class_coverage') * 6)} of 6 categories ({_top_share(c.m('class_histogram'))}); "
                   f"{minutes(c.m('train_hours'))} of training"))),
    Row("evaluator-fmnist", lambda c: "reference classifier (FD features)", "Fashion-MNIST", (
        lambda c: f"test accuracy {c.m('test_accuracy'):.3f} ({n(c.m('test_images'))} test images); FD floor at 2,000 = {c.m('fd_floor_2000'):.3f}",)),
    Row("evaluator-emoji", lambda c: "Twitter-vs-Google style classifier", "emoji 64x64", (
        lambda c: f"test accuracy {c.m('test_accuracy'):.3f} ({n(c.m('test_images'))} images of emoji never seen in training)",)),
    Row("evaluator-shapes3d", lambda c: "6-class shape classifier", "shapes3d renders", (
        lambda c: f"test accuracy {c.m('test_accuracy'):.3f} ({n(c.m('test_images'))} views of unseen objects)",)),
)


def _top_share(histogram: Mapping) -> str:
    total = sum(histogram.values()) or 1
    name, count = max(histogram.items(), key=lambda kv: kv[1])
    return f"{count / total:.0%} {name}s"


def row_text(row: Row, root: Path) -> str:
    card = Card(row.name, root)
    measured = "; ".join(part(card, fn) for fn in row.measured)
    summary = bar_summary(card)
    cell = lambda s: s.replace("\n", " ")  # noqa: E731
    return (f"| `{row.name}` | {cell(part(card, row.method))} | {row.data} | {cell(measured)}"
            + (f". {cell(summary)}" if summary else "") + " |")


def table(root: Path | None = None) -> str:
    """The table for the checkpoints in ``root`` (default: the local checkpoints folder); absent models are left out."""
    root = Path(root or checkpoints_dir())
    rows = [row_text(r, root) for r in ROWS if (root / r.name / "config.json").is_file()]
    return "\n".join([HEADER, *rows])


def block(root: Path | None = None) -> str:
    return f"{START}\n{table(root)}\n{END}"


def current_block(text: str) -> str | None:
    if START not in text or END not in text:
        return None
    return text[text.index(START): text.index(END) + len(END)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if README.md's table differs from the cards")
    ap.add_argument("--readme", type=Path, default=README)
    args = ap.parse_args(argv)
    text = args.readme.read_text()
    old = current_block(text)
    if old is None:
        print(f"{args.readme}: no {START!r} ... {END!r} markers", file=sys.stderr)
        return 1
    new = block()
    if args.check:
        if old != new:
            print("README.md's model table differs from the cards: run `python -m train.readme_table`.", file=sys.stderr)
            return 1
        return 0
    args.readme.write_text(text.replace(old, new))
    print(f"wrote the model table of {args.readme} ({new.count(chr(10)) - 3} models)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
