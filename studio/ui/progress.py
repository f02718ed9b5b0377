"""One progress bar for a request that runs several chains in turn (CDRL's levels, then DRL's).

Gradio's own counter restarts whenever a streaming handler yields a preview, and a tqdm bar per chain
restarts at every chain. ``RequestProgress`` instead counts every Langevin step of the whole request
(heard through ``studio.langevin.step_listener``), names the stage and the step in the bar's text, and
shows the time since the request began with an estimate of what is left that only counts down.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence


@dataclass(frozen=True)
class Stage:
    label: str  # e.g. "CDRL level 3 (3 of 6)"
    steps: int  # Langevin steps of this stage's chain (0: no chain, e.g. initializer only)


class RequestProgress:
    """Counts steps over ``stages`` and reports ``(done, total)`` with a text to ``report`` (a gr.Progress)."""

    def __init__(self, stages: Sequence[Stage], report: Callable | None = None, clock: Callable[[], float] = time.monotonic,
                 every: float = 0.1):
        self.stages = [s for s in stages if s.steps > 0]
        self.total = sum(s.steps for s in self.stages)
        self.report, self.clock, self.every = report, clock, every
        self.start = clock()
        self.done = 0
        self._eta: float | None = None
        self._eta_at = self.start
        self._reported = -float("inf")

    def step(self, k: int, steps: int) -> None:
        """A ``step_listener``: one Langevin step of the current chain is done. Reported at most every ``every``
        seconds (and at the last step): a small model's steps take microseconds, and a message per step would
        keep the server's event loop from other users."""
        self.done = min(self.done + 1, self.total)
        now = self.clock()
        if self.report is not None and (now - self._reported >= self.every or self.done == self.total):
            self._reported = now
            self.report((self.done, self.total), desc=self.text(), unit="steps")

    def stage(self) -> tuple[Stage | None, int]:
        """The stage the last finished step belongs to, and the step within it (1-based)."""
        left = self.done
        for s in self.stages:
            if left <= s.steps:
                return s, left
            left -= s.steps
        return (self.stages[-1], self.stages[-1].steps) if self.stages else (None, 0)

    def eta(self) -> float | None:
        """Seconds left at the rate so far; never more than the last estimate minus the time since it."""
        if not self.done:
            return None
        now = self.clock()
        estimate = (now - self.start) / self.done * (self.total - self.done)
        if self._eta is not None:
            estimate = min(estimate, max(0.0, self._eta - (now - self._eta_at)))
        self._eta, self._eta_at = estimate, now
        return estimate

    def text(self) -> str:
        stage, k = self.stage()
        where = f"{stage.label}, step {k}/{stage.steps}" if stage else "starting"
        eta = self.eta()
        left = "" if eta is None else (f", about {eta:.0f} s left" if eta >= 0.5 else ", finishing")
        return f"{where} · {self.clock() - self.start:.1f} s{left}"
