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
from torch import nn
from tqdm.auto import tqdm

from studio.cdrl import CDRL, DRL, CDRLConfig, DRLConfig
from studio.hub import ModelCard
from train.cdrl_attributes import AttributeMode, AttributeSettings
from train.common import (EMA, ConfigError, DivergenceError, Run, any_rank, build_dataclass, check_finite, earlier_training,
                          export, infinite_batches, init_from_checkpoint, shard, start, step_generator)


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


class LossModule(nn.Module):
    """Routes the training step through forward(), so DDP (multi-GPU) syncs gradients."""

    def __init__(self, model: CDRL):
        super().__init__()
        self.model = model

    def forward(self, x, y, label_dropout: float, generator, init_target: str = "refined"):
        return self.model.training_losses(x, y, label_dropout=label_dropout, generator=generator, init_target=init_target)


def lr_lambda(warmup: int):
    return lambda step: min(1.0, (step + 1) / max(1, warmup))


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
    ema = EMA(model, ts.ema_decay)
    ebm_opt = torch.optim.Adam(model.ebm.parameters(), lr=ts.ebm_lr, betas=(0.9, 0.999))
    opts = [ebm_opt]
    scheds = [torch.optim.lr_scheduler.LambdaLR(ebm_opt, lr_lambda(ts.warmup))]
    if model.initializer is not None:
        init_opt = torch.optim.Adam(model.initializer.parameters(), lr=ts.init_lr, betas=(0.9, 0.999))
        opts.append(init_opt)
        scheds.append(torch.optim.lr_scheduler.LambdaLR(init_opt, lr_lambda(ts.warmup)))
    trainer, *opts = acc.prepare(LossModule(model), *opts)
    scheds = [acc.prepare(s) for s in scheds]
    ema.to(acc.device)
    acc.register_for_checkpointing(ema)
    run = Run(acc, Path(args.run_dir or f"runs/{cfg.name}"), args.resume)
    core = acc.unwrap_model(trainer).model

    # Every process draws the same global batch (same seed) and trains on its slice.
    targets = data.labels if attr is None else attr.table  # attribute mode: labels are drawn per batch below
    batches = infinite_batches((data.images, targets), ts.batch_size, ts.seed * 1000, start_epoch=run.state.epoch)
    # Skip the batches already consumed in the current epoch so a resumed run continues the same order.
    per_epoch = len(data.images) // ts.batch_size
    for _ in range(run.state.step % per_epoch if run.resumed else 0):
        next(batches)
    bar = tqdm(total=ts.steps, initial=run.state.step, disable=not acc.is_main_process, desc=cfg.name, dynamic_ncols=True)
    while run.state.step < ts.steps:
        # Flips and chain noise come from (seed, step, rank): a resumed run repeats the uninterrupted one.
        gen = step_generator(ts.seed * 7919, run.state.step, acc.process_index, acc.device)
        x, y = shard(acc, *next(batches), trace_dir=run.dir, step=run.state.step + 1)
        x, y = x.to(acc.device), y.to(acc.device)
        if ts.hflip:
            flip = torch.rand(x.shape[0], device=acc.device, generator=gen) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        if attr is not None:
            y = attr.labels(y, gen)
        losses = trainer(x, y, ts.label_dropout, gen, ts.init_target)
        total = losses["ebm_loss"] + losses.get("init_loss", 0.0)
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        acc.backward(total)
        if acc.sync_gradients:
            acc.clip_grad_norm_(core.ebm.parameters(), ts.grad_clip)
            if core.initializer is not None:
                acc.clip_grad_norm_(core.initializer.parameters(), ts.grad_clip)
        for opt in opts:
            opt.step()
        for s in scheds:
            s.step()
        ema.update(core)
        run.state.step += 1
        run.state.epoch = run.state.step // per_epoch
        stats = {k: float(v.detach()) for k, v in losses.items()}
        check_finite(run.state.step, **stats)
        if abs(stats["f_pos"]) > ts.max_abs_f:
            raise DivergenceError(f"|fhat| of data reached {stats['f_pos']:.3g} at step {run.state.step}: the energy is "
                                  "exploding. Resume from the last state with a lower ebm_lr.")
        run.log(stats)
        bar.update(1)
        bar.set_postfix({k: f"{v:.3g}" for k, v in stats.items()})
        out_of_time = any_rank(acc, bool(ts.max_minutes) and run.elapsed() > ts.max_minutes * 60)
        if run.state.step % ts.save_every == 0 or run.state.step == ts.steps or out_of_time:
            run.save()
        if out_of_time:
            bar.write(f"Stopping at step {run.state.step}: reached max_minutes={ts.max_minutes}.")
            break
    bar.close()
    if acc.is_main_process:
        final = ema.shadow
        label = "CDRL" if cfg.method == "cdrl" else "DRL"
        card = ModelCard(
            summary=f"{label} on Fashion-MNIST 32x32, class-conditional with classifier-free guidance (T = {core.config.num_levels}).",
            body=CARD_BODY.format(name=cfg.name, config=args.config, K=core.config.langevin_steps),
            tags=[cfg.method, "fashion-mnist", "classifier-free-guidance"],
            datasets=["fashion_mnist"],
            pipeline_tag="unconditional-image-generation",
        )
        if attr is not None:
            card.summary = (f"CDRL on Fashion-MNIST 32x32, conditional on {len(attr.names)} binary attributes "
                            f"({', '.join(attr.names)}) for compositional generation (T = {core.config.num_levels}).")
            card.body = ATTRIBUTE_CARD_BODY.format(name=cfg.name, config=args.config, K=core.config.langevin_steps,
                                                   attribute=attr.names[0], stats=attr.card_section(),
                                                   warm=f" Started from `{attr.warm_start_from}`'s weights (label embeddings "
                                                        "rebuilt; see train/cdrl_attributes.py)." if attr.warm_start_from else "")
            card.tags = [*card.tags, "compositional-generation"]
        path = export(cfg.name, final, card, wall_seconds=run.elapsed(), steps=run.state.step, export_dir=args.export_dir,
                      extra={"sampler_defaults": {"steps": core.config.langevin_steps, "guidance": 1.0},
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
