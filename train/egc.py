"""Train EGC (one network that classifies and generates) on Fashion-MNIST.

    accelerate launch train/egc.py --config train/configs/egc_fmnist.yaml
    accelerate launch train/egc.py --config ... --resume        # continue a run

Each step is Algorithm 1 of the paper: noise a batch at random DDPM steps, take the input gradient of
logsumexp of the logits with create_graph=True, regress it on -eps, add the sqrt(abar_t)-weighted
cross-entropy and backpropagate through both (double backprop). ``batch_size`` is the global batch;
states are saved every ``save_every`` steps to runs/<name>/, and the EMA weights are exported to
checkpoints/<name>/ at the end or when ``max_minutes`` runs out.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

if __package__ in (None, ""):  # `accelerate launch train/egc.py` runs this file as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from studio.egc import EGC, EGCConfig
from studio.hub import ModelCard
from train.augment import random_hflip
from train.common import DivergenceError, build_dataclass, earlier_training, init_from_checkpoint, start
from train.schedules import budget_used, linear_decay, warmup
from train.trainer import Group, LossModule, Trainer


@dataclass
class TrainSettings:
    steps: int = 5000
    batch_size: int = 32
    lr: float = 5e-4
    warmup: int = 200
    decay_from: float = 0.6  # linear lr decay to final_lr_ratio over the last part of the budget (steps or max_minutes)
    final_lr_ratio: float = 0.1
    ema_decay: float = 0.995
    gamma: float = 0.5  # CE weight (times sqrt(abar_t))
    label_smoothing: float = 0.0
    low_t_fraction: float = 0.4  # share of each batch with t < low_t_max (where classification is judged)
    low_t_max: int = 100
    low_t_ce: float = 0.0  # weight of the extra CE on a low-noise view (no double backprop; see EGC.training_losses)
    focus_fraction: float = 0.0  # share of each batch with t < focus_max (where the base is furthest from the data)
    focus_max: int = 400
    ce_weight: str = "sqrt_abar"  # or "uniform" (see EGC.training_losses)
    grad_clip: float = 1.0
    hflip: bool = True
    save_every: int = 250
    eval_every: int = 500  # t = 0 accuracy of the EMA on val_images held-out images (logged)
    val_images: int = 1000
    seed: int = 0
    max_lse: float = 1e5  # divergence guard on |logsumexp f| of noisy data
    max_minutes: float = 0.0  # stop (and export) after this wall time; 0 = no limit
    threads: int = 0


@dataclass
class EGCRunConfig:
    name: str = "egc-fmnist"
    model: dict = field(default_factory=dict)
    train: TrainSettings = field(default_factory=TrainSettings)


def lr_schedule(ts: TrainSettings):
    """The rate factor at (step, elapsed seconds): warm-up, then a linear decay to ``final_lr_ratio`` over the last
    (1 - decay_from) of the budget (whichever of ``steps`` and ``max_minutes`` runs out first)."""
    return lambda step, elapsed: warmup(step, ts.warmup) * linear_decay(budget_used(step, ts.steps, elapsed, ts.max_minutes),
                                                                         ts.decay_from, ts.final_lr_ratio)


def main(argv: list[str] | None = None) -> None:
    args, cfg, acc = start(__doc__, "train/configs/egc_fmnist.yaml", EGCRunConfig, argv)
    ts = cfg.train

    from studio.data.fashion_mnist import load_fashion_mnist

    data = load_fashion_mnist("train")
    val = load_fashion_mnist("val")
    val_x, val_y = val.images[: ts.val_images], val.labels[: ts.val_images]
    model = EGC(build_dataclass(EGCConfig, cfg.model, "model"))
    fresh: list[str] = []
    if args.init_from and not args.resume:
        # The residual head and the Gaussian base are new parts: a checkpoint of the first design lends its trunk.
        fresh = init_from_checkpoint(model, args.init_from, new_parts=("net.residual.", "base_"))
        if fresh:
            print(f"--init-from {args.init_from}: new parts start fresh: {', '.join(fresh)}")
    if model.config.gaussian_base != "none" and not args.resume and (not args.init_from or "base_mean" in fresh):
        model.fit_gaussian_base(data.images, data.labels)  # the analytic part of the score
    opt = torch.optim.Adam(model.parameters(), lr=ts.lr, betas=(0.9, 0.999))
    factor = lr_schedule(ts)
    losses = partial(model.training_losses, gamma=ts.gamma, label_smoothing=ts.label_smoothing, low_t_fraction=ts.low_t_fraction,
                     low_t_max=ts.low_t_max, low_t_ce=ts.low_t_ce, focus_fraction=ts.focus_fraction, focus_max=ts.focus_max,
                     ce_weight=ts.ce_weight)
    trainer = Trainer(acc, LossModule(losses, model=model),
                      [Group(opt, clip=ts.grad_clip, lr=lambda base, step, elapsed: base * factor(step, elapsed))],
                      steps=ts.steps, save_every=ts.save_every, max_minutes=ts.max_minutes, ema_of=model, ema_decay=ts.ema_decay,
                      run_dir=args.run_dir or f"runs/{cfg.name}", resume=args.resume, desc=cfg.name)
    ema = trainer.ema

    batches = trainer.batches((data.images, data.labels), ts.batch_size, ts.seed * 1000)
    for _ in trainer:
        gen = trainer.generator(ts.seed * 7919)
        x, y = trainer.shard(*next(batches))
        if ts.hflip:
            x = random_hflip(x, gen)
        stats = trainer.optimise(trainer.module(x, y, generator=gen))
        if abs(stats["lse"]) > ts.max_lse:
            raise DivergenceError(f"|logsumexp f| reached {stats['lse']:.3g} at step {trainer.step}: the energy is "
                                  "exploding. Resume from the last state with a lower lr (--set train.lr=...).")
        if ts.eval_every and trainer.step % ts.eval_every == 0 and trainer.is_main:
            pred = ema.shadow.predict(val_x.to(trainer.device)).argmax(1)
            stats["val_acc_ema"] = float((pred == val_y).float().mean())
            # What the learned part adds to the score where it matters (the bar's t = 100), on 200 held-out images.
            probe = val_x[:200]
            stats["val_denoise_gain_t100"] = (ema.shadow.denoising_loss(probe, 100, base_only=True)
                                              - ema.shadow.denoising_loss(probe, 100))
            trainer.write(f"step {trainer.step}: EMA val accuracy (t = 0) {stats['val_acc_ema']:.4f}, "
                          f"denoising gain over the base at t = 100 {stats['val_denoise_gain_t100']:+.4f}")
        trainer.log(stats, postfix={k: f"{v:.3g}" for k, v in stats.items() if k != "lse"})
    if trainer.is_main:
        final = ema.shadow
        card = ModelCard(
            summary="EGC on Fashion-MNIST 32x32: one network whose forward pass classifies and whose input gradient "
                    "is the diffusion score (DDIM sampling with classifier guidance through the same network).",
            body=CARD_BODY.format(name=cfg.name, config=args.config, params=final.num_parameters(),
                                  density=f"density_units={final.config.density_units}",
                                  base={"classes": "a mixture of one Gaussian per class", "single": "one Gaussian fitted to "
                                        "the data", "none": "nothing (gaussian_base='none')"}[final.config.gaussian_base]
                                  + f" (rank {final.config.base_rank} PCA per Gaussian)",
                                  residual=f"residual={final.config.residual!r}"),
            tags=["egc", "fashion-mnist", "diffusion", "classifier-guidance", "image-classification"],
            datasets=["fashion_mnist"],
            pipeline_tag="image-classification",
        )
        path = trainer.export(cfg.name, final, card, export_dir=args.export_dir,
                              extra={"sampler_defaults": {"steps": model.config.sample_steps, "guidance": model.config.guidance},
                                     "data": {"name": "fashion-mnist", "split": "train (55,000; 5,000 held out for validation)"},
                                     "init_from": args.init_from, "earlier_training": earlier_training(args.init_from)})
        print(f"Exported EMA weights to {path}")


CARD_BODY = """One network ({params:,} parameters) does both jobs:

```python
import studio
egc = studio.load("{name}")
probs = egc.classify(images)                              # p(y | x) at t = 0, images in [-1, 1]
x, trace = egc.generate("Trouser", seeds="0-15", guidance=1.0, steps=50)   # DDIM, eps = -grad logsumexp f
```

The energy is E(x_t, t) = -logsumexp_y f(x_t, t)[y]; sqrt(1 - abar_t) times its input gradient is
trained to equal the diffusion noise (Fisher/denoising term), the logits with cross-entropy. Classifier
guidance uses the same network's log p(y | x_t).

How this differs from the paper (see the studio.egc docstring, "Why the first design failed"): the
logits are log-densities ({density}); a class-independent analytic term, the log-density of {base}
diffused exactly to each noise level, is added to every logit (it cancels in softmax, so the attention
head alone classifies); a learned, unbounded per-pixel potential ({residual}) sits on top of it.

Reproduce: `accelerate launch train/egc.py --config {config}`.

Data: Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017; MIT licence), padded to 32x32, in [-1, 1]."""


if __name__ == "__main__":
    main()
