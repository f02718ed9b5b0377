"""Learning-rate schedule pieces the train scripts compose (each script's schedule is one line of these).

``warmup``, ``cosine_decay`` and ``linear_decay`` return factors on the configured rate; ``configured`` is a
``train.trainer.Group.lr`` that keeps the rate. A budget is whichever of ``steps`` and ``max_minutes`` runs out
first (``budget_used``), so a run stopped by the clock still ends on a small rate.
"""
from __future__ import annotations

import math


def warmup(step: int, steps: int) -> float:
    """Linear warm-up over the first ``steps`` steps: (step + 1) / steps, then 1."""
    return min(1.0, (step + 1) / max(1, steps))


def cosine_decay(t: float, final: float) -> float:
    """Half a cosine from 1 (t = 0) to ``final`` (t >= 1)."""
    return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def linear_decay(t: float, start: float, final: float) -> float:
    """1 until ``start``, then a straight line down to ``final`` at t = 1."""
    if t <= start:
        return 1.0
    return 1.0 - (1.0 - final) * min(1.0, (t - start) / max(1e-9, 1.0 - start))


def budget_used(step: int, steps: int, elapsed_seconds: float, max_minutes: float) -> float:
    """The fraction of the budget spent: the larger of the step fraction and (with max_minutes) the time fraction."""
    return max(step / steps, elapsed_seconds / (60 * max_minutes) if max_minutes else 0.0)


def configured(base: float, step: int, elapsed_seconds: float) -> float:
    """The configured rate at every step (set each step, so a resumed state cannot bring back an older rate)."""
    return base
