"""Request deadlines (studio.runtime): samplers stop themselves between steps once a deadline passes."""
from __future__ import annotations

import threading
import time

import pytest
import torch

from studio import langevin
from studio.runtime import RequestTimeout, check_deadline, deadline


def slow_quadratic(x):
    time.sleep(0.002)
    return 0.5 * (x ** 2).flatten(1).sum(1)


def test_langevin_stops_at_the_deadline_with_a_value_error():
    start = time.monotonic()
    with deadline(0.05), pytest.raises(RequestTimeout, match="time limit of 0.05 s"):
        langevin(slow_quadratic, torch.zeros(2, 3), steps=10_000, step_size=0.01, noise_std=0.0)
    assert time.monotonic() - start < 2.0
    assert issubclass(RequestTimeout, ValueError)


def test_no_deadline_outside_the_block_and_none_leaks_to_other_threads():
    with deadline(0.0):
        time.sleep(0.001)
        with pytest.raises(RequestTimeout):
            check_deadline()
        seen = []
        worker = threading.Thread(target=lambda: seen.append(check_deadline() is None))  # a fresh context
        worker.start(), worker.join()
        assert seen == [True]
    check_deadline()  # the block is over
    x, trace = langevin(slow_quadratic, torch.ones(1, 2), steps=3, step_size=0.1, noise_std=0.0)
    assert trace.num_steps == 3


def test_render_and_ddim_check_the_deadline():
    from studio.egc import EGC, EGCConfig
    from studio.render import poses_to_c2w, render_image
    from test_egc import TINY

    torch.manual_seed(0)
    egc = EGC(EGCConfig(**TINY))
    with deadline(0.0), pytest.raises(RequestTimeout):
        egc.generate([0], seeds="0", steps=5)
    c2w = poses_to_c2w(torch.tensor([30.0]), torch.tensor([20.0]))
    sphere = lambda p: (torch.relu(1 - p.norm(dim=-1)) * 50, torch.full_like(p, 0.5))  # noqa: E731 (density, colour)
    with deadline(0.0), pytest.raises(RequestTimeout):
        render_image(sphere, c2w, 16, 8)
    assert render_image(sphere, c2w, 16, 8)["rgb"].shape[0] == 1
