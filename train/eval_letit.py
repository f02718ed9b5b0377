"""LETIT evaluation (``python -m train.evaluate letit-emoji``): both directions on the true held-out pairs,
the pixel-space CF-EBM baseline on the same pairs, the autoencoder's ceiling, the on-manifold check and the
training cost."""
from __future__ import annotations

import time

import torch

import studio
from studio.metrics import psnr, ssim

from .eval_common import translation_metrics


def latent_gap(model, z: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Per-latent RMS of project(z) - z = Enc(Dec(z)) - z in normalised latent units: how far a code is from
    being a fixed point of the autoencoder (codes of real drawings give the reference)."""
    return torch.cat([(model.project(c) - c).flatten(1).pow(2).mean(1).sqrt().cpu() for c in z.split(batch)])


def evaluate_letit(model, samples: int, seed: int) -> dict:
    """Both translation directions on the true held-out pairs (PSNR/SSIM to the counterpart, the identity
    baseline, the evaluator's target-style probability, FD to the target-style test set), CF-EBM pixel
    translation (cfebm-emoji-t2g) on the same twitter->google pairs, the autoencoder's reconstruction PSNR over
    both styles (the ceiling) and the training time of each stage.
    Chains use each direction's default sampler settings; image i of the test split gets seed i; with
    ``--samples`` below the 512 test pairs, only the first ``samples`` pairs are translated.

    On-manifold check: ``{d}_reencode_psnr`` is the mean PSNR between a direction's outputs and
    Dec(Enc(outputs)) (``LETIT.reencode_psnr``); a clean output is a near fixed point of the autoencoder.
    ``reencode_psnr_real_twitter`` / ``_google`` are the same for the real test drawings of each style (all
    test pairs), the level a real drawing reaches. Decoder outputs are smooth images the autoencoder redraws
    well, so on letit-emoji blotchy outputs score *above* the real drawings; the same check in latent space
    sees them: ``{d}_latent_gap`` is the RMS of Enc(Dec(z_T)) - z_T over the chain ends (normalised latent
    units, ``latent_gap``), beside ``latent_gap_real_twitter`` / ``_google`` for the codes of real drawings.
    """
    from studio.data.emoji import load_emoji_pairs

    metrics: dict = {}
    for direction in model.trained_directions:
        results: list = []  # kept for the re-encode checks (translation_metrics returns numbers only)

        def translate(x, s, d=direction, keep=results):
            keep.append(model.translate(x, d, seeds=s))
            return keep[-1].outputs

        metrics.update(translation_metrics(translate, direction, direction, limit=samples))
        metrics[f"{direction}_steps"] = model.sampler_defaults(direction)["steps"]
        if model.config.project_every:
            metrics[f"{direction}_project_every"] = model.config.project_every
        metrics[f"{direction}_reencode_psnr"] = round(float(model.reencode_psnr(torch.cat([r.outputs for r in results])).mean()), 2)
        metrics[f"{direction}_latent_gap"] = round(float(latent_gap(model, torch.cat([r.latents for r in results])).mean()), 3)
    if "t2g" in model.trained_directions:
        try:
            pixel = studio.load("cfebm-emoji-t2g")
        except studio.CheckpointError:
            pixel = None
        if pixel is not None:
            base = translation_metrics(lambda x, s: pixel.translate(x, seeds=s)[0], "cfebm_t2g", "t2g", limit=samples)
            metrics.update({k: v for k, v in base.items() if k.startswith("cfebm_")})
    pairs = load_emoji_pairs("test", size=model.config.image_size)
    both = torch.cat([pairs.twitter, pairs.google])
    recon = torch.cat([model.reconstruct(both[i : i + 256]) for i in range(0, len(both), 256)])
    metrics["recon_psnr"] = round(float(psnr(recon, both).mean()), 2)
    metrics["recon_ssim"] = round(float(ssim(recon, both).mean()), 4)
    n = len(pairs.twitter)  # a real drawing's re-encode PSNR is its reconstruction PSNR: split the same numbers by style
    metrics["reencode_psnr_real_twitter"] = round(float(psnr(recon[:n], both[:n]).mean()), 2)
    metrics["reencode_psnr_real_google"] = round(float(psnr(recon[n:], both[n:]).mean()), 2)
    with torch.no_grad():
        codes = torch.cat([model.encode(both[i : i + 256]) for i in range(0, len(both), 256)])
    gaps = latent_gap(model, codes)
    metrics["latent_gap_real_twitter"], metrics["latent_gap_real_google"] = (round(float(g.mean()), 3) for g in (gaps[:n], gaps[n:]))
    stages = model.checkpoint.extra.get("stages", {})
    if "autoencoder" in stages:
        metrics["ae_train_seconds"] = round(stages["autoencoder"]["seconds"])
    if "decoder" in stages:  # the robust-decoder fine-tuning (train/letit.py --stage decoder)
        metrics["decoder_train_seconds"] = round(stages["decoder"]["seconds"])
    ebm_seconds = {d: stages[f"ebm_{d}"]["seconds"] for d in model.trained_directions if f"ebm_{d}" in stages}
    for d, sec in ebm_seconds.items():
        metrics[f"ebm_{d}_train_seconds"] = round(sec)
    if ebm_seconds:
        metrics["ebm_train_seconds"] = round(sum(ebm_seconds.values()))
    if model.trained_directions:
        d = model.trained_directions[0]
        start = time.perf_counter()
        model.translate(torch.zeros(1, 3, model.config.image_size, model.config.image_size), d, seeds="0")
        metrics["seconds_per_translation"] = round(time.perf_counter() - start, 3)
    return metrics


def card_extra(m: dict) -> str:
    """What the LETIT numbers mean, written from the numbers themselves."""
    lines = []
    for d, name in (("t2g", "Twitter -> Google"), ("g2t", "Google -> Twitter")):
        if f"{d}_psnr" not in m:
            continue
        gain = m.get(f"{d}_psnr_gain", m[f"{d}_psnr"] - m[f"identity_{d}_psnr"])
        beat = f"{abs(gain):.3f} dB {'above' if gain > 0 else 'below'}"
        lines.append(f"- {name} ({m.get(f'{d}_steps', '?')} steps): PSNR to the true drawing {m[f'{d}_psnr']} dB, {beat} the "
                     f"untranslated input's {m[f'identity_{d}_psnr']} dB; evaluator probability of the target style "
                     f"{m[f'{d}_target_score']} (bar 0.8); FD {m[f'{d}_fd']}; {m[f'{d}_pairs']} held-out pairs.")
    if "cfebm_t2g_psnr" in m and "t2g_psnr" in m:
        lines.append(f"- Pixel-space CF-EBM on the same pairs: PSNR {m['cfebm_t2g_psnr']} dB, target-style probability "
                     f"{m['cfebm_t2g_target_score']}, FD {m['cfebm_t2g_fd']}.")
    reencode = [f"{name} outputs {m[f'{d}_reencode_psnr']} dB (real {target} drawings {m[f'reencode_psnr_real_{target}']} dB)"
                for d, name, target in (("t2g", "Twitter -> Google", "google"), ("g2t", "Google -> Twitter", "twitter"))
                if f"{d}_reencode_psnr" in m and f"reencode_psnr_real_{target}" in m]
    if reencode:
        lines.append("- On-manifold check, PSNR between an image and Dec(Enc(image)) (a clean output is a near fixed point "
                     "of the autoencoder): " + "; ".join(reencode) + ".")
    gaps = [f"{name} chain ends {m[f'{d}_latent_gap']} (codes of real {target} drawings {m[f'latent_gap_real_{target}']})"
            for d, name, target in (("t2g", "Twitter -> Google", "google"), ("g2t", "Google -> Twitter", "twitter"))
            if f"{d}_latent_gap" in m and f"latent_gap_real_{target}" in m]
    if gaps:
        lines.append("- The same in latent space, RMS of Enc(Dec(z)) - z (normalised units): " + "; ".join(gaps) + ".")
    if "recon_psnr" in m:
        lines.append(f"- The autoencoder's reconstruction PSNR on both styles, the ceiling of any latent translation: {m['recon_psnr']} dB.")
    return "\n".join(lines)
