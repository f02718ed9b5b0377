"""The Energy lab's measured bars (issue 27). Slow: ``RUN_SLOW=1 python -m pytest tests/test_lab_bars.py -s``.

* Two moons, 500 points: each objective's trained energy (the lab's defaults, all 2,000 steps), sampled with
  Langevin (2,000 chains from N(0, 2^2), 2,000 steps of size 0.003): the fraction of samples within 0.2 of a
  data point must reach 0.9 for contrastive divergence and denoising score matching (persistent CD and
  sliced score matching are reported).
* Rosenbrock at equal gradient evaluations: the error of the second moments against their closed form,
  HMC against Langevin (HMC must be lower).
* Time to the first streamed landscape (bar: 1 s) and the compute of a full 2,000-step run (bar: 10 s),
  with the load they were measured under.

Every number goes to ``runs/reports/lab_bars.json`` (``STUDIO_REPORT_DIR`` moves it) and is printed.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import torch

from studio import lab
from studio.lab import LabConfig, fraction_near, train, train_stream
from studio.pointsets import preset
from studio.runtime import usable_cores
from studio.toy import langevin_vs_hmc, potential

pytestmark = pytest.mark.slow
REPORT: dict = {}
BAR = {"cd": 0.9, "dsm": 0.9}  # the bar; pcd and ssm are reported


def _conditions() -> dict:
    return {"load_average_1min": round(os.getloadavg()[0], 2), "usable_cores": usable_cores(), "torch_threads": torch.get_num_threads()}


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    out = Path(os.environ.get("STUDIO_REPORT_DIR", Path(__file__).resolve().parents[1] / "runs" / "reports"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "lab_bars.json").write_text(json.dumps(REPORT, indent=1))
    print("\n" + json.dumps(REPORT, indent=1))


@pytest.mark.parametrize("objective", ["cd", "pcd", "dsm", "ssm"])
def test_two_moons_samples_land_on_the_data(objective, monkeypatch):
    # The quality bar is about a full run, so the compute budget may not cut it short on a loaded machine
    # (the budget has its own test below).
    monkeypatch.setitem(lab.RANGES, "max_seconds", (0.01, 1e4))
    points = preset("two moons", 500, seed=0)
    run = train(points, LabConfig(objective=objective, max_seconds=1e4))
    assert run.step == 2000 and not run.message
    x, _ = run.model.sample(seeds="0-1999", steps=2000, step_size=0.003, record_every=0)
    near = fraction_near(x, points, 0.2)
    REPORT[f"two_moons_{objective}"] = {"fraction_within_0.2": round(near, 4), "train_cpu_seconds": round(run.seconds, 2),
                                         "sampler": run.config.sampler, **_conditions()}
    if objective in BAR:
        assert near >= BAR[objective], f"{objective}: {near:.3f} of the samples within 0.2 of a data point"


def test_rosenbrock_second_moments_hmc_against_langevin():
    banana = potential("toy-rosenbrock")
    budget, leap = 2000, 20
    (x_l, t_l), (x_h, t_h) = langevin_vs_hmc(banana, "0-499", budget, 0.002, 0.05, leap, record_every=leap)

    def second_half(trace):  # the chains' states over the second half of their run, pooled
        frames = torch.stack(trace.frames)
        return frames[len(frames) // 2:].reshape(-1, 2)

    errors = {"langevin": banana.second_moment_error(second_half(t_l)), "hmc": banana.second_moment_error(second_half(t_h))}
    REPORT["rosenbrock"] = {"gradient_evaluations_per_chain": budget, "chains": 500, "langevin_step": 0.002,
                            "hmc_step": 0.05, "leapfrog_steps": leap, "hmc_acceptance": round(t_h.mean_accept_prob(), 4),
                            "second_moment_error": {k: round(v, 4) for k, v in errors.items()},
                            "exact_second_moments": banana.second_moments().tolist()}
    assert errors["hmc"] < errors["langevin"]


def test_first_landscape_and_a_full_run_within_the_bars():
    points = preset("two moons", 500, seed=0)
    train(points, LabConfig(steps=5, update_every=5))  # the process's one-off costs (torch's first Adam)
    start = time.perf_counter()
    stream = train_stream(points, LabConfig())
    next(stream)
    first = time.perf_counter() - start
    for last in stream:
        pass
    wall = time.perf_counter() - start
    REPORT["timing"] = {"first_landscape_seconds": round(first, 3), "full_run_steps": last.step,
                        "full_run_cpu_seconds": round(last.seconds, 2), "full_run_wall_seconds": round(wall, 2),
                        "objective": last.config.objective, "sampler": last.config.sampler, "message": last.message, **_conditions()}
    assert first <= 1.0
    # Compute is CPU time of the training thread; on an oversubscribed virtual machine that clock runs slow
    # too (it counts the time a busy host takes the core away), so the 10 s bar is asserted when cores are free.
    if os.getloadavg()[0] < usable_cores():
        assert last.step == 2000 and last.seconds <= 10.0
