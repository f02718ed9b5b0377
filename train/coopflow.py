"""Train CoopFlow on Fashion-MNIST: the flow proposes, a short Langevin flow refines, each learns from the other.

    accelerate launch train/coopflow.py --config train/configs/coopflow_fmnist.yaml
    accelerate launch train/coopflow.py --config ... --resume        # continue a run

Three phases, counted in one global step so ``--resume`` continues anywhere:

1. ``pretrain_steps``: the flow alone, by maximum likelihood on dequantized data. This is the
   paper's CoopFlow(Pre) setting (its best FID; "the latter stabilizes the training").
2. ``warmup_steps``: the EBM alone, with the pretrained flow frozen (the paper's warm-up phase, so an
   untrained Langevin flow cannot ruin the pretrained flow).
3. Algorithm 3: z ~ N(0, I), x_hat = g(z), x~ = T noise-free Langevin steps from x_hat;
   the flow maximises log q(x~) (MLE on the refined samples, ``CoopFlow.sample_loss``: no fresh
   dequantisation noise inside (-1, 1), see ``sample_dequantize``), the EBM minimises
   mean f(x~) - mean f(x_data). No gradient flows between the two models.

Adam as in the paper: flow betas (0.9, 0.999), EBM betas (0.5, 0.5). States are saved every
``save_every`` steps and at ``max_minutes``; the EMA weights are exported to checkpoints/<name>/.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

if __package__ in (None, ""):  # `accelerate launch train/coopflow.py` runs this file as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from studio.coopflow import CoopFlow, CoopFlowConfig
from studio.hub import ModelCard
from train.augment import random_hflip
from train.common import DivergenceError, build_dataclass, earlier_training, init_from_checkpoint, start
from train.schedules import configured
from train.trainer import Group, LossModule, Trainer


@dataclass
class TrainSettings:
    steps: int = 4000  # all phases together
    pretrain_steps: int = 1000  # flow MLE on data (CoopFlow(Pre))
    warmup_steps: int = 200  # EBM only, flow frozen
    batch_size: int = 32
    pretrain_lr: float = 1e-3
    flow_lr: float = 1e-4
    ebm_lr: float = 1e-4
    ebm_betas: list[float] = field(default_factory=lambda: [0.5, 0.5])
    flow_grad_clip: float = 50.0
    ebm_grad_clip: float = 0.0  # 0 = no clipping (the paper clips nothing)
    ema_decay: float = 0.995
    hflip: bool = False  # the paper flips CIFAR-10 only
    save_every: int = 250
    log_every: int = 25
    eval_every: int = 500  # validation bits/dim every this many steps (0 = never): shows when pretraining plateaus
    eval_images: int = 500  # validation images (never the test set) for that number
    seed: int = 0
    max_abs_energy: float = 1e8  # divergence guard on |E(data)|
    # Not in the paper: energy_reg * mean(E^2) keeps the EBM's scale bounded (as in Du & Mordatch 2019). Without it,
    # from the shipped warm-up, E(data) went 0.5 -> -77 within 60 cooperative steps at ebm_lr 1e-4.
    energy_reg: float = 0.0
    # Not in the paper: the flow's cooperative loss is (1 - share) * MLE on refined samples + share * MLE on the data
    # batch. 0 is Algorithm 3. A share keeps the flow anchored to the data while the EBM is still learning.
    flow_data_share: float = 0.0
    max_bpd: float = 50.0  # divergence guard on the flow's bits/dim of data
    max_minutes: float = 0.0  # stop (and export) after this wall time; 0 = no limit
    threads: int = 0


@dataclass
class CoopFlowRunConfig:
    name: str = "coopflow-fmnist"
    model: dict = field(default_factory=dict)
    train: TrainSettings = field(default_factory=TrainSettings)


def phase_losses(model: CoopFlow, phase: str, x: torch.Tensor, generator: torch.Generator,
                 energy_reg: float = 0.0, flow_data_share: float = 0.0) -> dict[str, torch.Tensor]:
    """The losses of one step of ``phase``: the flow's alone (pretrain), the EBM's on refined flow samples (warmup),
    or both (coop). ``energy_reg`` adds energy_reg * mean(E^2) over data and refined samples to the EBM's loss;
    ``flow_data_share`` mixes MLE on the data batch into the flow's cooperative loss."""
    if phase == "pretrain":
        return {"flow_loss": model.flow_loss(x, generator)}
    x_flow, x_refined = model.propose_and_refine(x.shape[0], generator)
    out = model.ebm_loss(x, x_refined, energy_reg)
    out["move"] = (x_refined - x_flow).flatten(1).norm(dim=1).mean().detach()
    if phase == "coop":
        out["flow_loss"] = model.sample_loss(x_refined, generator)
        if flow_data_share > 0:
            out["flow_bpd_refined"] = out["flow_loss"].detach()
            out["flow_loss"] = (1 - flow_data_share) * out["flow_loss"] + flow_data_share * model.flow_loss(x, generator)
    return out


def validation_bpd(flow_model: CoopFlow, images: torch.Tensor, seed: int) -> float:
    """Bits/dim on held-out validation images, with a fixed dequantisation draw so the curve is smooth."""
    gen = torch.Generator(device=flow_model.device).manual_seed(seed + 12345)
    with torch.no_grad():
        return float(torch.cat([flow_model.nll_bits_per_dim(b.to(flow_model.device), gen) for b in images.split(250)]).mean())


def phase_at(step: int, ts: TrainSettings) -> str:
    if step < ts.pretrain_steps:
        return "pretrain"
    return "warmup" if step < ts.pretrain_steps + ts.warmup_steps else "coop"


def main(argv: list[str] | None = None) -> None:
    from accelerate.utils import DistributedDataParallelKwargs

    args, cfg, acc = start(__doc__, "train/configs/coopflow_fmnist.yaml", CoopFlowRunConfig, argv)
    ts = cfg.train
    if acc.num_processes > 1:  # each phase leaves one network unused
        from train.common import make_accelerator

        acc = make_accelerator(kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])

    from studio.data.fashion_mnist import load_fashion_mnist

    data = load_fashion_mnist("train")
    val = load_fashion_mnist("val").images[: ts.eval_images]
    model = CoopFlow(build_dataclass(CoopFlowConfig, cfg.model, "model"))
    if args.init_from and not args.resume:
        init_from_checkpoint(model, args.init_from)
    elif not args.resume:
        with torch.no_grad():  # data-dependent ActNorm init on a data batch (Glow / the paper's SK16 init)
            model.train()
            model.flow_loss(data.images[torch.randperm(len(data.images), generator=torch.Generator().manual_seed(ts.seed))[:256]])
    flow_opt = torch.optim.Adam(model.flow.parameters(), lr=ts.flow_lr, betas=(0.9, 0.999))
    ebm_opt = torch.optim.Adam(model.ebm.parameters(), lr=ts.ebm_lr, betas=tuple(ts.ebm_betas))

    def flow_lr(base: float, step: int, elapsed: float) -> float:  # pretraining has a rate of its own
        return ts.pretrain_lr if phase_at(step, ts) == "pretrain" else base

    groups = [Group(flow_opt, loss="flow_loss", clip=ts.flow_grad_clip, lr=flow_lr),
              Group(ebm_opt, loss="ebm_loss", clip=ts.ebm_grad_clip, lr=configured)]
    trainer = Trainer(acc, LossModule(partial(phase_losses, model, energy_reg=ts.energy_reg, flow_data_share=ts.flow_data_share), model=model), groups, steps=ts.steps,
                      save_every=ts.save_every, max_minutes=ts.max_minutes, ema_of=model, ema_decay=ts.ema_decay,
                      run_dir=args.run_dir or f"runs/{cfg.name}", resume=args.resume, desc=cfg.name, log_every=ts.log_every)
    ema = trainer.ema

    # batch_size is the global batch: every process draws the same one and trains on its slice (DDP averages
    # the gradients), with its own noise from a (seed, step, rank) generator, so --resume repeats the run.
    batches = trainer.batches((data.images,), ts.batch_size, ts.seed * 1000)
    stats: dict[str, float] = {}
    for step in trainer:
        gen = trainer.generator(ts.seed * 7919)
        x = trainer.shard(*next(batches))
        if ts.hflip:
            x = random_hflip(x, gen)
        phase = phase_at(step, ts)
        stats = trainer.optimise(trainer.module(phase, x, gen))
        if abs(stats.get("e_data", 0.0)) > ts.max_abs_energy:
            raise DivergenceError(f"|E(data)| reached {stats['e_data']:.3g} at step {trainer.step}: the energy is exploding. "
                                  "Resume from the last state with a lower ebm_lr.")
        if phase != "warmup" and stats["flow_loss"] > ts.max_bpd and trainer.step > 50:
            raise DivergenceError(f"The flow's loss reached {stats['flow_loss']:.3g} bits/dim at step {trainer.step}. "
                                  "Resume from the last state with a lower flow_lr.")
        trainer.log(stats, postfix={"phase": phase, **{k: f"{v:.3g}" for k, v in stats.items()}})
        if ts.eval_every and trainer.step % ts.eval_every == 0 and trainer.is_main:
            bpd = validation_bpd(ema.shadow, val, ts.seed)
            trainer.run.log({"val_bpd_ema": bpd})
            trainer.write(f"step {trainer.step} ({phase}): validation bits/dim (EMA flow) {bpd:.4f}")
    if trainer.is_main:
        c, steps, log_file = model.config, trainer.step, trainer.run.log_file
        done = {"pretrain": min(steps, ts.pretrain_steps),
                "warmup": max(0, min(steps, ts.pretrain_steps + ts.warmup_steps) - ts.pretrain_steps),
                "coop": max(0, steps - ts.pretrain_steps - ts.warmup_steps)}
        card = model_card(cfg.name, args.config, c, done, read_validation_curve(log_file), ts.flow_data_share)
        path = trainer.export(cfg.name, ema.shadow, card, export_dir=args.export_dir,
                              extra={"sampler_defaults": {"steps": c.langevin_steps, "step_size": c.step_size, "noise": c.noise},
                                     "phases": done, "final_stats": stats,
                                     "validation_bpd": read_validation_curve(log_file),
                                     "earlier_training": earlier_training(args.init_from),
                                     "data": {"name": "fashion-mnist", "split": "train (55,000; 5,000 held out for validation)"},
                                     "init_from": args.init_from})
        print(f"Exported EMA weights to {path}")


def read_validation_curve(log_file: Path) -> list[tuple[int, float]]:
    """(step, validation bits/dim of the EMA flow) from the run's log.jsonl."""
    import json

    if not log_file.exists():
        return []
    rows = (json.loads(line) for line in log_file.read_text().splitlines() if line.strip())
    return [(r["step"], round(r["val_bpd_ema"], 4)) for r in rows if "val_bpd_ema" in r]


def model_card(name: str, config_path: str, c: CoopFlowConfig, done: dict, curve: list[tuple[int, float]],
               flow_data_share: float = 0.0) -> ModelCard:
    """The card: how to sample, the sizes and why, the phases, and the flow's validation bits/dim during training."""
    sized = CoopFlow(c)
    flow_params = sum(p.numel() for p in sized.flow.parameters())
    ebm_params = sum(p.numel() for p in sized.ebm.parameters())
    curve_md = ""
    if curve:
        curve_md = ("\n\nThe flow's bits/dim on 500 *validation* images (EMA weights, one fixed dequantisation draw), "
                    "during training:\n\n| step | phase | bits/dim |\n|---|---|---|\n" +
                    "\n".join(f"| {step} | {'pretrain' if step <= done['pretrain'] else 'cooperative'} | {bpd} |"
                              for step, bpd in curve))
    clip_md = f"; each pixel's drift clipped to +-{c.update_clip} per step (the authors' code)" if c.update_clip else ""
    share_md = (f" Not in the paper: the flow's cooperative loss mixes in maximum likelihood on the data batch (share "
                f"{flow_data_share}), which keeps the flow anchored to the data while the EBM learns." if flow_data_share else "")
    body = f"""Sample from Python:

```python
import studio
m = studio.load("{name}")
out = m.sample(seeds="0-15")          # out.flow: flow proposals, out.refined: after T Langevin steps
path = m.interpolate(0, 1, n=8)       # a straight line between two flow latents, before and after refinement
```

Model (sized for one CPU thread): a Glow-style flow with {c.flow_levels} levels x {c.flow_steps} steps (actnorm, invertible
1x1 conv, affine coupling with {c.flow_hidden} hidden channels; {flow_params / 1e6:.2f}M parameters) and the paper's EBM
scaled to width {c.ebm_width} ({ebm_params / 1e6:.2f}M parameters). Why these sizes: the first checkpoint's EBM (width 8)
could not sharpen anything, and width 32 costs 9.7 s per cooperative step on one thread (a few hundred steps per hour);
width 16 costs 3.2 s at T = 20.

Training (Algorithm 3 of the CoopFlow paper, CoopFlow(Pre) setting): {done['pretrain']} flow-only steps by maximum
likelihood on dequantized data, {done['warmup']} EBM-only warm-up steps with the flow frozen, then {done['coop']}
cooperative steps (flow: maximum likelihood on the refined samples; EBM: mean f(refined) - mean f(data)). Langevin:
T = {c.langevin_steps} noise-free steps in training (the paper: 30), delta = {c.train_step_size} in training and
{c.step_size} for sampling (the paper's 4/3 ratio){clip_md}.{share_md}{curve_md}

Reproduce: `accelerate launch train/coopflow.py --config {config_path}`.

Data: Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017; MIT licence), padded to 32x32, in [-1, 1]."""
    return ModelCard(summary="CoopFlow on Fashion-MNIST 32x32: a normalizing flow proposes, a short-run Langevin flow on an EBM refines.",
                     body=body, tags=["coopflow", "normalizing-flow", "fashion-mnist"], datasets=["fashion_mnist"],
                     pipeline_tag="unconditional-image-generation")


if __name__ == "__main__":
    main()
