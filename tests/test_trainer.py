"""train.trainer.Trainer on tiny models, in-process (a real CPU Accelerator): what it does each step and around it.

The scripts' end-to-end runs (test_training*.py, test_multiprocess_training.py, the method tests) cover the Trainer
as the scripts use it; these tests pin its own rules: which optimiser steps, the rate it sets, clipping, saves, the
time budget, the resume skip, and the schedule and augmentation pieces.
"""
import json

import pytest
import torch
from torch import nn

from train.augment import random_hflip, random_shift_all, random_shift_each
from train.common import Run, infinite_batches, make_accelerator
from train.schedules import budget_used, configured, cosine_decay, linear_decay, warmup
from train.trainer import Group, LossModule, Trainer

X = torch.ones(4, 3)


@pytest.fixture
def accelerator():
    """A factory of Accelerators (one per simulated process start); accelerate's global state is reset after."""
    from accelerate.state import AcceleratorState

    yield lambda: make_accelerator(cpu=True)
    AcceleratorState._reset_state(True)


class Pair(nn.Module):
    """Two linear maps, each with a loss of its own; a's loss reaches b's parameters too."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Linear(3, 1), nn.Linear(3, 1)

    def losses(self, x: torch.Tensor, with_b: bool = True, scale: float = 1.0) -> dict[str, torch.Tensor]:
        out = {"a_loss": scale * (self.a(x) + 0.1 * self.b(x)).pow(2).mean()}
        if with_b:
            out["b_loss"] = (self.b(x) - 1).pow(2).mean()
        return out


def _trainer(acc, run_dir, model: Pair, groups, resume=False, **settings) -> Trainer:
    settings = {"steps": 4, "save_every": 100, "desc": "test", **settings}
    return Trainer(acc, LossModule(model.losses, model=model), groups, run_dir=run_dir, resume=resume, ema_of=model,
                   ema_decay=0.5, **settings)


def _sgd(module: nn.Module, lr: float = 0.1) -> torch.optim.SGD:
    return torch.optim.SGD(module.parameters(), lr=lr)


def test_a_group_whose_loss_is_absent_this_step_is_left_alone(tmp_path, accelerator):
    """b's optimiser minimises b_loss: while a step has no b_loss, b stays put although a_loss has gradients on it."""
    model = Pair()
    start = model.b.weight.detach().clone()
    trainer = _trainer(accelerator(), tmp_path, model, [Group(_sgd(model.a), loss="a_loss"), Group(_sgd(model.b), loss="b_loss")])
    b_at = []
    for step in trainer:
        b_at.append(model.b.weight.detach().clone())
        trainer.log(trainer.optimise(trainer.module(X, with_b=step >= 2)))
    assert torch.equal(b_at[1], start) and torch.equal(b_at[2], start) and not torch.equal(b_at[3], start)
    assert model.b.weight.grad is not None and not torch.equal(model.a.weight, Pair().a.weight)
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [sorted(r) for r in log] == [["a_loss", "step"]] * 2 + [["a_loss", "b_loss", "step"]] * 2
    assert int(trainer.ema.num_updates) == 4 and json.loads((tmp_path / "run.json").read_text())["step"] == 4


def test_the_rate_follows_the_configured_rate_even_after_a_resume(tmp_path, accelerator):
    """lr(base, step, elapsed) is applied from the rate the optimiser was built with in this session, not the one
    a resumed optimiser state brings back."""
    def rates(lr: float, steps: int, resume: bool) -> list[float]:
        model = Pair()
        opt = _sgd(model, lr)
        trainer = _trainer(accelerator(), tmp_path, model, [Group(opt, loss="a_loss", lr=lambda base, step, _: base * (step + 1))],
                           steps=steps, resume=resume)
        seen = []
        for _ in trainer:
            trainer.optimise(trainer.module(X, with_b=False))
            seen.append(opt.param_groups[0]["lr"])
        return seen

    assert rates(0.1, 2, False) == pytest.approx([0.1, 0.2])
    assert rates(0.5, 4, True) == pytest.approx([1.5, 2.0])  # steps 2 and 3 at the new configured rate
    assert configured(0.3, 7, 99.0) == 0.3


def test_clipping_bounds_the_update(tmp_path, accelerator):
    model = Pair()
    before = nn.utils.parameters_to_vector(model.a.parameters()).detach()
    trainer = _trainer(accelerator(), tmp_path, model, [Group(_sgd(model.a, lr=1.0), loss="a_loss", clip=0.5)], steps=1)
    for _ in trainer:
        trainer.optimise(trainer.module(X, with_b=False, scale=1e3))
    change = float((nn.utils.parameters_to_vector(model.a.parameters()).detach() - before).norm())
    assert change == pytest.approx(0.5, rel=1e-5)  # SGD at rate 1 moves by the clipped gradient; the raw one is far larger


def test_saves_every_n_steps_at_the_end_and_when_time_runs_out(tmp_path, accelerator, monkeypatch):
    saved = []
    real_save = Run.save

    def record(self):
        saved.append(self.state.step)
        real_save(self)

    monkeypatch.setattr(Run, "save", record)
    model = Pair()
    trainer = _trainer(accelerator(), tmp_path / "a", model, [Group(_sgd(model.a), loss="a_loss")], steps=5, save_every=2)
    for _ in trainer:
        trainer.optimise(trainer.module(X, with_b=False))
    assert saved == [2, 4, 5] and not trainer.out_of_time

    saved.clear()
    model = Pair()
    trainer = _trainer(accelerator(), tmp_path / "b", model, [Group(_sgd(model.a), loss="a_loss")], steps=5, save_every=100,
                       max_minutes=1e-9)
    done = [trainer.optimise(trainer.module(X, with_b=False)) for _ in trainer]
    assert len(done) == 1 and trainer.out_of_time and saved == [1]


def test_an_iteration_must_take_exactly_one_step(tmp_path, accelerator):
    model = Pair()
    trainer = _trainer(accelerator(), tmp_path, model, [Group(_sgd(model.a), loss="a_loss")])
    with pytest.raises(RuntimeError, match="optimise"):
        for _ in trainer:
            pass


def test_a_resumed_run_continues_the_batch_order(tmp_path, accelerator):
    data = (torch.arange(8.0)[:, None].expand(8, 3).contiguous(),)  # 4 batches of 2 per epoch

    def session(steps: int, resume: bool) -> list[list[float]]:
        model = Pair()
        trainer = _trainer(accelerator(), tmp_path, model, [Group(_sgd(model.a), loss="a_loss")], steps=steps, resume=resume,
                           save_every=3)
        batches, used = trainer.batches(data, 2, seed=5), []
        for _ in trainer:
            x = trainer.shard(*next(batches))
            used.append(x[:, 0].tolist())
            trainer.optimise(trainer.module(x, with_b=False))
        assert trainer.run.state.epoch == steps // 4
        return used

    first, second = session(3, False), session(7, True)
    reference = infinite_batches(data, 2, 5)
    assert first + second == [next(reference)[0][:, 0].tolist() for _ in range(7)]


def test_schedule_pieces():
    assert [warmup(s, 4) for s in (0, 1, 3, 9)] == [0.25, 0.5, 1.0, 1.0] and warmup(0, 0) == 1.0
    assert cosine_decay(0.0, 0.1) == 1.0 and cosine_decay(0.5, 0.1) == pytest.approx(0.55)
    assert cosine_decay(1.0, 0.1) == pytest.approx(0.1) and cosine_decay(3.0, 0.1) == pytest.approx(0.1)
    assert linear_decay(0.4, 0.5, 0.2) == 1.0 and linear_decay(0.75, 0.5, 0.2) == pytest.approx(0.6)
    assert linear_decay(2.0, 0.5, 0.2) == pytest.approx(0.2)
    assert budget_used(50, 100, 0.0, 0.0) == 0.5 and budget_used(50, 100, 540.0, 10.0) == pytest.approx(0.9)
    assert budget_used(50, 100, 60.0, 10.0) == 0.5


def _shifted(x: torch.Tensor, dx: int, dy: int, shift: int) -> torch.Tensor:
    """``x`` moved by (dx - shift, dy - shift) with replicated edges, computed directly."""
    size = x.shape[-1]
    rows = (torch.arange(size) + dy - shift).clamp(0, size - 1)
    cols = (torch.arange(size) + dx - shift).clamp(0, size - 1)
    return x[..., rows, :][..., :, cols]


def test_augmentations():
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    x = torch.randn(32, 2, 6, 6)
    flipped = random_hflip(x, gen())
    mirrored = [bool(torch.equal(f, i.flip(-1))) for f, i in zip(flipped, x)]
    assert all(m or torch.equal(f, i) for m, f, i in zip(mirrored, flipped, x)) and 0 < sum(mirrored) < 32

    def offsets(out: torch.Tensor, shift: int) -> list[tuple[int, int]]:
        found = []
        for o, i in zip(out, x):
            match = [(dx, dy) for dx in range(2 * shift + 1) for dy in range(2 * shift + 1) if torch.equal(o, _shifted(i, dx, dy, shift))]
            assert match, "an output is not a shifted copy of its input"
            found.append(match[0])
        return found

    each, together = offsets(random_shift_each(x, 2, gen()), 2), offsets(random_shift_all(x, 2, gen()), 2)
    assert len(set(each)) > 1 and len(set(together)) == 1  # one offset per image, or one for the batch
    g = gen()
    state = g.get_state()
    assert random_shift_each(x, 0, g) is x and random_shift_all(x, 0, g) is x and torch.equal(g.get_state(), state)
