"""The one training loop of every train script.

A script supplies its losses (a ``LossModule``), its parameter groups (``Group``: an optimiser, the loss it
minimises, its clipping and its schedule) and its data; the ``Trainer`` owns the rest:

* the run folder: ``--resume`` (``train.common.Run``: accelerate's ``save_state`` layout and ``run.json``),
  the skip of the batches a resumed epoch had already used (``batches``), periodic saves with replica
  checksums, a save at the end;
* each optimisation step (``optimise``), in the order the scripts always used: zero the gradients, one
  backward pass of the total loss, clip each group, set each group's learning rate, step the optimisers
  (a group whose loss is absent this step is left alone) and schedulers, update the EMA, count the step,
  check that the losses are finite;
* the statistics and the clock, agreed by all processes (their mean), so every decision taken from them
  (a divergence guard, a time-based learning rate, the ``max_minutes`` stop) is the same on every process;
* the loss log and the progress bar (``log``), and the export (``export``).

Usage (``train/cdrl.py`` is a complete example)::

    trainer = Trainer(acc, LossModule(model.training_losses, model=model), [Group(opt, loss="ebm_loss", clip=1.0)],
                      steps=ts.steps, save_every=ts.save_every, max_minutes=ts.max_minutes,
                      ema_of=model, ema_decay=ts.ema_decay, run_dir=run_dir, resume=args.resume, desc=cfg.name)
    batches = trainer.batches((images, labels), ts.batch_size, seed)
    for _ in trainer:                      # saves, the time budget and the bar happen between iterations
        x, y = trainer.shard(*next(batches))
        stats = trainer.optimise(trainer.module(x, y, generator=trainer.generator(seed)))
        trainer.log(stats)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import torch
from torch import nn
from tqdm.auto import tqdm

from studio.hub import ModelCard
from train.common import EMA, Run, check_finite, export, infinite_batches, shard, step_generator


class LossModule(nn.Module):
    """Routes a method's losses through ``forward()``, so DDP (several processes) averages the gradients.

    ``parts`` are registered under their names (the saved state's keys are ``<name>.<parameter>``, e.g.
    ``model.ebm.weight``); ``losses`` computes the loss dict from the forward arguments, normally a bound
    method of the model.
    """

    def __init__(self, losses: Callable[..., dict[str, torch.Tensor]], **parts: nn.Module):
        super().__init__()
        for name, part in parts.items():
            self.add_module(name, part)
        self.losses = losses

    def forward(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        return self.losses(*args, **kwargs)


@dataclass
class Group:
    """One optimiser and how the Trainer drives it.

    ``loss``: the key of the loss it minimises (the total loss is the sum of the groups' losses present in
    a step's dict); a step without that key leaves this optimiser alone. ``clip``: the largest gradient norm
    of its parameters (0 = no clipping). Its schedule is either ``scheduler`` (a torch scheduler of this
    optimiser, stepped after every step and saved with the run's state) or ``lr(base, step, elapsed_seconds)``:
    the rate of each parameter group from its configured rate ``base``, set before every step (for schedules
    that follow the wall clock, see ``train.schedules``).
    """

    optimizer: torch.optim.Optimizer
    loss: str = "loss"
    clip: float = 0.0
    scheduler: Any = None
    lr: Callable[[float, int, float], float] | None = None


class RunFolder(Protocol):
    """What the Trainer needs of a run folder: ``train.common.Run``, or CF-EBM's ``StageRun``."""

    dir: Path
    state: Any  # has .step

    def elapsed(self) -> float: ...
    def log(self, stats: dict) -> None: ...
    def save(self) -> None: ...


class Trainer:
    """See the module docstring. Every process must build it and iterate it (it takes collective decisions)."""

    def __init__(self, acc, module: nn.Module, groups: list[Group], *, steps: int, save_every: int, desc: str,
                 max_minutes: float = 0.0, ema_of: nn.Module | None = None, ema_decay: float = 0.999,
                 run_dir: str | Path | None = None, resume: bool = False, run: RunFolder | None = None, log_every: int = 1):
        if (run is None) == (run_dir is None):
            raise ValueError("Pass either run_dir (a train.common.Run is made) or run.")
        if any(g.scheduler is not None and g.lr is not None for g in groups):
            raise ValueError("A group is scheduled by its scheduler or by lr, not both.")
        self.acc = acc
        self.groups = list(groups)
        self._base_lrs = [[pg["lr"] for pg in g.optimizer.param_groups] for g in self.groups]  # as configured, before a resume
        prepared = acc.prepare(module, *[g.optimizer for g in self.groups])
        self.module, *optimizers = prepared if self.groups else (prepared,)
        for group, optimizer in zip(self.groups, optimizers):
            group.optimizer = optimizer
            if group.scheduler is not None:
                group.scheduler = acc.prepare(group.scheduler)
        # After prepare: with several processes, every replica's average starts from the same (rank 0's) weights.
        self.ema_of = ema_of
        self.ema = EMA(ema_of, ema_decay).to(acc.device) if ema_of is not None else None
        if run is None:
            if self.ema is not None:
                acc.register_for_checkpointing(self.ema)
            run = Run(acc, Path(run_dir), resume)
        self.run = run
        self.total_steps, self.save_every, self.max_minutes, self.log_every = steps, save_every, max_minutes, log_every
        self.out_of_time = False
        self._per_epoch = 0
        _, self.clock = self._agree({}, self.run.elapsed())  # seconds of training so far, the same on every process
        self.bar = tqdm(total=steps, initial=self.step, disable=not acc.is_main_process, desc=desc, dynamic_ncols=True)

    # -- where the run stands -------------------------------------------------------------------------

    @property
    def step(self) -> int:
        """Optimisation steps done (the next step's index)."""
        return self.run.state.step

    @property
    def is_main(self) -> bool:
        return self.acc.is_main_process

    @property
    def rank(self) -> int:
        return self.acc.process_index

    @property
    def device(self) -> torch.device:
        return self.acc.device

    # -- data ----------------------------------------------------------------------------------------

    def batches(self, tensors: tuple[torch.Tensor, ...], batch_size: int, seed: int) -> Iterator[tuple[torch.Tensor, ...]]:
        """Endless shuffled global batches (``infinite_batches``) from where the run stands: a resumed run skips
        the batches its epoch had already used. The run's epoch counter follows these batches."""
        self._per_epoch = len(tensors[0]) // batch_size
        batches = infinite_batches(tensors, batch_size, seed, start_epoch=self.run.state.epoch)
        for _ in range(self.step % self._per_epoch if self.run.resumed else 0):
            next(batches)
        return batches

    def generator(self, seed: int, *, per_process: bool = True, device: str | torch.device | None = None) -> torch.Generator:
        """A generator seeded by (seed, step) and, ``per_process``, the rank (on the training device unless
        ``device`` says otherwise); without ``per_process`` it is the same CPU generator on every process, for
        drawing the global batch. Either way a resumed run draws what the uninterrupted one would."""
        if not per_process:
            return step_generator(seed, self.step)
        return step_generator(seed, self.step, self.rank, self.device if device is None else device)

    def shard(self, *tensors: torch.Tensor):
        """This process's slice of a global batch (``train.common.shard``, traced), on the training device."""
        parts = shard(self.acc, *tensors, trace_dir=self.run.dir, step=self.step + 1)
        parts = parts if isinstance(parts, tuple) else (parts,)
        moved = tuple(p.to(self.device) for p in parts)
        return moved if len(moved) > 1 else moved[0]

    # -- the loop ------------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[int]:
        """Yields the step index until ``steps``; after each step: the bar, the time budget and the saves."""
        while self.step < self.total_steps:
            before = self.step
            yield before
            if self.step != before + 1:
                raise RuntimeError("Each iteration of a Trainer must call optimise() exactly once.")
            self.bar.update(1)
            self.out_of_time = bool(self.max_minutes) and self.clock > self.max_minutes * 60
            if self.step % self.save_every == 0 or self.step == self.total_steps or self.out_of_time:
                self.run.save()
            if self.out_of_time:
                self.bar.write(f"Stopping at step {self.step}: reached max_minutes={self.max_minutes}. Resume with --resume.")
                break
        self.bar.close()

    def optimise(self, losses: dict[str, torch.Tensor], total: torch.Tensor | None = None) -> dict[str, float]:
        """One optimisation step on ``total`` (default: the sum of the groups' losses in ``losses``). Returns the
        losses as floats, averaged over the processes, after checking that they are finite."""
        active = [g for g in self.groups if g.loss in losses]
        if total is None:
            total = losses[active[0].loss]
            for g in active[1:]:
                total = total + losses[g.loss]
        for g in self.groups:
            g.optimizer.zero_grad(set_to_none=True)
        self.acc.backward(total)
        if self.acc.sync_gradients:
            for g in active:
                if g.clip:
                    self.acc.clip_grad_norm_([p for pg in g.optimizer.param_groups for p in pg["params"]], g.clip)
        for g, bases in zip(self.groups, self._base_lrs):
            if g.lr is not None:
                for pg, base in zip(g.optimizer.param_groups, bases):
                    pg["lr"] = g.lr(base, self.step, self.clock)
        for g in active:
            g.optimizer.step()
        for g in self.groups:
            if g.scheduler is not None:
                g.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.ema_of)
        self.run.state.step += 1
        if self._per_epoch:
            self.run.state.epoch = self.step // self._per_epoch
        stats, self.clock = self._agree({k: float(v.detach()) for k, v in losses.items()}, self.run.elapsed())
        check_finite(self.step, **stats)
        return stats

    def _agree(self, stats: dict[str, float], elapsed: float) -> tuple[dict[str, float], float]:
        """The statistics and the clock averaged over the processes (one collective)."""
        if self.acc.num_processes == 1:
            return stats, elapsed
        vec = torch.tensor([*stats.values(), elapsed], dtype=torch.float64, device=self.device)
        *values, elapsed = self.acc.reduce(vec, reduction="mean").tolist()
        return dict(zip(stats, values)), elapsed

    # -- output --------------------------------------------------------------------------------------

    def log(self, stats: dict[str, float], postfix: dict | None = None) -> None:
        """Every ``log_every`` steps: a line of the run's loss log and the bar's numbers (default: all of ``stats``)."""
        if self.step % self.log_every == 0:
            self.run.log(stats)
            self.bar.set_postfix(postfix if postfix is not None else {k: f"{v:.3g}" for k, v in stats.items()})

    def write(self, text: str) -> None:
        """A message above the progress bar."""
        self.bar.write(text)

    def export(self, name: str, model: nn.Module, card: ModelCard, *, export_dir: str | None, extra: dict | None = None,
               wall_seconds: float | None = None) -> Path:
        """``train.common.export`` with this run's steps and wall time (call it on the main process)."""
        seconds = self.run.elapsed() if wall_seconds is None else wall_seconds
        return export(name, model, card, wall_seconds=seconds, steps=self.step, export_dir=export_dir, extra=extra)
