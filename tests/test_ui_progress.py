"""RequestProgress: one bar over every chain of a request, with an ETA that only counts down (no app needed)."""
from studio.langevin import langevin, step_listener
from studio.ui.progress import RequestProgress, Stage

import torch


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_bar_counts_every_step_of_every_stage_and_names_where_it_is():
    clock, reports = Clock(), []
    bar = RequestProgress([Stage("CDRL level 1 (1 of 2)", 2), Stage("skipped", 0), Stage("DRL level 0 (2 of 2)", 3)],
                          lambda frac, desc, unit: reports.append((frac, desc)), clock, every=0.0)
    for k, steps in [(1, 2), (2, 2), (1, 3), (2, 3), (3, 3)]:
        clock.now += 1.0
        bar.step(k, steps)
    assert [f for f, _ in reports] == [(i, 5) for i in range(1, 6)]
    assert reports[1][1].startswith("CDRL level 1 (1 of 2), step 2/2 · 2.0 s")
    assert reports[2][1].startswith("DRL level 0 (2 of 2), step 1/3 · 3.0 s, about 2 s left")
    assert reports[-1][1].endswith("finishing")


def test_the_eta_never_goes_up_when_later_steps_are_slower():
    clock = Clock()
    bar = RequestProgress([Stage("a", 10)], None, clock)
    etas = []
    for i in range(10):
        clock.now += 1.0 if i < 5 else 4.0  # the second half is four times slower
        bar.step(i + 1, 10)
        etas.append(bar.eta())
    assert all(b <= a for a, b in zip(etas, etas[1:])), etas


def test_reports_are_throttled_but_the_last_step_is_always_reported():
    clock, reports = Clock(), []
    bar = RequestProgress([Stage("a", 100)], lambda frac, desc, unit: reports.append(frac), clock, every=0.1)
    for i in range(100):
        clock.now += 0.001  # a tiny model's steps: 100 steps in 0.1 s
        bar.step(i + 1, 100)
    assert 1 <= len(reports) <= 3 and reports[-1] == (100, 100)


def test_step_listener_hears_every_langevin_step_in_its_context_only():
    heard = []
    energy = lambda x: (x ** 2).sum(1)  # noqa: E731
    with step_listener(lambda k, n: heard.append((k, n))):
        langevin(energy, torch.zeros(2, 2), steps=3, step_size=0.1, noise_std=0.0)
    langevin(energy, torch.zeros(2, 2), steps=2, step_size=0.1, noise_std=0.0)  # outside: not heard
    assert heard == [(1, 3), (2, 3), (3, 3)]
