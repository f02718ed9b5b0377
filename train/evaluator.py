"""Train a reference evaluator (classifier) on real data and export it.

    accelerate launch train/evaluator.py --config train/configs/evaluator_fmnist.yaml
    accelerate launch train/evaluator.py --config train/configs/evaluator_emoji.yaml
    accelerate launch train/evaluator.py --config train/configs/evaluator_shapes3d.yaml

``batch_size`` is the global batch (split across processes, e.g. with
``accelerate launch --multi_gpu --num_processes 2 train/evaluator.py --cpu ...``).
Model selection uses a validation split carved out of the training data; the
accuracy written to the model card is measured afterwards on the held-out test
split by ``python -m train.evaluate NAME``.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torch.nn.functional as F
from torch import nn

from studio.evaluator import EvaluatorConfig, EvaluatorNet
from studio.hub import ModelCard
from train.augment import random_hflip, random_shift_all
from train.common import build_dataclass, start
from train.datasets import DATA_CREDITS, labelled_split
from train.trainer import Group, Trainer


@dataclass
class EvalTrainSettings:
    epochs: float = 8.0
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 5e-4
    shift: int = 2  # random translation in pixels (augmentation)
    hflip: bool = True
    ema_decay: float = 0.998
    save_every: int = 500
    seed: int = 0
    threads: int = 0


@dataclass
class EvaluatorRunConfig:
    name: str = "evaluator-fmnist"
    dataset: str = "fashion-mnist"  # fashion-mnist | emoji | shapes3d
    model: dict = field(default_factory=dict)
    train: EvalTrainSettings = field(default_factory=EvalTrainSettings)


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    preds = torch.cat([model(images[i : i + 500]).argmax(1) for i in range(0, len(images), 500)])
    return float((preds == labels).float().mean())


def main(argv: list[str] | None = None) -> None:
    args, cfg, acc = start(__doc__, "train/configs/evaluator_fmnist.yaml", EvaluatorRunConfig, argv)
    ts = cfg.train
    train = labelled_split(cfg.dataset, "train")
    val = labelled_split(cfg.dataset, "val")
    # The data decide channels, classes and (unless the config asks for a smaller input) the resolution.
    model_cfg = build_dataclass(EvaluatorConfig, {"image_size": train.images.shape[-1], **cfg.model,
                                                  "class_names": train.class_names, "dataset": cfg.dataset,
                                                  "num_classes": len(train.class_names), "in_channels": train.images.shape[1]}, "model")
    model = EvaluatorNet(model_cfg)
    steps_per_epoch = len(train.images) // ts.batch_size
    total = int(math.ceil(ts.epochs * steps_per_epoch))
    opt = torch.optim.AdamW(model.parameters(), lr=ts.lr, weight_decay=ts.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=ts.lr, total_steps=total, pct_start=0.15)
    trainer = Trainer(acc, model, [Group(opt, scheduler=sched)], steps=total, save_every=ts.save_every, ema_of=model,
                      ema_decay=ts.ema_decay, run_dir=args.run_dir or f"runs/{cfg.name}", resume=args.resume, desc=cfg.name)
    batches = trainer.batches((train.images, train.labels), ts.batch_size, ts.seed)
    model.train()
    for _ in trainer:
        # The same augmented global batch on every process (generator seeded by the step), then each takes its slice.
        x, y = next(batches)
        gen = trainer.generator(ts.seed, per_process=False)
        x = random_shift_all(x, ts.shift, gen)
        if ts.hflip:
            x = random_hflip(x, gen)
        x, y = trainer.shard(x, y)
        stats = trainer.optimise({"loss": F.cross_entropy(trainer.module(x), y, label_smoothing=0.05)})
        trainer.log(stats, postfix={"loss": f"{stats['loss']:.3f}", "epoch": trainer.run.state.epoch})
    ema = trainer.ema
    if acc.is_main_process:
        val_acc = accuracy(ema.shadow, val.images, val.labels)
        print(f"validation accuracy (EMA): {val_acc:.4f}")
        card = ModelCard(
            summary=f"Reference {cfg.dataset} classifier ({len(train.class_names)} classes); its penultimate features define the studio's FD.",
            body=(f"Classes: {', '.join(train.class_names)}.\n\nValidation accuracy during training (EMA weights, a split of the "
                  f"training data): {val_acc:.4f}. The held-out test accuracy below is measured by "
                  f"`python -m train.evaluate {cfg.name}`.\n\nReproduce: `accelerate launch train/evaluator.py --config {args.config}`."
                  f"\n\nData: {DATA_CREDITS[cfg.dataset]}"),
            tags=["evaluator", cfg.dataset], pipeline_tag="image-classification",
        )
        path = trainer.export(cfg.name, ema.shadow, card, export_dir=args.export_dir,
                              extra={"data": {"name": cfg.dataset}, "validation_accuracy": val_acc})
        print(f"Exported EMA weights to {path}")


if __name__ == "__main__":
    main()
