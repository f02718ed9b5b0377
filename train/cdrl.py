"""Train CDRL (or DRL) on Fashion-MNIST, class-conditional with label dropout.

    accelerate launch train/cdrl.py --config train/configs/cdrl_fmnist.yaml
    accelerate launch train/cdrl.py --config train/configs/drl_fmnist.yaml     # the DRL baseline
    accelerate launch train/cdrl.py --config ... --resume                       # continue a run
    accelerate launch train/cdrl.py --config train/configs/cdrl_fmnist_attributes.yaml   # attributes (§5.4.6)

The same command runs on many GPUs, or on N CPU processes with
``accelerate launch --multi_gpu --num_processes N train/cdrl.py --cpu ...``:
``batch_size`` is the global batch, each process trains on its slice with its own
chain noise, and accelerate averages the gradients. States are saved every
``save_every`` steps to runs/<name>/ and the EMA weights are exported to
checkpoints/<name>/ at the end.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # `accelerate launch train/cdrl.py` runs this file as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from studio.cdrl import CDRL, DRL, CDRLConfig, DRLConfig
from studio.hub import ModelCard
from train.augment import random_hflip
from train.cdrl_attributes import AttributeMode, AttributeSettings
from train.common import ConfigError, DivergenceError, build_dataclass, earlier_training, init_from_checkpoint, start
from train.schedules import warmup
from train.trainer import Group, LossModule, Trainer


@dataclass
class TrainSettings:
    steps: int = 5000
    batch_size: int = 64
    ebm_lr: float = 1e-4
    init_lr: float = 2e-4
    warmup: int = 200
    ema_decay: float = 0.999
    label_dropout: float = 0.1
    init_target: str = "refined"  # "refined" (paper) or "data" (the paper's ablation; faster early convergence)
    grad_clip: float = 1.0
    hflip: bool = True
    save_every: int = 250
    seed: int = 0
    max_abs_f: float = 1e5  # divergence guard on |fhat| of data
    max_minutes: float = 0.0  # stop (and export) after this wall time; 0 = no limit
    threads: int = 0  # torch CPU threads; 0 = torch's default


@dataclass
class CDRLRunConfig:
    name: str = "cdrl-fmnist"
    method: str = "cdrl"  # "cdrl" or "drl"
    model: dict = field(default_factory=dict)
    train: TrainSettings = field(default_factory=TrainSettings)
    attributes: AttributeSettings = field(default_factory=AttributeSettings)  # names set: attribute mode (train/cdrl_attributes.py)


def build_model(cfg: CDRLRunConfig, extra_fields: dict | None = None) -> CDRL:
    if cfg.method == "cdrl":
        return CDRL(build_dataclass(CDRLConfig, {**cfg.model, **(extra_fields or {})}, "model"))
    if cfg.method == "drl":
        return DRL(build_dataclass(DRLConfig, cfg.model, "model"))
    raise ConfigError(f"method must be 'cdrl' or 'drl'; got {cfg.method!r}")


def main(argv: list[str] | None = None) -> None:
    args, cfg, acc = start(__doc__, "train/configs/cdrl_fmnist.yaml", CDRLRunConfig, argv)
    ts = cfg.train

    from studio.data.fashion_mnist import load_fashion_mnist

    data = load_fashion_mnist("train")
    attr = AttributeMode(cfg.attributes, data.images, data.labels) if cfg.attributes.names else None
    if attr is not None and cfg.method != "cdrl":
        raise ConfigError("Attribute mode trains CDRL (method: cdrl).")
    model = build_model(cfg, attr.model_fields(cfg.model) if attr else None)
    if args.init_from and not args.resume:
        init_from_checkpoint(model, args.init_from)
    elif attr is not None and attr.warm_start_from and not args.resume:
        attr.warm_start(model)
    # The EBM and the initializer each minimise their own loss, with a linear warm-up of the rate.
    groups = []
    for part, lr, loss in ((model.ebm, ts.ebm_lr, "ebm_loss"), (model.initializer, ts.init_lr, "init_loss")):
        if part is not None:
            opt = torch.optim.Adam(part.parameters(), lr=lr, betas=(0.9, 0.999))
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: warmup(step, ts.warmup))
            groups.append(Group(opt, loss=loss, clip=ts.grad_clip, scheduler=sched))
    trainer = Trainer(acc, LossModule(model.training_losses, model=model), groups, steps=ts.steps, save_every=ts.save_every,
                      max_minutes=ts.max_minutes, ema_of=model, ema_decay=ts.ema_decay,
                      run_dir=args.run_dir or f"runs/{cfg.name}", resume=args.resume, desc=cfg.name)

    # Every process draws the same global batch (same seed) and trains on its slice.
    targets = data.labels if attr is None else attr.table  # attribute mode: labels are drawn per batch below
    batches = trainer.batches((data.images, targets), ts.batch_size, ts.seed * 1000)
    for _ in trainer:
        # Flips and chain noise come from (seed, step, rank): a resumed run repeats the uninterrupted one.
        gen = trainer.generator(ts.seed * 7919)
        x, y = trainer.shard(*next(batches))
        if ts.hflip:
            x = random_hflip(x, gen)
        if attr is not None:
            y = attr.labels(y, gen)
        stats = trainer.optimise(trainer.module(x, y, label_dropout=ts.label_dropout, generator=gen, init_target=ts.init_target))
        if abs(stats["f_pos"]) > ts.max_abs_f:
            raise DivergenceError(f"|fhat| of data reached {stats['f_pos']:.3g} at step {trainer.step}: the energy is "
                                  "exploding. Resume from the last state with a lower ebm_lr.")
        trainer.log(stats)
    if trainer.is_main:
        final = trainer.ema.shadow
        label = "CDRL" if cfg.method == "cdrl" else "DRL"
        card = ModelCard(
            summary=f"{label} on Fashion-MNIST 32x32, class-conditional with classifier-free guidance (T = {model.config.num_levels}).",
            body=CARD_BODY.format(name=cfg.name, config=args.config, K=model.config.langevin_steps),
            tags=[cfg.method, "fashion-mnist", "classifier-free-guidance"],
            datasets=["fashion_mnist"],
            pipeline_tag="unconditional-image-generation",
        )
        if attr is not None:
            card.summary = (f"CDRL on Fashion-MNIST 32x32, conditional on {len(attr.names)} binary attributes "
                            f"({', '.join(attr.names)}) for compositional generation (T = {model.config.num_levels}).")
            card.body = ATTRIBUTE_CARD_BODY.format(name=cfg.name, config=args.config, K=model.config.langevin_steps,
                                                   attribute=attr.names[0], stats=attr.card_section(),
                                                   warm=f" Started from `{attr.warm_start_from}`'s weights (label embeddings "
                                                        "rebuilt; see train/cdrl_attributes.py)." if attr.warm_start_from else "")
            card.tags = [*card.tags, "compositional-generation"]
        path = trainer.export(cfg.name, final, card, export_dir=args.export_dir,
                              extra={"sampler_defaults": {"steps": model.config.langevin_steps, "guidance": 1.0},
                                     "data": {"name": "fashion-mnist", "split": "train (55,000; 5,000 held out for validation)"},
                                     "init_from": args.init_from, "earlier_training": earlier_training(args.init_from),
                                     **({"attributes": {**attr.stats, "warm_start": attr.warm_start_from or None}} if attr else {})})
        print(f"Exported EMA weights to {path}")


CARD_BODY = """Sample from Python:

```python
import studio
x, trace = studio.load("{name}").generate("Trouser", seeds="0-15", guidance=1.0)
```

Guidance follows the paper: w = 0 is no guidance, log p~ = (w+1) log p(y|c) - w log p(y);
diffusers' `guidance_scale` equals w + 1. Training used K = {K} Langevin steps per level; other K
rescale the step size as s^2 * K_train / K.

Reproduce: `accelerate launch train/cdrl.py --config {config}`.

Data: Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017; MIT licence), padded to 32x32, in [-1, 1]."""

ATTRIBUTE_CARD_BODY = """Compose attributes from Python (True, False, or None = no control):

```python
import studio
x, trace = studio.load("{name}").compose({{"{attribute}": True}}, guidance=3.0, seeds="0-15")
```

Composition follows the thesis (§5.3.6): (w + 1) sum_i f(x; c_i) - (M w + M - 1) f(x; null) for M
controlled attributes; the energy sampled is written out in `studio/compose.py`. Training used K = {K}
Langevin steps per level.{warm}

{stats}

Reproduce: `accelerate launch train/cdrl.py --config {config}`.

Data: Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017; MIT licence), padded to 32x32, in [-1, 1]."""


if __name__ == "__main__":
    main()
