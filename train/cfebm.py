"""Train CF-EBM on Fashion-MNIST with the staged coarse-to-fine schedule 8 -> 16 -> 32.

    accelerate launch train/cfebm.py --config train/configs/cfebm_fmnist.yaml
    accelerate launch train/cfebm.py --config train/configs/cfebm_fmnist.yaml --resume   # also mid-stage
    accelerate launch train/cfebm.py --config train/configs/cfebm_fmnist.yaml --no-coarse-to-fine

``--no-coarse-to-fine`` is the paper's ablation: the same network built directly at the
final resolution, trained from noise-initialised chains on the same total number of
training images (the sum over stages), exported as ``ebm-single-<dataset>``.

Each stage sees ``images[r]`` training images. While a new stage fades in
(beta < 1, beta = min(1, 2 m / N)), chains start from upsampled samples of the
frozen coarse stage blended with noise (explicit smooth sampling). The model
architecture changes between stages, so the run folder stores the model config
with its weights: ``runs/<name>/state/{model.safetensors, ema.safetensors,
optimizer.pt, run.json}`` (the optimizer file holds only tensors and is read
with ``weights_only=True``) and ``runs/<name>/log.jsonl`` has one line per step.

Several processes (``accelerate launch --multi_gpu --num_processes N train/cfebm.py --cpu ...`` on a
CPU machine, or N GPUs): ``batch_size`` is the global batch, every process draws the same batch
indices and trains on its slice with its own chain noise, and the trainer goes through
``accelerator.prepare`` (rebuilt at every stage, since growing changes the network) so DDP
averages the gradients. Each save checks that the replicas agree.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from studio.cfebm import CFEBM, CFEBMConfig
from studio.hub import ModelCard, config_to_dict
from train.common import (
    EMA,
    ConfigError,
    DivergenceError,
    append_log,
    build_dataclass,
    check_replicas,
    earlier_training,
    export,
    replica_checksums,
    shard,
    start,
    truncate_log,
)
from train.trainer import Group, LossModule, Trainer


@dataclass
class CFEBMTrainSettings:
    resolutions: list[int] = field(default_factory=lambda: [8, 16, 32])
    images: dict[str, int] = field(default_factory=lambda: {"8": 50000, "16": 75000, "32": 100000})
    lr: dict[str, float] = field(default_factory=lambda: {"8": 1e-3, "16": 1e-3, "32": 1e-3})
    batch_size: int = 64
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    energy_l2: float = 0.0  # optional penalty on E(data)^2 + E(samples)^2 (off by default, as in the paper)
    max_abs_energy: float = 1e4
    save_every: int = 200
    seed: int = 0
    threads: int = 0
    max_minutes: float = 0.0
    coarse_to_fine: bool = True  # False: the single-scale ablation (see the module docstring)
    # Share of each batch whose chains start where the multi-scale sampler hands over to the finest scale (the coarse
    # stages' samples, upsampled) instead of at noise, once a stage is fully faded in. Without it the finest energy only
    # ever sees chains from noise, and from an upsampled coarse sample it drifts to a few attractors (issue 22).
    multiscale_fraction: float = 0.0
    dataset: str = "fashion-mnist"  # or "emoji": translation from source_domain to target_domain
    source_domain: str = ""  # emoji style the chains start from ("twitter" or "google")
    target_domain: str = ""  # emoji style whose energy is learned
    image_size: int = 64  # emoji are loaded at this size (Fashion-MNIST is 32)

    def single_scale(self) -> CFEBMTrainSettings:
        """The ablation's schedule: one stage at the final resolution with the summed image budget."""
        final = str(self.resolutions[-1])
        return CFEBMTrainSettings(**{**asdict(self), "resolutions": [self.resolutions[-1]],
                                     "images": {final: sum(self.images.values())}, "lr": {final: self.lr[final]}})


@dataclass
class CFEBMRunConfig:
    name: str = "cfebm-fmnist"
    model: dict = field(default_factory=dict)
    train: CFEBMTrainSettings = field(default_factory=CFEBMTrainSettings)


@dataclass
class Progress:
    stage: int = 0
    seen: int = 0  # images consumed in the current stage
    step: int = 0
    elapsed: float = 0.0


def save_state(run_dir: Path, model: CFEBM, ema: EMA, opt: torch.optim.Optimizer | None, progress: Progress,
               replicas: list[float] | None = None) -> None:
    """Atomic save: write to state.tmp then rename, so an interrupted save keeps the last good state."""
    tmp, final = run_dir / "state.tmp", run_dir / "state"
    if tmp.exists():  # left by a crash mid-save
        import shutil

        shutil.rmtree(tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
    save_file({k: v.contiguous() for k, v in ema.shadow.state_dict().items()}, str(tmp / "ema.safetensors"))
    if opt is not None:
        torch.save(opt.state_dict(), tmp / "optimizer.pt")
    info = {"progress": asdict(progress), "model_config": config_to_dict(model.config), "ema_updates": int(ema.num_updates)}
    if replicas is not None:
        info["replicas"] = replicas
    (tmp / "run.json").write_text(json.dumps(info))
    old = run_dir / "state.old"
    if old.exists():
        import shutil

        shutil.rmtree(old)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    if old.exists():
        import shutil

        shutil.rmtree(old)


def load_state(run_dir: Path) -> tuple[CFEBM, dict, dict, Progress, int]:
    # "state.old" is the last good state if a crash hit between save_state's two renames.
    state = next((d for d in (run_dir / "state", run_dir / "state.old") if (d / "run.json").exists()), run_dir / "state")
    if not (state / "run.json").exists():
        raise ConfigError(f"--resume: no saved state in {run_dir}. Start without --resume, or pass --run-dir.")
    info = json.loads((state / "run.json").read_text())
    model = CFEBM(CFEBMConfig(**info["model_config"]))
    model.load_state_dict(load_file(str(state / "model.safetensors")))
    ema_state = load_file(str(state / "ema.safetensors"))
    opt_file = state / "optimizer.pt"
    opt_state = torch.load(opt_file, weights_only=True) if opt_file.exists() else None
    return model, ema_state, opt_state, Progress(**info["progress"]), info["ema_updates"]


class StageRun:
    """CF-EBM's run folder as the Trainer sees it (``train.trainer.RunFolder``). Its layout is ``save_state``'s, not
    accelerate's: the network grows between stages, so the model config is saved with the weights. One
    StageRun serves every stage; ``track`` names the model, EMA and optimiser a save writes."""

    def __init__(self, acc, run_dir: Path, progress: Progress):
        self.acc, self.dir, self.state = acc, run_dir, progress
        self.log_file = run_dir / "log.jsonl"
        self.started, self.earlier = time.time(), progress.elapsed
        self.contents: tuple[CFEBM, EMA, torch.optim.Optimizer | None] | None = None

    def elapsed(self) -> float:
        return self.earlier + time.time() - self.started

    def track(self, model: CFEBM, ema: EMA, opt: torch.optim.Optimizer | None) -> None:
        self.contents = (model, ema, opt)

    def log(self, stats: dict) -> None:
        if self.acc.is_main_process:
            append_log(self.log_file, self.state.step, {**stats, "stage": self.state.stage})

    def save(self) -> None:
        model, ema, opt = self.contents
        replicas = replica_checksums(self.acc, [model.net])  # every process takes part
        check_replicas(replicas, self.state.step)
        if self.acc.is_main_process:
            self.state.elapsed = self.elapsed()
            save_state(self.dir, model, ema, opt, self.state, replicas)


def main(argv: list[str] | None = None) -> None:
    from accelerate import DistributedDataParallelKwargs

    # The fade branch stops contributing once beta reaches 1, so DDP must allow unused parameters.
    args, cfg, acc = start(__doc__, "train/configs/cfebm_fmnist.yaml", CFEBMRunConfig, argv, add_arguments=_add_arguments,
                           accelerator_kwargs={"kwargs_handlers": [DistributedDataParallelKwargs(find_unused_parameters=True)]})
    if args.no_coarse_to_fine:
        cfg.train.coarse_to_fine = False
        if cfg.name.startswith("cfebm-"):
            cfg.name = "ebm-single-" + cfg.name.removeprefix("cfebm-")
    single = not cfg.train.coarse_to_fine
    ts = cfg.train.single_scale() if single else cfg.train
    run_dir = Path(args.run_dir or f"runs/{cfg.name}")
    data, source = load_training_data(ts)
    log_file = run_dir / "log.jsonl"
    if args.resume:
        model, ema_state, opt_state, prog, ema_updates = load_state(run_dir)
        if acc.is_main_process:
            truncate_log(log_file, prog.step)
    elif args.init_from:
        # Continue a finished checkpoint: one more pass of its last stage with train.images[<its resolution>] images.
        model, prog = continued_model(args.init_from, ts, cfg.model)
        ema_state, opt_state, ema_updates = None, None, 0
        if acc.is_main_process and log_file.exists():
            log_file.unlink()
    else:
        if acc.is_main_process and log_file.exists():
            log_file.unlink()
        base = cfg.train.resolutions[0]  # the single-scale model has the same blocks, built at full size at once
        model = CFEBM(build_dataclass(CFEBMConfig, {**cfg.model, "base_resolution": base, "resolution": ts.resolutions[0],
                                                    "source_domain": ts.source_domain, "target_domain": ts.target_domain},
                                      "model"))
        ema_state, opt_state, prog, ema_updates = None, None, Progress(), 0
    run = StageRun(acc, run_dir, prog)
    model = model.to(acc.device)
    final_ema = None
    if prog.stage >= len(ts.resolutions):  # a finished run: export what it saved
        final_ema = _ema_from(model, ema_state).shadow
    while prog.stage < len(ts.resolutions):
        res = ts.resolutions[prog.stage]
        if model.config.resolution != res:
            raise ConfigError(f"Saved model is at {model.config.resolution}px but stage {prog.stage} is {res}px.")
        n_images = ts.images[str(res)]
        model.coarse.requires_grad_(False)  # frozen stages: only sampled from, never trained
        opt = torch.optim.Adam(model.net.parameters(), lr=ts.lr[str(res)], betas=(0.5, 0.999))
        if opt_state is not None:
            opt.load_state_dict(opt_state)
        # A new network each stage, so a new DDP wrapper and Trainer; the stage ends when n_images have been seen.
        stage_end = prog.step + max(0, -(-(n_images - prog.seen) // ts.batch_size))
        trainer = Trainer(acc, LossModule(model.training_loss, model=model), [Group(opt, clip=ts.grad_clip)], run=run,
                          steps=stage_end, save_every=ts.save_every, max_minutes=ts.max_minutes, ema_of=model,
                          ema_decay=ts.ema_decay, desc=f"CF-EBM {res}px")
        ema = trainer.ema
        if ema_state is not None:
            ema.shadow.load_state_dict(ema_state)
            ema.num_updates.fill_(ema_updates)
        run.track(model, ema, trainer.groups[0].optimizer)
        ema_state = opt_state = None
        pooled = F.adaptive_avg_pool2d(data, res) if res != data.shape[-1] else data  # low-res data by average pooling
        pooled_src = None if source is None else F.adaptive_avg_pool2d(source, res) if res != source.shape[-1] else source
        for step in trainer:
            beta = min(1.0, 2 * prog.seen / n_images) if model.config.fading else 1.0
            # Global batch indices from a generator seeded by the step (the same on every process, and
            # the same after --resume); each process takes its slice, then draws its own chain noise.
            gen = trainer.generator(ts.seed * 7919, per_process=False)
            idx = torch.randint(0, len(pooled), (ts.batch_size,), generator=gen)
            # Unpaired: the source batch is drawn independently of the target batch.
            src_idx = None if pooled_src is None else torch.randint(0, len(pooled_src), (ts.batch_size,), generator=gen)
            idx = shard(acc, idx, trace_dir=run.dir, step=step + 1)
            src = None if src_idx is None else pooled_src[shard(acc, src_idx)].to(acc.device)
            if trainer.rank:
                gen = trainer.generator(ts.seed * 7919, device="cpu")
            out = trainer.module(pooled[idx].to(acc.device), beta=beta, generator=gen, source=src,
                                 multiscale_fraction=ts.multiscale_fraction)
            loss = out["loss"]
            if ts.energy_l2:
                loss = loss + ts.energy_l2 * (out["e_pos"] ** 2 + out["e_neg"] ** 2)
            stats = trainer.optimise({k: out[k] for k in ("loss", "e_pos", "e_neg")}, total=loss)
            prog.seen += ts.batch_size
            if max(abs(stats["e_pos"]), abs(stats["e_neg"])) > ts.max_abs_energy:
                raise DivergenceError(f"|E| reached {max(abs(stats['e_pos']), abs(stats['e_neg'])):.3g} at step {prog.step}: "
                                      "resume from the last state with a lower lr, or set train.energy_l2.")
            trainer.log(stats, postfix={"stage": f"{res}px", "beta": f"{beta:.2f}", **{k: f"{v:.3g}" for k, v in stats.items()}})
        if trainer.out_of_time and prog.seen < n_images:
            print(f"Stopping mid-stage ({res}px, {prog.seen}/{n_images} images): max_minutes reached. Resume with --resume.")
            final_ema = ema.shadow
            break
        # Stage done (beta = 1): drop the fade, then grow unless this was the last stage.
        replicas = replica_checksums(acc, [model.net])
        check_replicas(replicas, prog.step)
        model, final_ema = _finish_stage(model), _finish_stage(ema.shadow)
        prog.stage, prog.seen, prog.elapsed = prog.stage + 1, 0, run.elapsed()
        if prog.stage < len(ts.resolutions):
            model = model.expand()
            ema_state, ema_updates = final_ema.expand().state_dict(), 0
            if acc.is_main_process:  # a fresh optimizer starts each stage, so none is saved here
                save_state(run_dir, model, _ema_from(model, ema_state), None, prog, replicas)
        elif acc.is_main_process:
            save_state(run_dir, model, _ema_from(model, final_ema.state_dict()), None, prog, replicas)
    total = run.elapsed()
    if acc.is_main_process:
        reached = final_ema.config.resolution
        card = model_card(cfg.name, ts, final_ema, single, f"--config {args.config}" + (" --no-coarse-to-fine" if args.no_coarse_to_fine else ""))
        path = export(cfg.name, final_ema, card, wall_seconds=total, steps=prog.step, export_dir=args.export_dir,
                      extra={"stage_reached": reached, "coarse_to_fine": not single, "init_from": args.init_from,
                             "multiscale_fraction": ts.multiscale_fraction, "earlier_training": earlier_training(args.init_from)})
        print(f"Exported EMA weights ({reached}px) to {path}")


# Config fields a continued run may change: they set how the model samples, not its weights.
SAMPLER_FIELDS = ("final_steps", "scale_steps", "multiscale_steps", "multiscale_blend", "denoise_steps", "denoise_eta0")


def continued_model(ref: str, ts: CFEBMTrainSettings, model_section: dict | None = None) -> tuple[CFEBM, Progress]:
    """The exported model of ``ref`` and the progress that trains its final stage once more. ``model_section`` (the
    config's ``model:``) may set sampler fields, e.g. the multi-scale steps that ``multiscale_fraction`` trains for."""
    import dataclasses

    import studio

    model = studio.load(ref, kind="cfebm")  # raises a clear error for another kind of checkpoint
    sampler = {k: v for k, v in (model_section or {}).items() if k in SAMPLER_FIELDS}
    model.config = dataclasses.replace(model.config, **sampler)
    res = model.config.resolution
    if res not in ts.resolutions:
        raise ConfigError(f"--init-from {ref} is at {res}px, which is not one of train.resolutions {ts.resolutions}.")
    model.net.requires_grad_(True)  # loaded models come frozen; the coarse stages stay so
    model.train()
    return model, Progress(stage=ts.resolutions.index(res))


def model_card(name: str, ts: CFEBMTrainSettings, model: CFEBM, single: bool, args: str) -> ModelCard:
    reached = model.config.resolution
    how = (f"the CF-EBM network trained without coarse-to-fine growth on the same {ts.images[str(reached)]:,} training images"
           if single else f"grown coarse-to-fine to {reached}x{reached} (stages {ts.resolutions})")
    reproduce = f"{settings_line(ts, model)}\n\nReproduce: `accelerate launch train/cfebm.py {args}`."
    if ts.dataset == "emoji":
        src, tgt = ts.source_domain, ts.target_domain
        return ModelCard(
            summary=f"CF-EBM pixel-space translation {src} -> {tgt} emoji at {reached}x{reached}, {how}.",
            body=(f"Stage reached: {reached}px. The energy of {tgt}-style emoji, learned with chains started at unpaired "
                  f"{src}-style images; translating runs T = {model.trained_steps()} steps from the source image: "
                  f"`studio.load('{name}').translate(images)`.\n\n{reproduce}\n\n"
                  "Data: Twemoji (CC-BY 4.0) and Noto Emoji (Apache 2.0) via emoji-datasource."),
            tags=["cf-ebm", "image-to-image", "emoji"], datasets=["emoji-datasource"], pipeline_tag="image-to-image")
    kind = "Single-scale EBM (ablation)" if single else "CF-EBM"
    return ModelCard(
        summary=f"{kind} on Fashion-MNIST at {reached}x{reached}: {how}.",
        body=(f"Stage reached: {reached}px. Sampling: `studio.load('{name}').generate(seeds='0-15')` "
              f"(single scale, T = {model.trained_steps()} steps)" + ("" if single else " or `multiscale=True`") +
              f".\n\n{reproduce}\n\nData: Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017), MIT licence."),
        tags=["cf-ebm", "fashion-mnist"], datasets=["fashion_mnist"], pipeline_tag="unconditional-image-generation")


def settings_line(ts: CFEBMTrainSettings, model: CFEBM) -> str:
    c = model.config
    return (f"Settings: width c = {c.width}, Langevin steps T = {c.steps}, eta0 = {c.eta0} (noise variance, decaying to 0), "
            f"gradient step {c.grad_step}; training images per stage {ts.images}, batch {ts.batch_size}, "
            f"Adam(0.5, 0.999) lr {ts.lr}; the exported weights are the EMA ({ts.ema_decay}). "
            f"Denoising defaults: {c.denoise_steps} steps, eta0 = {c.denoise_eta0}.")


def load_training_data(ts: CFEBMTrainSettings) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Target-domain training images, and source-domain images for translation (else None)."""
    if ts.dataset == "fashion-mnist":
        from studio.data.fashion_mnist import load_fashion_mnist

        return load_fashion_mnist("train").images, None
    if ts.dataset == "emoji":
        from studio.data.emoji import STYLES, load_emoji_pairs

        if {ts.source_domain, ts.target_domain} != set(STYLES):
            raise ConfigError(f"Emoji translation needs source_domain and target_domain to be {STYLES} in some order; "
                              f"got '{ts.source_domain}' -> '{ts.target_domain}'.")
        pairs = load_emoji_pairs("train", size=ts.image_size)
        return pairs.style(ts.target_domain), pairs.style(ts.source_domain)
    raise ConfigError(f"Unknown train.dataset '{ts.dataset}'; choose 'fashion-mnist' or 'emoji'.")


def _add_arguments(parser) -> None:
    parser.add_argument("--no-coarse-to-fine", action="store_true",
                        help="train the single-scale ablation (same network and image budget, no growth)")


def _finish_stage(model: CFEBM) -> CFEBM:
    if not model.config.fading:
        return model
    model.net.beta.fill_(1.0)
    return model.drop_fade()


def _ema_from(model: CFEBM, state: dict) -> EMA:
    ema = EMA(model)
    ema.shadow.load_state_dict(state)
    return ema


if __name__ == "__main__":
    main()
