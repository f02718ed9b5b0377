"""NeRF-LEBM metrics (``python -m train.evaluate nerf-lebm-shapes``), on held-out shapes3d test objects.

* ``novel_view_psnr``: infer the latents of each of ``NOVEL_OBJECTS`` (100) test objects from one view (view 0,
  its pose known), render 8 other views of it at 64x64 and average the PSNR (images in [0, 1]) over all
  of them; ``infer`` with the checkpoint's defaults (amortised encoder plus ``config.refine_steps`` steps
  of posterior gradient descent, chosen on validation objects by ``python -m train.eval_nerf NAME``).
  The encoder alone is measured on validation objects when the defaults are chosen (``refine_validation_psnr``
  in config.json).
* ``nerf_vae_*``: the same protocol for the Gaussian-prior baseline ``nerf-vae-shapes``.
* ``fd_ebm_prior`` / ``fd_gaussian_prior``: Frechet distance in evaluator-shapes3d features between
  ``FD_SAMPLES`` renders (random objects from the prior, random poses in the training range) and as many
  held-out test views. ``fd_gaussian_prior`` is the NeRF-VAE baseline (its own prior);
  ``fd_lebm_generator_gaussian_prior`` is NeRF-LEBM's generator fed N(0, I) latents, which isolates the
  prior. Renders are made at 32x32 (the evaluator's input size; 4x cheaper) and compared with test views
  area-downsampled to 32x32 by the evaluator.
* ``class_coverage``: the fraction of the 6 categories the evaluator finds among the EBM-prior samples.
* ``seconds_per_view_64``: median wall time of one 64x64 render (10 renders, this CPU, current load).

Each checkpoint is evaluated on its own (``python -m train.evaluate nerf-vae-shapes`` gives the baseline's
numbers); NeRF-LEBM's run reads the baseline's ``metrics.json`` when it was made with the same protocol, and
reuses its own earlier numbers when its weights file has not changed since (the renders cost minutes on a
CPU); ``STUDIO_EVAL_FRESH=1`` recomputes everything.
"""
from __future__ import annotations

import hashlib
import json
import os
import time

import torch

import studio
from studio.data import shapes3d
from studio.metrics import batched_features, frechet_distance, psnr
from studio.nerf_lebm import ELEVATION_RANGE, NeRFLEBM

NOVEL_OBJECTS = 100
NOVEL_VIEWS = (1, 4, 7, 10, 13, 17, 20, 23)  # 8 views spread around the object (view 0 is the input)
FD_SAMPLES = 1000
FD_RES = 32
REFINE_GRID = ((20, 1e-4), (20, 3e-4), (20, 1e-3))  # (steps, step size) tried on validation objects
VAL_OBJECTS = 10
BASELINE = "nerf-vae-shapes"


def test_objects() -> shapes3d.Shapes3DData:
    return shapes3d.build_dataset("test", shapes3d.DEFAULT_TEST_OBJECTS, progress=True)


def novel_view_psnr(model: NeRFLEBM, data: shapes3d.Shapes3DData, objects: int, refine_steps: int | None = None,
                    step_size: float | None = None, batch: int = 10) -> float:
    """Mean PSNR (dB, images in [0, 1]) over ``objects`` x 8 held-out views, inferring from view 0."""
    scores = []
    views = list(NOVEL_VIEWS)
    for start in range(0, objects, batch):
        idx = list(range(start, min(objects, start + batch)))
        image = data.rgb[idx, 0].float() / 255
        z_s, z_a = model.infer(image, data.azimuth[idx, 0], data.elevation[idx, 0], refine_steps=refine_steps, step_size=step_size)
        for v in views:
            out = model.render(z_s, z_a, data.azimuth[idx, v], data.elevation[idx, v], resolution=64)["rgb"]
            scores.append(psnr(out, data.rgb[idx, v].float() / 255, data_range=1.0))
    return round(float(torch.cat(scores).mean()), 3)


def prior_renders(model: NeRFLEBM, n: int, seed: int, prior: str, res: int = FD_RES, batch: int = 50) -> torch.Tensor:
    """``n`` renders in [0, 1] of prior samples at random poses (azimuth uniform, elevation uniform in range)."""
    gen = torch.Generator().manual_seed(seed + 12345)
    az = torch.rand(n, generator=gen) * 360 - 180
    el = ELEVATION_RANGE[0] + torch.rand(n, generator=gen) * (ELEVATION_RANGE[1] - ELEVATION_RANGE[0])
    out = []
    for i in range(0, n, batch):
        seeds = list(range(seed * 100_000 + i, seed * 100_000 + min(n, i + batch)))
        z_s, z_a = model.sample_latents(prior=prior, seeds=seeds)
        out.append(model.render(z_s, z_a, az[i : i + len(seeds)], el[i : i + len(seeds)], resolution=res)["rgb"])
    return torch.cat(out)


def held_out_views(data: shapes3d.Shapes3DData, n: int, seed: int) -> torch.Tensor:
    flat = data.rgb.reshape(-1, *data.rgb.shape[2:])
    pick = torch.randperm(len(flat), generator=torch.Generator().manual_seed(seed))[:n]
    return flat[pick].float() / 255


def render_seconds(model: NeRFLEBM, repeats: int = 10) -> float:
    z_s, z_a = model.sample_latents(1, prior="gaussian", seeds=0)
    model.render(z_s, z_a, 30, 20, resolution=64)  # warm-up
    times = []
    for k in range(repeats):
        start = time.perf_counter()
        model.render(z_s, z_a, -180 + 36 * k, 25, resolution=64)
        times.append(time.perf_counter() - start)
    return round(sorted(times)[len(times) // 2], 3)


def weights_digest(model: NeRFLEBM) -> str:
    return hashlib.sha1((model.checkpoint.path / "model.safetensors").read_bytes()).hexdigest()[:16]


def _protocol(model: NeRFLEBM, n_fd: int, objects: int) -> dict:
    return {"novel_view_objects": objects, "novel_views_per_object": len(NOVEL_VIEWS), "fd_samples": n_fd,
            "fd_resolution": FD_RES, "refine_steps": model.config.refine_steps, "refine_step_size": model.config.refine_step_size,
            "weights_sha1": weights_digest(model)}


def _earlier(model: NeRFLEBM, protocol: dict) -> dict:
    """This checkpoint's previous metrics if they were computed with the same protocol and weights."""
    file = model.checkpoint.path / "metrics.json"
    if os.environ.get("STUDIO_EVAL_FRESH") == "1" or not file.exists():
        return {}
    old = json.loads(file.read_text())
    return old if all(old.get(k) == v for k, v in protocol.items()) else {}


def evaluate_nerf_lebm(model: NeRFLEBM, samples: int, seed: int, objects: int = NOVEL_OBJECTS) -> dict:
    """The issue's table (see the module docstring); ``samples`` caps the FD sample count at FD_SAMPLES."""
    n_fd = min(samples, FD_SAMPLES)
    protocol = _protocol(model, n_fd, objects)
    earlier = _earlier(model, protocol)
    is_ebm = model.config.prior == "ebm"
    if earlier:
        kept = {k: v for k, v in earlier.items() if not (k.startswith("nerf_vae_") or (is_ebm and k == "fd_gaussian_prior"))}
        if is_ebm:
            kept.update(baseline_metrics(n_fd, objects))
        # Render time belongs to the machine and its load, not to the weights: always measured afresh.
        kept["seconds_per_view_64"] = render_seconds(model)
        return {**kept, "reused_earlier_metrics": True}
    data = test_objects()
    judge = studio.load("evaluator-shapes3d")
    feats = lambda x: batched_features(judge.features, x * 2 - 1)  # noqa: E731  (the evaluator takes [-1, 1])
    real = feats(held_out_views(data, n_fd, seed))
    m: dict = {}
    t0 = time.perf_counter()
    m["seconds_per_view_64"] = render_seconds(model)
    m["novel_view_psnr"] = novel_view_psnr(model, data, objects)
    own = prior_renders(model, n_fd, seed, model.config.prior)
    m["fd_ebm_prior" if is_ebm else "fd_gaussian_prior"] = round(frechet_distance(feats(own), real), 3)
    preds = judge.predict(own * 2 - 1)
    counts = torch.bincount(preds, minlength=judge.config.num_classes)
    m["class_coverage"] = round(float((counts > 0).float().mean()), 4)
    m["class_histogram"] = dict(zip(judge.config.class_names, counts.tolist()))
    if is_ebm:
        gauss = prior_renders(model, n_fd, seed, "gaussian")
        m["fd_lebm_generator_gaussian_prior"] = round(frechet_distance(feats(gauss), real), 3)
        m.update(baseline_metrics(n_fd, objects))
    info = model.checkpoint.extra.get("training", {})
    m["train_hours"] = round(float(info.get("wall_time_minutes", 0.0)) / 60, 3)
    m["train_steps"] = info.get("steps")
    m.update({**protocol, "reused_earlier_metrics": False, "eval_minutes": round((time.perf_counter() - t0) / 60, 1)})
    return m


def baseline_metrics(n_fd: int, objects: int) -> dict:
    """The NeRF-VAE baseline's numbers under the same protocol, from its own metrics.json
    (``python -m train.evaluate nerf-vae-shapes``); a note says when they are missing."""
    from studio.registry import local_names

    if BASELINE not in local_names():
        return {"nerf_vae_note": f"{BASELINE} not found"}
    vae = studio.load(BASELINE)
    file = vae.checkpoint.path / "metrics.json"
    base = json.loads(file.read_text()) if file.exists() else {}
    same = {k: v for k, v in _protocol(vae, n_fd, objects).items() if k not in ("refine_steps", "refine_step_size")}
    if not base or any(base.get(k) != v for k, v in same.items()):
        return {"nerf_vae_note": f"run `python -m train.evaluate {BASELINE}` first (no metrics with this protocol)"}
    return {"nerf_vae_novel_view_psnr": base["novel_view_psnr"],
            "fd_gaussian_prior": base["fd_gaussian_prior"], "nerf_vae_train_hours": base["train_hours"],
            "nerf_vae_train_steps": base.get("train_steps"), "nerf_vae_refine_steps": base.get("refine_steps")}


def card_extra(m: dict) -> str:
    """Which prior wins, in words, under the metrics table."""
    lines = []
    if "fd_ebm_prior" in m and "fd_gaussian_prior" in m:
        win = "EBM prior" if m["fd_ebm_prior"] < m["fd_gaussian_prior"] else "Gaussian prior (NeRF-VAE)"
        lines.append(f"- FD of prior samples (lower is better): EBM prior {m['fd_ebm_prior']} vs NeRF-VAE "
                     f"{m['fd_gaussian_prior']}; NeRF-LEBM's generator with N(0, I) latents "
                     f"{m.get('fd_lebm_generator_gaussian_prior')}. Winner: {win}.")
    if "nerf_vae_novel_view_psnr" in m:
        lines.append(f"- Single-view novel-view PSNR: NeRF-LEBM {m['novel_view_psnr']} dB vs NeRF-VAE "
                     f"{m['nerf_vae_novel_view_psnr']} dB ({m['novel_view_objects']} test objects x "
                     f"{m['novel_views_per_object']} views, infer() with each checkpoint's refinement defaults).")
    return "\n".join(lines)


def validation_objects(n: int | None = None) -> shapes3d.Shapes3DData:
    """The first ``n`` of the objects the training script holds out (the last 200 of the training collection),
    rendered directly (no need to load the whole training cache)."""
    n = n or VAL_OBJECTS
    first = shapes3d.DEFAULT_TRAIN_OBJECTS - 200
    out = {k: [] for k in ("rgb", "c2w", "azimuth", "elevation", "label")}
    for oid in range(first, first + n):
        obj, label = shapes3d.make_object(oid, 0)
        az, el = shapes3d.view_angles(oid, shapes3d.VIEWS, 0)
        c2w = torch.stack([shapes3d.camera_to_world(a, e) for a, e in zip(az, el)])
        r = shapes3d.render_object(obj, c2w)
        out["rgb"].append((r["rgb"] * 255).round().to(torch.uint8))
        out["c2w"].append(c2w)
        out["azimuth"].append(az)
        out["elevation"].append(el)
        out["label"].append(torch.tensor(label))
    t = {k: torch.stack(v) for k, v in out.items()}
    empty = torch.zeros(0)
    return shapes3d.Shapes3DData(t["rgb"], empty, empty, t["c2w"], t["azimuth"], t["elevation"], torch.arange(n), t["label"],
                                 shapes3d.focal_from_fov(shapes3d.FOV_DEG, shapes3d.IMAGE_SIZE))


def choose_refinement(name: str) -> dict:
    """Pick infer()'s refinement defaults (steps, step size) by novel-view PSNR on validation objects and
    re-save the checkpoint with them in its config (weights and card unchanged)."""
    model = studio.load(name)
    data = validation_objects()
    scores = {(0, 0.0): novel_view_psnr(model, data, len(data), 0)}
    for steps, size in REFINE_GRID:
        scores[(steps, size)] = novel_view_psnr(model, data, len(data), steps, size)
    best = max(scores, key=scores.get)
    chosen = {f"{k[0]} steps @ {k[1]:g}": v for k, v in scores.items()}
    set_refinement(name, best[0], best[1], {"objects": len(data), "views": len(NOVEL_VIEWS), **chosen})
    return {**chosen, "chosen": list(best)}


def set_refinement(name: str, steps: int, step_size: float, record: dict) -> None:
    """Re-save a checkpoint with new infer() refinement defaults (weights and card unchanged)."""
    import dataclasses

    from studio.hub import ModelCard, read_config, save_checkpoint

    model = studio.load(name)
    path = model.checkpoint.path
    payload = read_config(path)
    card_text = (path / "README.md").read_text()
    config = dataclasses.replace(model.config, refine_steps=steps, refine_step_size=step_size if steps else model.config.refine_step_size)
    extra = {k: v for k, v in payload.items() if k not in ("kind", "format_version", "config", "code_version", "weights_sha256")}
    extra["refine_validation_psnr"] = record
    save_checkpoint(path, model.kind, config, model.state_dict(), ModelCard(summary=""), extra=extra)
    (path / "README.md").write_text(card_text)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Choose NeRF-LEBM refinement defaults on validation objects.")
    parser.add_argument("name")
    parser.add_argument("--copy-from", default=None, help="take the defaults chosen for another checkpoint instead of searching")
    args = parser.parse_args()
    if args.copy_from:
        src = studio.load(args.copy_from).config
        set_refinement(args.name, src.refine_steps, src.refine_step_size, {"copied_from": args.copy_from})
        print({"refine_steps": src.refine_steps, "refine_step_size": src.refine_step_size, "copied_from": args.copy_from})
    else:
        print(choose_refinement(args.name))
