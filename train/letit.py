"""Train LETIT (latent energy transport) for Twitter <-> Google emoji, in two stages.

    accelerate launch train/letit.py --config train/configs/letit_emoji.yaml --stage autoencoder
    accelerate launch train/letit.py --config train/configs/letit_emoji.yaml --stage ebm --direction t2g
    accelerate launch train/letit.py --config train/configs/letit_emoji.yaml --stage ebm --direction g2t

Add ``--resume`` to continue a stage from its run folder. Run folders:
``runs/<name>/autoencoder`` and ``runs/<name>/ebm-<direction>`` (``--run-dir`` replaces
``runs/<name>``); each holds accelerate's state (models, optimiser, EMA, RNG) and run.json.

* ``--stage autoencoder`` trains the encoder and decoder on the union of both styles
  (emoji train split; light augmentation: horizontal flips and shifts of a few
  pixels) from noisy codes, then sets the latent normalisation from the EMA
  autoencoder's codes of the training images and exports
  ``checkpoints/<name>`` with the autoencoder and *no trained EBM* (a new
  autoencoder invalidates EBMs trained on the old one's latents). A copy of that
  export is kept in ``runs/<name>/autoencoder/export``.
* ``--stage decoder`` fine-tunes only the decoder of the base checkpoint (found as
  for the ebm stage) on codes Enc(x) + sigma eps, sigma up to the chains' measured
  move, so translated latents decode cleanly; the encoder, the latent statistics and
  every trained EBM are kept (they stay valid).
* ``--stage ebm --direction t2g|g2t`` freezes the autoencoder, encodes the training
  images once, and trains that direction's latent EBM with chains started at
  *source-style* latents (unpaired batches), with an EMA of its weights. The base is
  ``--ae-from`` if given, else the export folder if it already holds a LETIT
  checkpoint (so the other direction's EBM is kept), else the autoencoder run's
  export copy. The stage writes the export again: base autoencoder + every EBM
  the base had + the new one. Training stops with a DivergenceError when
  |loss| > max_abs_loss (1e4, the paper's guard). Both directions share one EBM
  architecture: ``model.ebm_width`` is read from the config by the first EBM
  stage (while the base has no trained EBM) and is fixed from then on; the
  autoencoder's ``model`` entries are read by the autoencoder stage only.

Mini-batch indices, augmentations and chain noise at step s come from generators
seeded with (seed, s), so a resumed run continues exactly where it stopped. ``batch_size`` is
the global batch: with N processes (``accelerate launch --multi_gpu --num_processes N ... --cpu``
on a CPU machine) each trains on its slice, with its own noise.
"""
from __future__ import annotations

import hashlib
import math
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

if __package__ in (None, ""):  # `accelerate launch train/letit.py` runs this file as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from studio.hub import ModelCard, checkpoints_dir, read_config
from studio.letit import (
    DIRECTIONS,
    LETIT,
    LETITConfig,
    autoencoder_loss,
    ebm_loss,
    robust_decoder_loss,
)
from train.augment import random_hflip, random_shift_each
from train.common import ConfigError, DivergenceError, build_dataclass, start
from train.datasets import DATA_CREDITS
from train.schedules import cosine_decay, warmup
from train.trainer import Group, LossModule, Trainer


@dataclass
class ImageStageSettings:
    """What the autoencoder and decoder stages share: batches of augmented images, a warm-up then cosine-decayed lr."""
    batch_size: int = 32
    warmup: int = 50
    final_lr_fraction: float = 0.05  # cosine decay from lr to lr * this
    hflip: bool = True
    shift: int = 2  # random translation in pixels
    ema_decay: float = 0.995
    grad_clip: float = 1.0
    save_every: int = 100
    max_minutes: float = 0.0  # stop (and export) after this wall time; 0 = no limit


@dataclass
class AESettings(ImageStageSettings):
    steps: int = 2000
    lr: float = 1e-3
    latent_noise: float = 0.1  # std of the noise added to the code before decoding (training only)
    latent_l2: float = 1e-3  # weight of mean(code^2)


@dataclass
class DecoderSettings(ImageStageSettings):
    """The decoder stage: fine-tune the decoder alone on noisy codes of the frozen encoder (see studio.letit.robust_decoder_loss)."""
    steps: int = 1000
    lr: float = 3e-4
    warmup: int = 20  # a fine-tune of trained weights: a short warm-up
    max_noise: float = 0.75  # sigma ~ U(0, max_noise) in normalised latent units; the chains move codes 0.62-0.76 RMS


@dataclass
class EBMSettings:
    steps: int = 600
    batch_size: int = 64
    lr: float = 2e-4
    langevin_steps: int = 20  # T: chain length in training, the default at translation
    step_size: float = 0.05  # the engine's step_size (paper's eta = 2 * step_size)
    noise: float = 0.01  # the engine's noise_std (paper: sqrt(eta); the authors' code: 0)
    energy_l2: float = 0.0
    ema_decay: float = 0.99
    grad_clip: float = 1.0
    hflip: bool = True  # also encode mirrored training images
    max_abs_loss: float = 1e4
    save_every: int = 100
    max_minutes: float = 0.0
    # > 0: leave out this fraction of the training emoji (by base emoji, studio.data.emoji.holdout_mask) as a
    # validation fold for train/letit_choose_steps.py. Recorded in the checkpoint; an EBM trained with
    # another fold is not continued.
    holdout_fraction: float = 0.0


@dataclass
class LETITTrainSettings:
    seed: int = 0
    threads: int = 0  # torch CPU threads; 0 = share the machine's cores between processes
    image_size: int = 64
    autoencoder: AESettings = field(default_factory=AESettings)
    decoder: DecoderSettings = field(default_factory=DecoderSettings)
    ebm: EBMSettings = field(default_factory=EBMSettings)


@dataclass
class LETITRunConfig:
    name: str = "letit-emoji"
    model: dict = field(default_factory=dict)
    train: LETITTrainSettings = field(default_factory=LETITTrainSettings)


# ----------------------------------------------------------------------------- helpers


def autoencoder_lr_schedule(s: AESettings | DecoderSettings):
    """The autoencoder's rate factor at a step: warm-up, then a cosine decay to ``final_lr_fraction`` at ``steps``."""
    def factor(step: int) -> float:
        if step < s.warmup:
            return warmup(step, s.warmup)
        return cosine_decay((step - s.warmup) / max(1, s.steps - s.warmup), s.final_lr_fraction)

    return factor


def load_pairs(image_size: int):
    from studio.data.emoji import load_emoji_pairs

    return load_emoji_pairs("train", size=image_size)


def ae_fingerprint(model: LETIT) -> str:
    """sha1 of the autoencoder weights and latent statistics: EBMs are only valid for the AE they were trained on."""
    h = hashlib.sha1()
    for k, v in sorted(model.state_dict().items()):
        if not k.startswith("ebms."):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


@torch.no_grad()
def encode_all(model: LETIT, images: torch.Tensor, raw: bool = False, batch: int = 256) -> torch.Tensor:
    fn = model.encode_raw if raw else model.encode
    dev = model.device
    return torch.cat([fn(images[i : i + batch].to(dev)).cpu() for i in range(0, len(images), batch)])


def augmented_batch(trainer: Trainer, data: torch.Tensor, s: ImageStageSettings, seed: int) -> tuple[torch.Tensor, torch.Generator]:
    """This process's slice of the step's augmented image batch, and the generator for its code noise.

    The global batch and its augmentation come from rank 0's generator on every process (each then takes its
    slice); the code noise from each rank's own. With one process this is one generator."""
    gen = trainer.generator(seed, per_process=False)
    x = data[torch.randint(0, len(data), (s.batch_size,), generator=gen)]
    x = trainer.shard(random_shift_each(random_hflip(x, gen) if s.hflip else x, s.shift, gen))
    if trainer.rank:
        gen = trainer.generator(seed, device="cpu")
    return x, gen


# ----------------------------------------------------------------------------- stage 1: autoencoder


def train_autoencoder(args, cfg: LETITRunConfig, acc) -> None:
    s = cfg.train.autoencoder
    pairs = load_pairs(cfg.train.image_size)
    data = torch.cat([pairs.twitter, pairs.google])  # the union of both styles
    model = LETIT(build_dataclass(LETITConfig, {**cfg.model, "image_size": cfg.train.image_size, "directions": {}}, "model"))
    # Only the encoder and decoder train here (the EBMs are not part of the module DDP sees).
    module = LossModule(partial(autoencoder_loss, model.encoder, model.decoder), encoder=model.encoder, decoder=model.decoder)
    opt = torch.optim.Adam(module.parameters(), lr=s.lr, betas=(0.9, 0.99))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, autoencoder_lr_schedule(s))
    root = Path(args.run_dir or f"runs/{cfg.name}")
    trainer = Trainer(acc, module, [Group(opt, clip=s.grad_clip, scheduler=sched)], steps=s.steps, save_every=s.save_every,
                      max_minutes=s.max_minutes, ema_of=model, ema_decay=s.ema_decay, run_dir=root / "autoencoder",
                      resume=args.resume, desc=f"{cfg.name} autoencoder")
    seed = cfg.train.seed
    for _ in trainer:
        x, gen = augmented_batch(trainer, data, s, seed)
        stats = trainer.optimise(trainer.module(x, s.latent_noise, s.latent_l2, gen))
        trainer.log(stats, postfix={"psnr": f"{10 * math.log10(4 / max(stats['mse'], 1e-12)):.1f}", "rms": f"{stats['latent_rms']:.2f}"})
    ema = trainer.ema
    if not acc.is_main_process:
        return
    final = ema.shadow
    final.set_latent_stats(encode_all(final, data, raw=True))
    seconds = trainer.run.elapsed()
    stages = {"autoencoder": {"seconds": round(seconds, 1), "steps": trainer.step,
                              "command": f"accelerate launch train/letit.py --config {args.config} --stage autoencoder"}}
    extra = {"stages": stages, "ae_fingerprint": ae_fingerprint(final), "data": {"name": "emoji", "split": "train (both styles)"}}
    for out_dir in (root / "autoencoder" / "export", Path(args.export_dir or checkpoints_dir() / cfg.name)):
        path = trainer.export(cfg.name, final, model_card(cfg.name, final, stages), export_dir=str(out_dir), extra=extra,
                              wall_seconds=seconds)
    print(f"Exported the autoencoder (no EBM trained yet) to {path}")


# ----------------------------------------------------------------------------- stage 1b: robust decoder


def train_decoder(args, cfg: LETITRunConfig, acc) -> None:
    """Fine-tune the base checkpoint's decoder on noisy codes; the encoder, latent statistics and EBMs are kept."""
    import studio

    s = cfg.train.decoder
    root = Path(args.run_dir or f"runs/{cfg.name}")
    base_dir = base_checkpoint(args, cfg, root)
    model = studio.load(base_dir, kind="letit", device=acc.device)
    model.requires_grad_(False)
    model.decoder.requires_grad_(True)
    pairs = load_pairs(model.config.image_size)
    data = torch.cat([pairs.twitter, pairs.google])
    module = LossModule(partial(robust_decoder_loss, model), decoder=model.decoder)
    opt = torch.optim.Adam(model.decoder.parameters(), lr=s.lr, betas=(0.9, 0.99))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, autoencoder_lr_schedule(s))
    trainer = Trainer(acc, module, [Group(opt, clip=s.grad_clip, scheduler=sched)], steps=s.steps, save_every=s.save_every,
                      max_minutes=s.max_minutes, ema_of=model.decoder, ema_decay=s.ema_decay, run_dir=root / "decoder",
                      resume=args.resume, desc=f"{cfg.name} decoder")
    seed = cfg.train.seed + 7
    for _ in trainer:
        x, gen = augmented_batch(trainer, data, s, seed)
        stats = trainer.optimise(trainer.module(x, s.max_noise, gen))
        trainer.log(stats, postfix={"psnr": f"{10 * math.log10(4 / max(stats['mse'], 1e-12)):.1f}"})
    if not acc.is_main_process:
        return
    model.decoder.load_state_dict(trainer.ema.shadow.state_dict())
    model.requires_grad_(False)
    seconds = trainer.run.elapsed()
    stage = {"seconds": round(seconds, 1), "steps": trainer.step,
             "command": f"accelerate launch train/letit.py --config {args.config} --stage decoder"
                        + "".join(f" --set {o}" for o in recipe_overrides(args.overrides))}
    earlier = model.checkpoint.extra.get("stages", {})
    if "decoder" in earlier:  # the base's decoder was itself fine-tuned: the stage's cost is every run
        stage = continued_stage(earlier["decoder"], stage)
    stages = {**earlier, "decoder": stage}
    extra = {"stages": stages, "ae_fingerprint": ae_fingerprint(model), "data": model.checkpoint.extra.get("data", {"name": "emoji"})}
    path = trainer.export(cfg.name, model, model_card(cfg.name, model, stages), export_dir=args.export_dir, extra=extra,
                          wall_seconds=seconds)
    print(f"Exported the robust decoder with the base's encoder and EBM(s) to {path}")


# ----------------------------------------------------------------------------- stage 2: latent EBM


# Overrides that only say how long or where a run goes, not what it learns (EBM and decoder stages): the stage's steps and seconds
# are recorded next to its command anyway.
RUN_LENGTH_KEYS = ("train.ebm.steps", "train.ebm.max_minutes", "train.ebm.save_every",
                   "train.decoder.steps", "train.decoder.max_minutes", "train.decoder.save_every", "train.threads")


def recipe_overrides(overrides: list[str]) -> list[str]:
    """The ``--set`` overrides that change what an EBM or decoder run learns (lr, fold, noise ...), for its record."""
    return [o for o in overrides if o.split("=", 1)[0].strip() not in RUN_LENGTH_KEYS]


def continued_stage(earlier: dict, new: dict) -> dict:
    """One EBM stage record for a run that continued an exported EBM: total seconds and steps, and each run."""
    runs = earlier.get("runs") or [{k: earlier[k] for k in ("seconds", "steps", "command") if k in earlier}]
    runs = [*runs, {k: new[k] for k in ("seconds", "steps", "command")}]
    return {**new, "seconds": round(sum(r["seconds"] for r in runs), 1), "steps": sum(r["steps"] for r in runs), "runs": runs}


def base_checkpoint(args, cfg: LETITRunConfig, root: Path) -> Path:
    """Where the frozen autoencoder (and any EBM already trained) comes from; see the module docstring."""
    export_dir = Path(args.export_dir or checkpoints_dir() / cfg.name)
    candidates = [Path(args.ae_from)] if args.ae_from else [export_dir, root / "autoencoder" / "export"]
    for c in candidates:
        if (c / "config.json").is_file() and read_config(c)["kind"] == "letit":
            return c
    tried = ", ".join(str(c) for c in candidates)
    raise ConfigError(f"No LETIT autoencoder found (tried {tried}). Train it first: "
                      f"accelerate launch train/letit.py --config {args.config} --stage autoencoder")


def ebm_config(cfg: LETITRunConfig, base: LETIT) -> LETITConfig:
    """The base's config, with ``model.ebm_width`` from the run config while no EBM has been trained
    (both directions share one EBM architecture, so it is fixed by the first EBM stage)."""
    width = cfg.model.get("ebm_width", base.config.ebm_width)
    if width == base.config.ebm_width:
        return base.config
    if base.trained_directions:
        raise ConfigError(f"model.ebm_width is {width}, but the base checkpoint's trained EBM(s) ({', '.join(base.trained_directions)}) "
                          f"have width {base.config.ebm_width}; both directions share one architecture. Keep ebm_width "
                          f"{base.config.ebm_width}, or retrain the autoencoder stage and then every direction.")
    return LETITConfig(**{**base.config.__dict__, "ebm_width": width})


def latest_export(export_dir: Path, base: LETIT, fingerprint: str, ebm_width: int) -> LETIT:
    """The LETIT checkpoint in ``export_dir`` re-read at export time if it has the autoencoder ``fingerprint``
    and EBMs of ``ebm_width``, else ``base``. So t2g and g2t can train at the same time (two processes) and
    the second export keeps the first one's EBM instead of writing back the one both started from."""
    import studio

    if (export_dir / "config.json").is_file() and read_config(export_dir)["kind"] == "letit":
        now = studio.load(export_dir, kind="letit")
        if ae_fingerprint(now) == fingerprint and now.config.ebm_width == ebm_width:
            return now
    return base


def train_ebm(args, cfg: LETITRunConfig, acc) -> None:
    import studio

    direction = args.direction
    s = cfg.train.ebm
    root = Path(args.run_dir or f"runs/{cfg.name}")
    base_dir = base_checkpoint(args, cfg, root)
    base = studio.load(base_dir, kind="letit", device=acc.device)
    fingerprint = ae_fingerprint(base)
    source_style, target_style = DIRECTIONS[direction]
    pairs = load_pairs(base.config.image_size)
    t0 = time.time()
    images = {st: pairs.style(st) for st in (source_style, target_style)}
    if s.holdout_fraction:  # a validation fold this EBM never sees, for choosing its default steps afterwards
        from studio.data.emoji import holdout_mask

        keep = ~holdout_mask(pairs.names, s.holdout_fraction)
        images = {st: x[keep] for st, x in images.items()}
    if s.hflip:
        images = {st: torch.cat([x, x.flip(-1)]) for st, x in images.items()}
    latents = {st: encode_all(base, x) for st, x in images.items()}  # the AE is frozen: encode once
    encode_seconds = time.time() - t0

    model = LETIT(ebm_config(cfg, base)).to(acc.device)
    # Starting from a base that already has this direction's EBM continues its training (fresh optimiser),
    # unless that EBM was trained with another validation fold: it has seen images this run holds out.
    same_fold = base.config.directions.get(direction, {}).get("holdout_fraction", 0.0) == s.holdout_fraction
    same_width = model.config.ebm_width == base.config.ebm_width
    continued = direction in base.trained_directions and same_width and same_fold
    # The autoencoder always comes from the base; weights under `fresh` keep the new model's initialisation.
    if not same_width:
        fresh = "ebms."  # a new EBM architecture: both EBMs start afresh
    elif not continued:
        fresh = f"ebms.{direction}."  # this direction starts afresh, the other EBM is kept
    else:
        fresh = None
    taken = {k: v for k, v in base.state_dict().items() if fresh is None or not k.startswith(fresh)}
    missing, unexpected = model.load_state_dict(taken, strict=False)
    assert not unexpected and all(fresh and k.startswith(fresh) for k in missing), (missing, unexpected)
    ebm = model.ebms[direction]
    ebm.requires_grad_(True)
    opt = torch.optim.Adam(ebm.parameters(), lr=s.lr, betas=(0.5, 0.999))
    trainer = Trainer(acc, LossModule(partial(ebm_loss, ebm), ebm=ebm), [Group(opt, clip=s.grad_clip)], steps=s.steps,
                      save_every=s.save_every, max_minutes=s.max_minutes, ema_of=ebm, ema_decay=s.ema_decay,
                      run_dir=root / f"ebm-{direction}", resume=args.resume, desc=f"{cfg.name} ebm {direction}")
    run = trainer.run
    if run.resumed and run.state.extra.get("ae_fingerprint") not in (None, fingerprint):
        raise ConfigError(f"The autoencoder in {base_dir} is not the one this EBM run started with; "
                          "start the EBM stage again without --resume.")
    run.state.extra.update({"ae_fingerprint": fingerprint, "direction": direction})
    if not run.resumed:  # what this run continues is fixed when it starts (the base's record may change later)
        run.state.extra["continues"] = base.checkpoint.extra.get("stages", {}).get(f"ebm_{direction}") if continued else None
    if not run.resumed:
        run.state.elapsed = encode_seconds  # the one-off encoding is part of the stage's cost
    seed = cfg.train.seed + (0 if direction == "t2g" else 1)
    zs, zt = latents[source_style], latents[target_style]
    for _ in trainer:
        gen = trainer.generator(seed, per_process=False)  # the global batch (as in the autoencoder stage)
        # Unpaired: source and target batches are drawn independently.
        src = zs[torch.randint(0, len(zs), (s.batch_size,), generator=gen)]
        tgt = zt[torch.randint(0, len(zt), (s.batch_size,), generator=gen)]
        src, tgt = trainer.shard(src, tgt)
        if trainer.rank:
            gen = trainer.generator(seed, device="cpu")
        out = trainer.module(src, tgt, s.langevin_steps, s.step_size, s.noise, base.config.latent_bound, gen, s.energy_l2)
        stats = trainer.optimise(out)
        if abs(stats["loss"]) > s.max_abs_loss:
            raise DivergenceError(f"|loss| reached {abs(stats['loss']):.3g} > {s.max_abs_loss:g} at step {trainer.step}: the latent "
                                  "EBM diverged. Resume from the last saved state with a lower train.ebm.lr, or set train.ebm.energy_l2.")
        trainer.log(stats)
    if not acc.is_main_process:
        return
    # The export: the checkpoint as it is now (autoencoder + the other direction's EBM, which a run of that
    # direction may have exported since this one started) with this direction's EMA weights and sampler settings.
    now = latest_export(Path(args.export_dir or checkpoints_dir() / cfg.name), base, fingerprint, model.config.ebm_width)
    entry = {"steps": s.langevin_steps, "step_size": s.step_size, "noise": s.noise}
    if s.holdout_fraction:
        entry["holdout_fraction"] = s.holdout_fraction
    directions = {**now.config.directions, direction: entry}
    final = LETIT(LETITConfig(**{**model.config.__dict__, "directions": directions}))
    final.load_state_dict((model if now is base else now).state_dict())  # the model holds new-width EBMs if the width changed
    final.ebms[direction].load_state_dict(trainer.ema.shadow.state_dict())
    seconds = run.elapsed()
    stage = {"seconds": round(seconds, 1), "steps": trainer.step, "encode_seconds": round(encode_seconds, 1),
             "command": f"accelerate launch train/letit.py --config {args.config} --stage ebm --direction {direction}"
                        + "".join(f" --set {o}" for o in recipe_overrides(args.overrides))}
    if run.state.extra.get("continues"):  # this run started from an exported EBM: the stage's cost is both runs
        stage = continued_stage(run.state.extra["continues"], stage)
    stages = {**now.checkpoint.extra.get("stages", {}), f"ebm_{direction}": stage}
    extra = {"stages": stages, "ae_fingerprint": fingerprint, "data": now.checkpoint.extra.get("data", {"name": "emoji"})}
    path = trainer.export(cfg.name, final, model_card(cfg.name, final, stages), export_dir=args.export_dir, extra=extra,
                          wall_seconds=seconds)
    print(f"Exported the autoencoder and the {', '.join(final.trained_directions)} EBM(s) to {path}")


# ----------------------------------------------------------------------------- card


LATENT_CHOICE = """Latent design (equal budget of 300 autoencoder steps at batch 32, one CPU thread; held-out reconstruction
PSNR at 64x64 on the 1,024 test images of both styles):

| latent | numbers per image | test PSNR |
|---|---|---|
{rows}

The 16x16 map keeps outlines and small features that a vector code blurs away; reconstruction is the ceiling
of every translation, so the map was chosen, with a small conv EBM on it (the paper's choice for VQ-VAE-2 maps)."""
LATENT_ROWS = [("16x16x8 map", 2048, 20.6), ("8x8x16 map", 1024, 17.7), ("256-d vector (8x8x32 map -> linear)", 256, 15.0)]


def stage_lines(stages: dict) -> str:
    """The card's "Stages:" list: each stage's steps, minutes and command (and its runs, if continued)."""
    lines = []
    for k, v in stages.items():
        runs = v.get("runs", [])
        line = f"- {k}: {v['steps']} steps, {v['seconds'] / 60:.1f} min (`{runs[0]['command'] if runs else v['command']}`)"
        if len(runs) > 1:  # later runs continued from the exported EBM (fresh optimiser); a changed recipe is named
            line += "; " + ", then ".join(f"{r['steps']} steps in {r['seconds'] / 60:.1f} min"
                                          + (f" (`{r['command']}`)" if r["command"] != runs[0]["command"] else "") for r in runs)
        lines.append(line)
    return "\n".join(lines)


def model_card(name: str, model: LETIT, stages: dict) -> ModelCard:
    c = model.config
    trained = model.trained_directions
    lines = [f"- `{d}`: T = {v['steps']} steps, step_size = {v['step_size']}, noise_std = {v['noise']} (as trained)"
             for d, v in c.directions.items()]
    rows = "\n".join(f"| {a} | {b:,} | {p} dB |" for a, b, p in LATENT_ROWS)
    times = stage_lines(stages)
    body = f"""Autoencoder: 64x64 RGB -> a {'x'.join(map(str, c.latent_shape))} latent (widths {c.ae_widths}, residual blocks {c.ae_blocks}),
trained on both styles with noisy codes; latents are normalised per channel. Latent EBMs (conv nets, SiLU, no
normalisation, width {c.ebm_width}), one per direction; the exported weights are EMAs. Trained directions:
{', '.join(trained) or 'none yet'}.

{chr(10).join(lines) or '- (no EBM trained yet: run the ebm stage)'}

```python
import studio
m = studio.load("{name}")
r = m.translate(images, direction="t2g", seeds="0-3", record_every=5)   # images: [B, 3, 64, 64] in [-1, 1]
r.outputs, r.reconstructions, r.frames, r.latent_shift, r.trace.energy_matrix()
```

Langevin mapping: the engine runs z <- z - step_size grad E(z) + noise_std eps; the paper's eta is
step_size = eta / 2, noise_std = sqrt(eta) (its code: step_size = eta, noise_std = 0).

{LATENT_CHOICE.format(rows=rows)}

Stages:
{times}

Data: {DATA_CREDITS['emoji']} Train split only; the held-out pairs are for evaluation."""
    return ModelCard(summary=f"LETIT latent energy transport, Twitter <-> Google emoji at {c.image_size}x{c.image_size} "
                             f"(EBMs trained: {', '.join(trained) or 'none yet'}).",
                     body=body, tags=["letit", "image-to-image", "emoji"], datasets=["emoji-datasource"], pipeline_tag="image-to-image")


# ----------------------------------------------------------------------------- main


def _add_arguments(parser) -> None:
    parser.add_argument("--stage", choices=["autoencoder", "decoder", "ebm"], required=True)
    parser.add_argument("--direction", choices=sorted(DIRECTIONS), default=None, help="ebm stage: t2g or g2t")
    parser.add_argument("--ae-from", default=None, metavar="CHECKPOINT",
                        help="decoder and ebm stages: the LETIT checkpoint whose autoencoder (and EBMs) to start from")


def main(argv: list[str] | None = None) -> None:
    args, cfg, acc = start(__doc__, "train/configs/letit_emoji.yaml", LETITRunConfig, argv, add_arguments=_add_arguments)
    if args.stage == "autoencoder":
        if args.direction or args.ae_from:
            raise ConfigError("--direction and --ae-from belong to --stage ebm (and --ae-from to --stage decoder).")
        train_autoencoder(args, cfg, acc)
    elif args.stage == "decoder":
        if args.direction:
            raise ConfigError("--direction belongs to --stage ebm.")
        train_decoder(args, cfg, acc)
    else:
        if args.direction is None:
            raise ConfigError("--stage ebm needs --direction t2g or --direction g2t.")
        train_ebm(args, cfg, acc)


if __name__ == "__main__":
    main()
