"""Hamiltonian Monte Carlo beside the Langevin engine, with the same Trace and per-sample seeds.

One HMC step from x with energy E (lower = more probable), step size eps and L leapfrog steps::

    p ~ N(0, I)                                    (momentum, from the sample's own generator)
    p <- p - eps/2 grad E(x)
    repeat L times:  x <- x + eps p;  p <- p - eps grad E(x)   (the last kick is eps/2)
    accept the end point with probability min(1, exp(H(x, p) - H(x', p'))),  H = E + |p|^2 / 2

Why this is not a call to ``studio.langevin``: the update carries a momentum across L inner steps and
ends in an accept/reject test, neither of which the Langevin update can express. It reuses everything
else of the engine: ``Trace``, per-sample generators (``randn``), ``frozen``, the argument checks, the
request deadline, and gradients enabled even under a caller's ``torch.no_grad()``.

With L = 1 and the Metropolis test off, a step is exactly Langevin with ``step_size = eps^2 / 2`` and
``noise_std = eps`` (the same noise draw), which the tests check. Each step costs L gradient
evaluations (the gradient at the end point is reused by the next step), so HMC with ``steps`` steps
and Langevin with ``steps * L`` steps cost the same.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from tqdm.auto import tqdm

from . import checks
from .errors import SamplingError
from .langevin import EnergyFn, Generators, Trace, _energy_and_grad, _to_host, frozen, randn
from .runtime import check_deadline

__all__ = ["HMCTrace", "hmc", "MAX_LEAPFROG_STEPS"]

MAX_LEAPFROG_STEPS = 1000
MAX_HMC_STEP_SIZE = 1e3


@dataclass
class HMCTrace(Trace):
    """A ``Trace`` plus, for every step s and sample b, the Metropolis acceptance probability
    min(1, exp(-dH)) of the proposal (``accept_probs[s, b]``; computed even with the test off, where
    it measures the integration error) and whether the proposal was taken (``accepted[s, b]``)."""

    accept_probs: list[Tensor] = field(default_factory=list)
    accepted: list[Tensor] = field(default_factory=list)
    leapfrog_steps: int = 1

    def acceptance_matrix(self) -> Tensor:
        """Accepted proposals as a float [steps, B] tensor of 0s and 1s."""
        return torch.stack(self.accepted).float() if self.accepted else torch.empty(0)

    def acceptance_rate(self) -> Tensor:
        """The fraction of the batch whose proposal was accepted, per step ([steps])."""
        return self.acceptance_matrix().mean(1) if self.accepted else torch.empty(0)

    def mean_accept_prob(self) -> float:
        """The Metropolis acceptance probability averaged over steps and samples (nan without steps)."""
        return float(torch.stack(self.accept_probs).mean()) if self.accept_probs else float("nan")

    @property
    def gradient_evaluations(self) -> int:
        """Gradient evaluations per sample spent by the chain (L per step, plus one at the start)."""
        return self.num_steps * self.leapfrog_steps + (1 if self.num_steps else 0)

    def select(self, index: int) -> "HMCTrace":
        base = super().select(index)
        return HMCTrace(**vars(base), accept_probs=[a[index: index + 1] for a in self.accept_probs],
                        accepted=[a[index: index + 1] for a in self.accepted], leapfrog_steps=self.leapfrog_steps)


def _uniform(batch: int, generator: Generators, device, dtype) -> Tensor:
    """One U[0, 1) draw per sample, each from the sample's own generator when a list is given."""
    if generator is None or isinstance(generator, torch.Generator):
        where = generator.device if generator is not None else device
        return torch.rand(batch, generator=generator, device=where, dtype=dtype).to(device)
    if len(generator) != batch:
        raise SamplingError(f"Got {len(generator)} generators for a batch of {batch}; pass one per sample.")
    return torch.cat([torch.rand(1, generator=g, device=g.device, dtype=dtype) for g in generator]).to(device)


def hmc(
    energy_fn: EnergyFn,
    x0: Tensor,
    steps: int,
    step_size: float,
    leapfrog_steps: int,
    *,
    generator: Generators = None,
    metropolis: bool = True,
    callback: Callable[[dict], None] | None = None,
    record_every: int = 0,
    modules: Sequence[nn.Module] = (),
    check_finite: bool = True,
    progress: bool = False,
    desc: str = "HMC",
) -> tuple[Tensor, HMCTrace]:
    """Run ``steps`` HMC steps of ``leapfrog_steps`` leapfrog steps each from ``x0``; return (x, HMCTrace).

    Args:
        energy_fn: maps a batch [B, ...] to energies [B] (lower = more probable).
        x0: the starting batch; it is not modified.
        steps: number of HMC steps (0 returns x0 with an empty trace).
        step_size: the leapfrog step eps > 0.
        leapfrog_steps: leapfrog steps L per HMC step (1 to ``MAX_LEAPFROG_STEPS``).
        generator: None, one generator, or one per sample (recommended: sample i then depends only
            on its own seed). Each step draws the momentum, then (with ``metropolis``) one uniform.
        metropolis: accept or reject each proposal (exact for exp(-E)); False always accepts,
            which is faster to mix but biased by the leapfrog error.
        callback: called after each step with ``{step, x, energy, grad_norm, accept_prob, accepted}``.
        record_every: store a frame every n steps (0 = none); the final state is always stored when n > 0.
        modules: networks inside energy_fn to freeze while sampling (an nn.Module energy_fn is frozen).
        check_finite: raise ``SamplingError`` on a non-finite start, or, with the Metropolis test off, on a
            non-finite proposal. With the test on, a proposal with a non-finite energy is simply rejected.
        progress: show a tqdm bar.
    """
    if not isinstance(x0, Tensor) or not x0.is_floating_point():
        raise SamplingError(f"x0 must be a floating-point tensor; got {x0.dtype if isinstance(x0, Tensor) else type(x0).__name__}.")
    if x0.dim() < 1 or x0.shape[0] == 0:
        raise SamplingError(f"x0 must be a non-empty batch [B, ...]; got shape {tuple(x0.shape)}.")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise SamplingError(f"steps must be a non-negative integer; got {steps!r}.")
    eps = checks.number("step_size", step_size, 0, MAX_HMC_STEP_SIZE)
    if eps <= 0:
        raise SamplingError(f"step_size must be positive (at most {MAX_HMC_STEP_SIZE:g}); got {step_size!r}.")
    n_leap = checks.integer("leapfrog_steps", leapfrog_steps, 1, MAX_LEAPFROG_STEPS)
    if not isinstance(metropolis, bool):
        raise SamplingError(f"metropolis must be True or False; got {metropolis!r}.")
    record_every = checks.integer("record_every", record_every, 0, 2**31)
    to_freeze = list(modules) + ([energy_fn] if isinstance(energy_fn, nn.Module) else [])
    batch, dims = x0.shape[0], tuple(range(1, x0.dim()))

    def kinetic(p: Tensor) -> Tensor:
        return 0.5 * (p.pow(2).sum(dims) if dims else p.pow(2))

    with torch.inference_mode(False), torch.enable_grad(), frozen(*to_freeze), parametrize.cached():
        x = x0.detach().clone()
        energy, grad = _energy_and_grad(energy_fn, x)
        if check_finite and not (torch.isfinite(energy).all() and torch.isfinite(grad).all()):
            raise SamplingError("HMC cannot start: the energy or its gradient is not finite at x0.")
        frames, frame_steps, frame_labels = [], [], []
        if record_every:
            frames.append(x), frame_steps.append(0), frame_labels.append("start")
        energies, grad_norms, probs, taken = [], [], [], []
        grad_sum = torch.zeros_like(x)
        for t in tqdm(range(steps), disable=not progress, desc=desc, leave=False):
            check_deadline()
            energies.append(energy)
            grad_norms.append(torch.linalg.vector_norm(grad, dim=dims) if dims else grad.abs())
            grad_sum = grad_sum + grad
            p = randn(x.shape, generator, device=x.device, dtype=x.dtype)
            h_start = energy + kinetic(p)
            x_new, p_new = x, p - 0.5 * eps * grad
            for leap in range(n_leap):
                if leap:
                    check_deadline()
                with torch.no_grad():
                    x_new = x_new + eps * p_new
                e_new, g_new = _energy_and_grad(energy_fn, x_new)
                with torch.no_grad():
                    p_new = p_new - (eps if leap < n_leap - 1 else 0.5 * eps) * g_new
            with torch.no_grad():
                log_ratio = h_start - (e_new + kinetic(p_new))
                ok = torch.isfinite(log_ratio) & torch.isfinite(g_new).reshape(batch, -1).all(1)
                prob = torch.where(ok, log_ratio.clamp(max=0).exp(), torch.zeros_like(log_ratio))
                if metropolis:
                    accept = _uniform(batch, generator, x.device, x.dtype) < prob
                else:
                    if check_finite and not bool(ok.all()):
                        bad = (~ok).nonzero().flatten().tolist()
                        raise SamplingError(f"HMC diverged at step {t} (samples {bad}): non-finite energy or gradient. "
                                            "Lower the step size or the number of leapfrog steps, or turn the Metropolis test on.")
                    accept = torch.ones(batch, dtype=torch.bool, device=x.device)
                keep = accept.view(-1, *[1] * len(dims))
                x = torch.where(keep, x_new, x)
                grad = torch.where(keep, g_new, grad)
                energy = torch.where(accept, e_new, energy)
            probs.append(prob), taken.append(accept)
            if record_every and ((t + 1) % record_every == 0 or t + 1 == steps):
                frames.append(x), frame_steps.append(t + 1), frame_labels.append(f"step {t + 1}")
            if callback is not None:
                callback({"step": t, "x": x, "energy": energy, "grad_norm": grad_norms[-1], "accept_prob": prob, "accepted": accept})
    trace = HMCTrace(leapfrog_steps=n_leap)
    trace.energies, trace.grad_norms = _to_host(energies), _to_host(grad_norms)
    trace.accept_probs, trace.accepted = _to_host(probs), _to_host(taken)
    trace.frames, trace.frame_steps, trace.frame_labels = _to_host([f.detach() for f in frames]), frame_steps, frame_labels
    if steps:
        trace.grad_sum = grad_sum.detach().to("cpu").contiguous()
    return x.detach().contiguous(), trace
