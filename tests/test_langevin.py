"""The Langevin engine against analytic energies, plus its contracts (seeds, masks, traces, grads)."""
import math

import pytest
import torch
from torch import nn

from studio.errors import SamplingError
from studio.langevin import Trace, frozen, langevin, make_generators, parse_seeds, randn


class Quadratic(nn.Module):
    """E(x) = |x - mu|^2 / (2 s^2), i.e. p = N(mu, s^2 I). ``scale`` is a parameter to check freezing."""

    def __init__(self, mu=1.5, s=0.7):
        super().__init__()
        self.mu = nn.Parameter(torch.tensor(mu))
        self.s = s

    def forward(self, x):
        return (x - self.mu).pow(2).flatten(1).sum(1) / (2 * self.s**2)


def test_gaussian_stationary_mean_and_variance_match_theory():
    # Unadjusted Langevin on N(mu, s^2) with step eta = step_size and noise sqrt(2 eta) is an AR(1)
    # chain x' = (1 - eta/s^2) x + ... whose exact stationary variance is s^2 / (1 - eta / (2 s^2)).
    mu, s, eta = 1.5, 0.7, 0.02
    model = Quadratic(mu, s)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(20000, 2, generator=gen) * 3
    x, _ = langevin(model, x0, steps=600, step_size=eta, noise_std=math.sqrt(2 * eta), generator=gen)
    var_theory = s**2 / (1 - eta / (2 * s**2))
    mean_err = (x.mean() - mu).abs().item()
    var_rel_err = abs(x.var().item() / var_theory - 1)
    print(f"stationary mean error {mean_err:.4f}, variance relative error {var_rel_err:.4f}")
    # Standard errors at N=40000 draws: mean 0.0035, variance 0.7%; tolerances are about 3 SE.
    assert mean_err < 0.012
    assert var_rel_err < 0.025
    # The ULA bias itself (+2.1% here) must be visible, proving the test can tell the two apart.
    assert abs(x.var().item() / s**2 - 1) > var_rel_err


def test_gradient_descent_without_noise_converges_to_mode():
    x, trace = langevin(Quadratic(0.5, 1.0), torch.zeros(3, 4), steps=200, step_size=0.1, noise_std=0.0)
    torch.testing.assert_close(x, torch.full((3, 4), 0.5), atol=1e-6, rtol=0)
    e = trace.energy_matrix()
    assert (e[1:] <= e[:-1] + 1e-7).all(), "energy must decrease monotonically under gradient descent"


def test_per_sample_seeds_do_not_depend_on_batch():
    model = Quadratic()
    big, _ = langevin(model, randn((4, 3, 5, 5), make_generators("10-13")), steps=5, step_size=0.01, noise_std=0.1,
                      generator=make_generators("10-13"))
    small, _ = langevin(model, randn((1, 3, 5, 5), make_generators([12])), steps=5, step_size=0.01, noise_std=0.1,
                        generator=make_generators([12]))
    torch.testing.assert_close(big[2:3], small, rtol=0, atol=0)
    assert not torch.allclose(big[0], big[1])


def test_runs_under_no_grad_and_inference_mode_and_restores_requires_grad():
    model = Quadratic()
    model.mu.requires_grad_(True)
    with torch.no_grad():
        a, _ = langevin(model, torch.zeros(2, 3), steps=3, step_size=0.1, noise_std=0.0)
    with torch.inference_mode():
        b, _ = langevin(model, torch.zeros(2, 3), steps=3, step_size=0.1, noise_std=0.0)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, torch.zeros(2, 3))
    assert model.mu.requires_grad is True and model.mu.grad is None
    model.mu.requires_grad_(False)
    langevin(model, torch.zeros(2, 3), steps=1, step_size=0.1, noise_std=0.0)
    assert model.mu.requires_grad is False


def test_frozen_restores_flags_even_on_error():
    m = nn.Linear(2, 2)
    m.bias.requires_grad_(False)
    with pytest.raises(RuntimeError):
        with frozen(m):
            assert not m.weight.requires_grad
            raise RuntimeError("boom")
    assert m.weight.requires_grad and not m.bias.requires_grad


def test_mask_keeps_known_pixels_exactly():
    known = torch.rand(2, 3, 8, 8)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4] = 1
    x, _ = langevin(Quadratic(), torch.randn(2, 3, 8, 8), steps=10, step_size=0.05, noise_std=0.3,
                    mask=mask, known=known, generator=torch.Generator().manual_seed(1))
    assert torch.equal(x[..., :4], known[..., :4])
    assert not torch.allclose(x[..., 4:], known[..., 4:])


def test_clamp_and_schedules():
    x, _ = langevin(Quadratic(mu=5.0), torch.zeros(2, 2), steps=50, step_size=0.5, noise_std=0.0, clamp=(-1, 1))
    assert x.max().item() == 1.0
    # A schedule that is zero for the first 3 steps leaves x unchanged there.
    seen = []
    langevin(Quadratic(), torch.zeros(1, 2), steps=5, step_size=lambda t: 0.0 if t < 3 else 0.1, noise_std=0.0,
             callback=lambda info: seen.append((info["step"], info["x"].clone(), info["step_size"])))
    assert [s for s, _, _ in seen] == [0, 1, 2, 3, 4]
    assert torch.equal(seen[2][1], torch.zeros(1, 2)) and not torch.equal(seen[3][1], torch.zeros(1, 2))
    assert seen[4][2] == 0.1


def test_trace_contents():
    model = Quadratic(mu=0.0, s=1.0)
    x0 = torch.ones(3, 2)
    x, trace = langevin(model, x0, steps=7, step_size=0.1, noise_std=0.0, record_every=3)
    assert isinstance(trace, Trace)
    assert trace.energy_matrix().shape == (7, 3) and trace.grad_norm_matrix().shape == (7, 3)
    assert trace.frame_steps == [0, 3, 6, 7] and len(trace.frames) == 4
    torch.testing.assert_close(trace.frames[0], x0)
    torch.testing.assert_close(trace.frames[-1], x)
    # E = |x|^2/2 and grad = x, x_t = 0.9^t: analytic energies, grad norms and gradient sum.
    decay = 0.9 ** torch.arange(7.0)
    torch.testing.assert_close(trace.energy_matrix()[:, 0], decay**2)  # |x|^2/2 with |x|^2 = 2 * 0.9^(2t)
    torch.testing.assert_close(trace.grad_norm_matrix()[:, 0], decay * math.sqrt(2))
    torch.testing.assert_close(trace.grad_sum, torch.full((3, 2), float(decay.sum())))


def test_trace_extend_and_saliency():
    a = Trace(energies=[torch.zeros(2)], grad_norms=[torch.zeros(2)], grad_sum=torch.zeros(2, 3, 4, 4))
    b = Trace(energies=[torch.ones(2)] * 2, grad_norms=[torch.ones(2)] * 2, grad_sum=torch.ones(2, 3, 4, 4))
    b.add_frame(torch.zeros(2, 3, 4, 4), "proposal")
    a.extend(b, "level 1")
    assert a.num_steps == 3 and a.frame_steps == [3] and a.frame_labels == ["level 1 proposal"]
    assert a.segments == [("level 1", 1, 3)]
    g = torch.zeros(1, 3, 4, 4)
    g[0, :, 1, 2] = 2.0
    sal = Trace(grad_sum=g).saliency()
    assert sal.shape == (1, 4, 4) and sal.max() == 1 and sal[0, 1, 2] == 1 and sal.sum() == 1


def test_divergence_is_reported():
    with pytest.raises(SamplingError, match="diverged at step"):
        langevin(lambda x: (x**2).sum(1) * float("nan"), torch.zeros(2, 2), steps=3, step_size=0.1, noise_std=0.0)
    with pytest.raises(SamplingError, match="one energy per sample"):
        langevin(lambda x: x.sum(), torch.zeros(2, 2), steps=1, step_size=0.1, noise_std=0.0)


def test_max_move_clips_each_drift_entry_but_not_the_noise():
    # E = 50 |x - 5|^2: one unclipped step of 0.1 from 0 would move by 0.1 * 100 * 5 = 50.
    energy = Quadratic(mu=5.0, s=0.1)
    x, _ = langevin(energy, torch.zeros(2, 3), steps=3, step_size=0.1, noise_std=0.0, max_move=0.1)
    assert torch.allclose(x, torch.full((2, 3), 0.3))
    # A small drift is untouched: the same chain as without the clip.
    a, _ = langevin(Quadratic(), torch.zeros(2, 3), steps=4, step_size=1e-3, noise_std=0.0, max_move=0.1)
    b, _ = langevin(Quadratic(), torch.zeros(2, 3), steps=4, step_size=1e-3, noise_std=0.0)
    assert torch.equal(a, b)
    # The noise is added after the clip: with a zero gradient the clip changes nothing.
    flat = lambda x: (0 * x).flatten(1).sum(1)  # noqa: E731
    c, _ = langevin(flat, torch.zeros(2, 3), steps=1, step_size=1.0, noise_std=5.0, max_move=0.01, generator=make_generators([0, 1]))
    d, _ = langevin(flat, torch.zeros(2, 3), steps=1, step_size=1.0, noise_std=5.0, generator=make_generators([0, 1]))
    assert torch.equal(c, d) and c.abs().max() > 1


@pytest.mark.parametrize("kwargs, match", [
    (dict(steps=-1), "steps"),
    (dict(step_size=-0.1), "step_size"),
    (dict(noise_std=float("nan")), "noise_std"),
    (dict(mask=torch.ones(1)), "together"),
    (dict(max_move=0.0), "max_move"),
    (dict(max_move=float("inf")), "max_move"),
])
def test_bad_arguments(kwargs, match):
    args = dict(steps=2, step_size=0.1, noise_std=0.1) | kwargs
    with pytest.raises(SamplingError, match=match):
        langevin(Quadratic(), torch.zeros(1, 2), **args)


def test_parse_seeds():
    assert parse_seeds("0-3,7") == [0, 1, 2, 3, 7]
    assert parse_seeds(5) == [5] and parse_seeds([1, 2]) == [1, 2]
    for bad in ["", "a", "5-2", "-3", "0-100000"]:
        with pytest.raises(SamplingError):
            parse_seeds(bad)
    with pytest.raises(SamplingError, match="one per sample"):
        randn((3, 2), make_generators("0-1"))


def test_trace_select_keeps_one_chain():
    energy = lambda x: 0.5 * (x**2).flatten(1).sum(1)  # noqa: E731
    x0 = torch.randn(3, 2)
    _, trace = langevin(energy, x0, steps=4, step_size=0.1, noise_std=0.0, record_every=1)
    one = trace.select(1)
    assert len(one.frames) == len(trace.frames) and one.frames[0].shape == (1, 2)
    torch.testing.assert_close(one.frames[-1], trace.frames[-1][1:2])
    torch.testing.assert_close(one.energy_matrix(), trace.energy_matrix()[:, 1:2])
    torch.testing.assert_close(one.grad_sum, trace.grad_sum[1:2])
    with pytest.raises(SamplingError):
        trace.select(3)
