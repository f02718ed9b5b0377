"""Train NeRF-LEBM (or its Gaussian-prior baseline NeRF-VAE) on shapes3d with random ray batches.

    accelerate launch train/nerf_lebm.py --config train/configs/nerf_lebm_shapes.yaml
    accelerate launch train/nerf_lebm.py --config train/configs/nerf_lebm_shapes.yaml --resume
    accelerate launch train/nerf_lebm.py --config train/configs/nerf_lebm_shapes.yaml --prior gaussian   # nerf-vae-shapes

Each step takes ``batch_size`` training objects. The encoder sees one random view (with its pose); the
likelihood is taken on ``rays`` random rays from ``target_views`` random views of the same object (half
of them on the object, half anywhere), scaled to whole 64x64 images. The loss is -ELBO with the EBM
priors plus the prior EBMs' maximum-likelihood loss (E(posterior z) - E(prior Langevin z)); see
``NeRFLEBM.elbo_loss``. The learning rates follow a cosine decay over the budget, which is whichever
of ``steps`` and ``max_minutes`` runs out first, so a run stopped by the clock still ends annealed.
The exported weights are the EMA.

The same command runs on many GPUs, or on N CPU processes with
``accelerate launch --multi_gpu --num_processes N train/nerf_lebm.py --cpu ...``: ``batch_size`` is the
global batch, each process trains on its slice with its own noise, and accelerate averages the gradients.
States (model, EMA, optimiser, step, wall time, log history) are saved every ``save_every`` steps to
``runs/<name>/state`` (crash-safe, see ``train.common.Run``); ``--resume`` continues exactly, and the
wall time of earlier sessions counts against ``max_minutes``.
"""
from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # `accelerate launch train/nerf_lebm.py` runs this file as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from studio.data import shapes3d
from studio.hub import ModelCard, config_to_dict
from studio.nerf_lebm import NeRFLEBM, NeRFLEBMConfig
from train.common import ConfigError, DivergenceError, RunState, build_dataclass, init_from_checkpoint, start
from train.schedules import budget_used, cosine_decay
from train.trainer import Group, LossModule, Trainer


@dataclass
class NeRFTrainSettings:
    steps: int = 20000
    batch_size: int = 16
    rays: int = 192  # per object per step
    target_views: int = 2
    foreground_fraction: float = 0.5
    lr: float = 1e-3  # field + encoder
    ebm_lr: float = 1e-4
    final_lr_fraction: float = 0.05
    warmup: int = 100
    ema_decay: float = 0.998
    train_objects: int = shapes3d.DEFAULT_TRAIN_OBJECTS
    val_objects: int = 200  # the last objects of the training collection are held out (for choosing defaults)
    views: int = shapes3d.VIEWS
    save_every: int = 200
    log_every: int = 50
    seed: int = 0
    threads: int = 0
    max_minutes: float = 0.0


@dataclass
class NeRFRunConfig:
    name: str = "nerf-lebm-shapes"
    model: dict = field(default_factory=dict)
    train: NeRFTrainSettings = field(default_factory=NeRFTrainSettings)


class TrainingViews:
    """Training objects as tensors; draws encoder views and random target rays."""

    def __init__(self, ts: NeRFTrainSettings):
        data = shapes3d.build_dataset("train", ts.train_objects, ts.views, shapes3d.IMAGE_SIZE, progress=True)
        n = len(data) - ts.val_objects
        if n < 1:
            raise ConfigError(f"train_objects ({ts.train_objects}) must exceed val_objects ({ts.val_objects}).")
        self.rgb, self.alpha, self.c2w = data.rgb[:n], data.alpha[:n], data.c2w[:n]
        self.azimuth, self.elevation = data.azimuth[:n], data.elevation[:n]
        self.focal, self.size = data.focal, data.rgb.shape[-1]
        self.n, self.views = n, data.rgb.shape[1]
        idx = torch.arange(self.size, dtype=torch.float32) + 0.5 - self.size / 2
        i, j = torch.meshgrid(idx, idx, indexing="ij")
        self.dirs_cam = torch.stack([j / self.focal, -i / self.focal, -torch.ones_like(i)], -1).reshape(-1, 3)

    def batch(self, ts: NeRFTrainSettings, gen: torch.Generator) -> dict[str, torch.Tensor]:
        b, k, r = ts.batch_size, ts.target_views, ts.rays
        obj = torch.randint(0, self.n, (b,), generator=gen)
        enc_view = torch.randint(0, self.views, (b,), generator=gen)
        images = self.rgb[obj, enc_view].float() / 255
        views = torch.randint(0, self.views, (b, k), generator=gen)
        pix = self.size * self.size
        per_view = r // k
        n_fg = int(round(per_view * ts.foreground_fraction))
        alpha = self.alpha[obj[:, None], views].reshape(b * k, pix).float() + 1e-3  # 1e-3: empty views still work
        fg = torch.multinomial(alpha, n_fg, replacement=True, generator=gen) if n_fg else torch.empty(b * k, 0, dtype=torch.long)
        anywhere = torch.randint(0, pix, (b * k, per_view - n_fg), generator=gen)
        pick = torch.cat([fg, anywhere], 1)  # [B*K, per_view]
        rgb = self.rgb[obj[:, None], views].reshape(b * k, 3, pix).float() / 255
        target = torch.gather(rgb, 2, pick[:, None, :].expand(-1, 3, -1)).transpose(1, 2)  # [B*K, per_view, 3]
        c2w = self.c2w[obj[:, None], views].reshape(b * k, 4, 4)
        dirs = torch.einsum("nab,npb->npa", c2w[:, :3, :3], self.dirs_cam[pick])  # camera -> world
        dirs = dirs / dirs.norm(dim=-1, keepdim=True)
        origins = c2w[:, None, :3, 3].expand_as(dirs)
        return {"images": images, "azimuth": self.azimuth[obj, enc_view], "elevation": self.elevation[obj, enc_view],
                "origins": origins.reshape(b, k * per_view, 3), "dirs": dirs.reshape(b, k * per_view, 3),
                "target": target.reshape(b, k * per_view, 3)}


def lr_schedule(ts: NeRFTrainSettings):
    """The rate factor at (step, elapsed seconds): a warm-up over the first ``warmup`` steps' share of the budget
    (from 1% of the rate), then a cosine decay to ``final_lr_fraction``; the budget is whichever of ``steps`` and
    ``max_minutes`` runs out first."""
    warm = ts.warmup / ts.steps

    def factor(step: int, elapsed: float) -> float:
        frac = budget_used(step, ts.steps, elapsed, ts.max_minutes)
        if frac < warm:
            return max(frac / warm, 0.01)
        return cosine_decay((frac - warm) / max(1e-9, 1 - warm), ts.final_lr_fraction)

    return factor


def make_optimizer(model: NeRFLEBM, ts: NeRFTrainSettings) -> torch.optim.Optimizer:
    ebm = list(model.ebm_shape.parameters()) + list(model.ebm_appearance.parameters())
    ebm_ids = {id(p) for p in ebm}
    rest = [p for p in model.parameters() if id(p) not in ebm_ids]
    # "base_lr" is no longer read (the Trainer keeps the configured rates) but stays in the saved optimiser state.
    groups = [{"params": rest, "lr": ts.lr, "base_lr": ts.lr}]
    if model.config.prior == "ebm":
        groups.append({"params": ebm, "lr": ts.ebm_lr, "base_lr": ts.ebm_lr, "betas": (0.5, 0.999)})
    return torch.optim.Adam(groups, betas=(0.9, 0.999))


def main(argv: list[str] | None = None) -> None:
    args, cfg, acc = start(__doc__, "train/configs/nerf_lebm_shapes.yaml", NeRFRunConfig, argv, add_arguments=_add_arguments)
    if args.prior is not None:
        cfg.model = {**cfg.model, "prior": args.prior}
        if args.prior == "gaussian" and cfg.name.startswith("nerf-lebm-"):
            cfg.name = "nerf-vae-" + cfg.name.removeprefix("nerf-lebm-")
    ts = cfg.train
    run_dir = Path(args.run_dir or f"runs/{cfg.name}")
    if args.resume and (run_dir / "state" / "optimizer.pt").exists():
        raise ConfigError(f"--resume: {run_dir} was saved by an older version of this script, which cannot be resumed. "
                          "Start again without --resume, or continue its exported weights with --init-from.")
    with acc.main_process_first():  # rank 0 renders and caches the objects; the others then read the cache
        data = TrainingViews(ts)
    model = NeRFLEBM(build_dataclass(NeRFLEBMConfig, cfg.model, "model"))
    model_config = config_to_dict(model.config)
    # Checked before loading the state: a different architecture would fail there with a bare size mismatch, and
    # different sampler constants (same shapes) would silently change the run.
    started_with = json.loads((run_dir / "run.json").read_text()).get("extra", {}).get("model_config") \
        if args.resume and (run_dir / "run.json").exists() else None
    if started_with not in (None, model_config):
        changed = sorted(k for k in model_config if started_with.get(k) != model_config[k])
        raise ConfigError(f"--resume: {run_dir} was started with other model settings ({', '.join(changed)}); "
                          "resume with the same config, --set and --prior options.")
    if args.init_from and not args.resume:
        init_from_checkpoint(model, args.init_from)
    if model.config.prior != "ebm":
        # The Gaussian baseline never uses its EBMs: frozen, DDP does not wait for gradients they never get.
        model.ebm_shape.requires_grad_(False)
        model.ebm_appearance.requires_grad_(False)
    opt, factor = make_optimizer(model, ts), lr_schedule(ts)
    trainer = Trainer(acc, LossModule(model.elbo_loss, model=model),
                      [Group(opt, lr=lambda base, step, elapsed: base * factor(step, elapsed))],
                      steps=ts.steps, save_every=ts.save_every, max_minutes=ts.max_minutes, ema_of=model, ema_decay=ts.ema_decay,
                      run_dir=run_dir, resume=args.resume, desc=cfg.name)
    run = trainer.run
    run.state.extra["model_config"] = model_config
    # Saved with the state, so a resumed run continues the logged history and its current averaging window.
    history: list = run.state.extra.setdefault("history", [])
    window: dict = run.state.extra.setdefault("window", {})

    pixels = data.size * data.size
    for _ in trainer:
        # The global batch comes from the same (seed, step) generator on every process, and each trains on its
        # slice; the noise (posterior samples, ray jitter, prior chains) from a generator of its own rank.
        # Both depend only on the step, so a resumed run repeats the uninterrupted one.
        batch = data.batch(ts, trainer.generator(ts.seed, per_process=False))
        b = dict(zip(batch, trainer.shard(*batch.values())))
        out = trainer.module(b["images"], b["azimuth"], b["elevation"], b["origins"], b["dirs"], b["target"], pixels,
                             trainer.generator(ts.seed * 7919 + 1))
        # Divide by the pixel count: the same optimum, gradients of order one.
        stats = trainer.optimise(out, total=out["loss"] / (3 * pixels))
        if "e_pos" in stats and max(abs(stats["e_pos"]), abs(stats["e_neg"])) > 1e4:
            raise DivergenceError(f"|E| reached {max(abs(stats['e_pos']), abs(stats['e_neg'])):.3g} at step {trainer.step}: "
                                  "resume from the last state with a lower train.ebm_lr.")
        for k, v in stats.items():
            window[k] = window.get(k, 0.0) + v
        postfix = None
        if trainer.step % ts.log_every == 0:
            mean = {k: round(v / ts.log_every, 5) for k, v in window.items()}
            history.append({"step": trainer.step, "minutes": round(trainer.clock / 60, 2), **mean})
            postfix = {"psnr": f"{-10 * math.log10(max(mean['mse'], 1e-10)):.2f}", "kl": f"{mean['kl']:.1f}"}
            if trainer.is_main:
                print(json.dumps(history[-1]), flush=True)
            window.clear()
        trainer.run.log(stats)
        if postfix:
            trainer.bar.set_postfix(postfix)
    ema = trainer.ema
    if acc.is_main_process:
        final = ema.shadow
        card = model_card(cfg.name, ts, final, run.state, f"--config {args.config}" + (f" --prior {args.prior}" if args.prior else ""))
        path = trainer.export(cfg.name, final, card, export_dir=args.export_dir,
                              extra={"data": {"name": "shapes3d", "train_objects": data.n, "views": data.views},
                                     "train_history": history[-5:]})
        print(f"Exported EMA weights to {path}")


def model_card(name: str, ts: NeRFTrainSettings, model: NeRFLEBM, prog: RunState, args: str) -> ModelCard:
    c = model.config
    counts = model.num_parameters()
    ebm = c.prior == "ebm"
    prior_text = (f"two MLP energy priors (E_s over z_s, E_a over z_a, width {c.ebm_width}) times N(0, I), sampled with "
                  f"{c.prior_steps} Langevin steps (s = {c.prior_step})" if ebm else
                  "a standard Gaussian prior (the NeRF-VAE baseline: the same field, encoder and budget, no EBM)")
    body = f"""NeRF-LEBM (Zhu, UCLA thesis 2024, ch. 3) on the studio's procedural shapes3d objects (6 categories, 64x64 views,
azimuth -180..180, elevation {10}..{40} degrees). Prior: {prior_text}.

## Design and cost
- Shape latent z_s ({c.shape_dim}-d) -> MLP -> 3 seed planes 4x4x{c.decoder_width} -> upsampling convs -> triplane
  3 x {c.plane_channels} x {c.plane_res}^2 over [-1, 1]^3. A point's feature is the sum of its three bilinear lookups;
  a {c.hidden}-wide MLP gives density (softplus) and a colour feature.
- Appearance latent z_a ({c.appearance_dim}-d) -> MLP -> a per-object vector added inside the colour head only, so z_a
  never changes density; no view dependence (shapes3d shading is Lambertian with a fixed light).
- Encoder q(z | view, pose): a 4-layer CNN on the view at {c.encoder_res}x{c.encoder_res} plus (sin, cos) of the pose.
- Parameters: field {counts['field']:,}, encoder {counts['encoder']:,}, EBMs {counts['ebm_shape'] + counts['ebm_appearance']:,}.
- Rendering: rays cut to the object box, {c.samples} stratified samples per ray, white background; a 64x64 frame is
  64*64*{c.samples} = {64 * 64 * c.samples:,} field queries (see `seconds_per_view_64`).
- Training: batch {ts.batch_size} objects x {ts.rays} rays ({c.train_samples}
  samples each) from {ts.target_views} random views per object ({int(ts.foreground_fraction * 100)}% of the rays on the object),
  the encoder seeing another random view; likelihood sigma = {c.sigma_eps}; Adam lr {ts.lr} (EBMs {ts.ebm_lr}) with cosine decay;
  EMA {ts.ema_decay}. {prog.step} steps.

Use: `m = studio.load('{name}')`; `z_s, z_a = m.sample_latents(4, seeds='0-3')`; `m.render(z_s, z_a, azimuth=30,
elevation=20)`; `m.infer(image, azimuth, elevation, refine_steps=...)`; `m.orbit(z_s, z_a)`.

Reproduce: `accelerate launch train/nerf_lebm.py {args}`.

Data: shapes3d, rendered by `studio.data.shapes3d` (the project's own); {ts.train_objects - ts.val_objects} training objects x
{ts.views} views; the last {ts.val_objects} objects of the training collection are held out for choosing defaults.
"""
    return ModelCard(summary=f"{'NeRF-LEBM' if ebm else 'NeRF-VAE (Gaussian prior)'}: a 3D-aware generator of shapes3d objects "
                             f"with separate shape and appearance latents.",
                     body=body, tags=["nerf", "3d", "latent-ebm" if ebm else "vae"], datasets=["shapes3d"],
                     pipeline_tag="unconditional-image-generation")


def _add_arguments(parser) -> None:
    parser.add_argument("--prior", choices=("ebm", "gaussian"), default=None,
                        help="override model.prior; 'gaussian' trains the NeRF-VAE baseline and exports nerf-vae-<data>")


if __name__ == "__main__":
    main()
