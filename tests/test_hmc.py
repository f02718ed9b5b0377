"""studio.hmc: analytic checks on Gaussians (stationarity, the known bias without the Metropolis test),
the exact match with studio.langevin at one leapfrog step, acceptance against step size, per-sample
seeds, the Trace it records, and bad input."""
import math

import pytest
import torch

import studio
from studio.errors import SamplingError
from studio.hmc import HMCTrace, hmc
from studio.langevin import langevin, make_generators
from studio.toy import potential

MU, SD = 1.0, 2.0


def gaussian_1d(x):
    return (x[:, 0] - MU) ** 2 / (2 * SD**2)


def _moments_ok(x, mean, var, n_sigma=4.0):
    """Mean and variance of independent chains within n_sigma standard errors of the exact values."""
    n = x.shape[0]
    se_mean, se_var = math.sqrt(var / n), var * math.sqrt(2 / (n - 1))
    return abs(float(x.mean()) - mean) < n_sigma * se_mean and abs(float(x.var()) - var) < n_sigma * se_var


def test_exported_beside_langevin():
    assert studio.hmc is hmc and "hmc" in studio.__all__


def test_detailed_balance_keeps_the_gaussian_stationary():
    """Chains started from the exact N(1, 4) stay distributed as N(1, 4) after many steps with a large
    step (acceptance ~0.75, so the Metropolis test is doing real work), and chains started far away reach it."""
    g = torch.Generator().manual_seed(0)
    x0 = MU + SD * torch.randn(4000, 1, generator=g)
    x, trace = hmc(gaussian_1d, x0, 30, 3.0, 3, generator=g)
    assert 0.6 < trace.mean_accept_prob() < 0.9
    assert _moments_ok(x, MU, SD**2)
    far, _ = hmc(gaussian_1d, torch.full((4000, 1), -6.0), 60, 1.1, 4, generator=torch.Generator().manual_seed(1))
    assert _moments_ok(far, MU, SD**2)


def test_metropolis_removes_the_known_leapfrog_bias():
    """With one leapfrog step and no Metropolis test, HMC is the unadjusted Langevin algorithm, whose
    stationary variance on N(mu, s^2) is s^2 / (1 - eps^2 / (4 s^2)); the test brings it back to s^2."""
    eps = 2.0
    biased = SD**2 / (1 - eps**2 / (4 * SD**2))  # 5.33 instead of 4
    x0 = MU + SD * torch.randn(6000, 1, generator=torch.Generator().manual_seed(2))
    off, trace_off = hmc(gaussian_1d, x0, 150, eps, 1, metropolis=False, generator=torch.Generator().manual_seed(3))
    on, trace_on = hmc(gaussian_1d, x0, 150, eps, 1, generator=torch.Generator().manual_seed(3))
    assert _moments_ok(off, MU, biased) and not _moments_ok(off, MU, SD**2)
    assert _moments_ok(on, MU, SD**2)
    assert bool(trace_off.acceptance_matrix().eq(1).all()) and trace_off.mean_accept_prob() < 1  # the error is still measured
    assert trace_on.acceptance_rate().mean() < 1


def test_one_leapfrog_step_without_metropolis_is_langevin():
    """x' = x - eps^2/2 grad E(x) + eps p: exactly studio.langevin with step_size eps^2/2, noise_std eps."""
    def energy(x):
        return x.pow(2).sum(1) / 2 + x[:, 0] ** 4 / 4

    x0 = torch.randn(8, 2, generator=torch.Generator().manual_seed(4))
    a, ta = hmc(energy, x0, 25, 0.3, 1, metropolis=False, generator=make_generators("0-7"), record_every=5)
    b, tb = langevin(energy, x0, steps=25, step_size=0.045, noise_std=0.3, generator=make_generators("0-7"), record_every=5)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ta.energy_matrix(), tb.energy_matrix(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ta.grad_norm_matrix(), tb.grad_norm_matrix(), atol=1e-5, rtol=1e-5)
    assert ta.frame_steps == tb.frame_steps == [0, 5, 10, 15, 20, 25]


def test_acceptance_falls_as_the_step_size_grows():
    banana = potential("toy-rosenbrock")
    x0 = banana.reference_samples(512, seed=5)
    rates = []
    for eps in (0.01, 0.03, 0.06, 0.12, 0.25):
        _, trace = hmc(banana, x0, 20, eps, 5, generator=torch.Generator().manual_seed(6))
        rates.append(trace.mean_accept_prob())
    assert all(a > b for a, b in zip(rates, rates[1:])), rates
    assert rates[0] > 0.95 and rates[-1] < 0.5, rates


def test_each_sample_depends_only_on_its_own_seed():
    mixture = potential("toy-double-well")
    x_all, trace_all = mixture.sample_hmc(seeds="0-7", steps=15, step_size=0.2, leapfrog_steps=4)
    x_one, trace_one = mixture.sample_hmc(seeds="5", steps=15, step_size=0.2, leapfrog_steps=4)
    torch.testing.assert_close(x_all[5:6], x_one)
    torch.testing.assert_close(trace_all.acceptance_matrix()[:, 5:6], trace_one.acceptance_matrix())
    again, _ = mixture.sample_hmc(seeds="0-7", steps=15, step_size=0.2, leapfrog_steps=4)
    assert torch.equal(again, x_all)


def test_trace_records_energies_gradients_frames_and_acceptance():
    x0 = torch.randn(6, 2, generator=torch.Generator().manual_seed(7))
    seen = []
    x, trace = hmc(lambda z: z.pow(2).sum(1) / 2, x0, 12, 0.4, 3, generator=make_generators("0-5"), record_every=4,
                   callback=lambda info: seen.append(info["step"]))
    assert isinstance(trace, HMCTrace) and trace.num_steps == 12 and seen == list(range(12))
    assert trace.energy_matrix().shape == trace.grad_norm_matrix().shape == trace.acceptance_matrix().shape == (12, 6)
    assert trace.acceptance_rate().shape == (12,) and trace.gradient_evaluations == 12 * 3 + 1
    torch.testing.assert_close(trace.energy_matrix()[0], x0.pow(2).sum(1) / 2)
    torch.testing.assert_close(trace.grad_norm_matrix()[0], x0.norm(dim=1))  # grad of |x|^2/2 is x
    assert trace.frame_steps == [0, 4, 8, 12] and torch.equal(trace.frames[-1], x) and torch.equal(trace.frames[0], x0)
    one = trace.select(2)
    assert isinstance(one, HMCTrace) and one.acceptance_matrix().shape == (12, 1)
    # a rejected proposal leaves the state unchanged: energies only change where a proposal was taken
    e, acc = trace.energy_matrix(), trace.acceptance_matrix().bool()
    assert torch.equal(e[1:][~acc[:-1]], e[:-1][~acc[:-1]])


def test_gradients_under_no_grad_and_parameters_untouched():
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        x, trace = hmc(lambda z: net(z).squeeze(1) + z.pow(2).sum(1), torch.zeros(4, 2), 5, 0.1, 3, modules=[net],
                       generator=torch.Generator().manual_seed(8))
    assert trace.num_steps == 5 and torch.isfinite(x).all()
    assert all(p.requires_grad and p.grad is None for p in net.parameters())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_non_finite_proposals_are_rejected_with_the_test_and_an_error_without():
    def walled(x):  # NaN outside |x| < 2: log of a negative number
        return x[:, 0] ** 2 / 2 + 0.0 * torch.log(2 - x[:, 0].abs())

    x0 = torch.zeros(64, 1)
    x, trace = hmc(walled, x0, 40, 0.8, 4, generator=torch.Generator().manual_seed(9))
    assert bool((x.abs() < 2).all()) and trace.mean_accept_prob() < 1
    with pytest.raises(SamplingError, match="HMC diverged at step .*Metropolis test on"):
        hmc(walled, x0, 40, 0.8, 4, metropolis=False, generator=torch.Generator().manual_seed(9))


@pytest.mark.parametrize("kwargs, message", [
    ({"step_size": 0.0}, "step_size must be positive"),
    ({"step_size": -1.0}, "step_size must be .*between 0 and 1000"),
    ({"step_size": float("nan")}, "step_size must be .*between"),
    ({"step_size": "big"}, "step_size must be .*between 0 and 1000"),
    ({"leapfrog_steps": 0}, "leapfrog_steps must be .*between 1 and 1000"),
    ({"leapfrog_steps": 1001}, "leapfrog_steps must be .*between 1 and 1000"),
    ({"leapfrog_steps": 2.5}, "leapfrog_steps must be a whole number"),
    ({"steps": -1}, "steps must be a non-negative integer"),
    ({"metropolis": "yes"}, "metropolis must be True or False"),
    ({"x0": torch.zeros(3, 2, dtype=torch.long)}, "x0 must be a floating-point tensor"),
    ({"x0": torch.zeros(0, 2)}, "x0 must be a non-empty batch"),
    ({"generator": make_generators("0-1")}, "Got 2 generators for a batch of 3"),
])
def test_bad_arguments_are_named(kwargs, message):
    args = {"x0": torch.zeros(3, 2), "steps": 2, "step_size": 0.1, "leapfrog_steps": 2, **kwargs}
    with pytest.raises(SamplingError, match=message):
        hmc(lambda z: z.pow(2).sum(1), args.pop("x0"), args.pop("steps"), args.pop("step_size"), args.pop("leapfrog_steps"), **args)
