"""The one Langevin engine every sampler in the studio goes through.

Update rule (explicit, no hidden factors)::

    x <- x - step_size(t) * grad E(x) + noise_std(t) * eps,   eps ~ N(0, I)

where ``E`` is an energy (lower = more probable). Papers parameterise this
differently; each method's docstring shows how its own constants map onto
``step_size`` and ``noise_std``. Two common cases:

* "Proper" Langevin for p ∝ exp(-E) with step eta: ``step_size = eta / 2``,
  ``noise_std = sqrt(eta)`` (CF-EBM writes it this way).
* Gradient descent on E (LETIT's deterministic variant): ``noise_std = 0``.

Contracts (see DESIGN.md):

* Per-sample randomness: pass one ``torch.Generator`` per sample, so sample i
  depends only on its own seed and never on its batch mates.
* ``mask``/``known``: ``mask == 1`` marks *known* pixels; they are reset to
  ``known`` after every step and so are kept exactly. (UIs let people paint the
  region to *replace*; convert with ``1 - painted``.)
* Gradients are enabled inside the engine even under a caller's
  ``torch.no_grad()`` or ``torch.inference_mode()``; model parameters are left
  exactly as they were found (``requires_grad`` untouched, no ``.grad`` written).
"""
from __future__ import annotations

import contextlib
import contextvars
import math
import os
import threading
import types
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize
from tqdm.auto import tqdm

from . import checks
from .errors import SamplingError
from .runtime import check_deadline

# A step size or noise level: a number, a per-sample tensor broadcastable to x, or a callable of t.
Schedule = Union[float, Tensor, Callable[[int], Union[float, Tensor]]]
EnergyFn = Callable[[Tensor], Tensor]
Generators = Union[None, torch.Generator, Sequence[torch.Generator]]

__all__ = [
    "Trace",
    "langevin",
    "make_generators",
    "parse_seeds",
    "randn",
    "frozen",
    "as_schedule",
    "fast_paths",
    "channels_last",
    "use_channels_last",
    "step_callback",
    "report_step",
]


# ----------------------------------------------------------------------------- seeds

MAX_SEED = checks.MAX_SEED  # the largest seed torch generators take (re-exported)


def parse_seeds(spec: Union[str, int, Iterable[int]], max_count: int = 4096) -> list[int]:
    """Parse EDM-style seed specs: ``"0-3,7"`` -> ``[0, 1, 2, 3, 7]``.

    Seeds must be non-negative integers below 2**63 (what torch generators take).
    """
    if isinstance(spec, int):
        seeds = [spec]
    elif isinstance(spec, str):
        seeds = []
        text = spec.replace(" ", "")
        if not text:
            raise SamplingError("No seeds given: use e.g. '0', '0-7' or '1,5,9'.")
        for part in text.split(","):
            try:
                if "-" in part[1:]:
                    lo, hi = part.split("-", 1)
                    lo_i, hi_i = int(lo), int(hi)
                    if hi_i < lo_i:
                        raise SamplingError(f"Seed range '{part}' is empty: write it low-high.")
                    if hi_i - lo_i + 1 > max_count:
                        raise SamplingError(f"Seed range '{part}' has more than {max_count} seeds.")
                    seeds.extend(range(lo_i, hi_i + 1))
                else:
                    seeds.append(int(part))
            except ValueError as err:
                if isinstance(err, SamplingError):
                    raise
                raise SamplingError(f"Cannot read seed '{part}': use integers like '0-7' or '1,5,9'.") from None
    elif isinstance(spec, (dict, bytes)):
        raise SamplingError(f"Seeds must be a spec like '0-7' or '1,5,9', an integer or a list of integers; got {spec!r}.")
    else:
        try:
            seeds = [checks.seed("Seed", s) for s in spec]
        except TypeError:  # not iterable: None, a float, ...
            raise SamplingError(f"Seeds must be a spec like '0-7' or '1,5,9', an integer or a list of integers; got {spec!r}.") from None
    if not seeds:
        raise SamplingError("No seeds given: use e.g. '0', '0-7' or '1,5,9'.")
    for s in seeds:
        if not 0 <= s <= MAX_SEED:
            raise SamplingError(f"Seed {s} is out of range: seeds must be between 0 and 2**63 - 1.")
    if len(seeds) > max_count:
        raise SamplingError(f"{len(seeds)} seeds requested; at most {max_count} are allowed.")
    return seeds


def make_generators(seeds: Union[str, int, Iterable[int]], device: Union[str, torch.device] = "cpu") -> list[torch.Generator]:
    """One seeded generator per sample (EDM-style)."""
    return [torch.Generator(device=device).manual_seed(s) for s in parse_seeds(seeds)]


def randn(shape: Sequence[int], generator: Generators = None, device=None, dtype=torch.float32) -> Tensor:
    """Standard normal noise of ``shape`` where row i is drawn from ``generator[i]``.

    With a list of generators, row i does not depend on how many rows there are,
    which is what makes samples reproducible across batch sizes.
    """
    if generator is None or isinstance(generator, torch.Generator):
        return torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)
    if len(generator) != shape[0]:
        raise SamplingError(f"Got {len(generator)} generators for a batch of {shape[0]}; pass one per sample.")
    rows = [torch.randn(tuple(shape[1:]), generator=g, device=g.device, dtype=dtype) for g in generator]
    out = torch.stack(rows)
    return out if device is None else out.to(device)


# ----------------------------------------------------------------------------- trace


@dataclass
class Trace:
    """What a chain did, for plots, animations and saliency (no recomputation needed).

    * ``energies[s, b]``: energy of sample b at the state *before* step s.
    * ``grad_norms[s, b]``: L2 norm of grad E at that state.
    * ``frames``: CPU copies of x every ``record_every`` steps (and the final x);
      ``frame_steps`` gives the global step index of each, ``frame_labels`` a label.
    * ``grad_sum``: sum over steps of grad E(x_t), the basis of generative saliency. Only the part
      that can move the chain counts: entries held by the mask, and entries pinned at a clamp bound
      with the drift pointing out of it, add nothing (unconstrained, it is exactly sum_t grad E(x_t)).
    * ``segments``: (label, first_step, last_step) for multi-stage samplers.
    """

    energies: list[Tensor] = field(default_factory=list)
    grad_norms: list[Tensor] = field(default_factory=list)
    frames: list[Tensor] = field(default_factory=list)
    frame_steps: list[int] = field(default_factory=list)
    frame_labels: list[str] = field(default_factory=list)
    grad_sum: Tensor | None = None
    segments: list[tuple[str, int, int]] = field(default_factory=list)

    @property
    def num_steps(self) -> int:
        return len(self.energies)

    def energy_matrix(self) -> Tensor:
        """Energies as a [steps, B] tensor (empty if nothing was recorded)."""
        return torch.stack(self.energies) if self.energies else torch.empty(0)

    def grad_norm_matrix(self) -> Tensor:
        return torch.stack(self.grad_norms) if self.grad_norms else torch.empty(0)

    def add_frame(self, x: Tensor, label: str = "") -> None:
        """Record a frame at the current step (used for proposals between chains)."""
        self.frames.append(x.detach().to("cpu", copy=True, memory_format=torch.contiguous_format))
        self.frame_steps.append(self.num_steps)
        self.frame_labels.append(label)

    def extend(self, other: "Trace", label: str = "") -> "Trace":
        """Append another chain's record, shifting its step indices (multi-level samplers)."""
        offset = self.num_steps
        self.energies.extend(other.energies)
        self.grad_norms.extend(other.grad_norms)
        self.frames.extend(other.frames)
        self.frame_steps.extend(s + offset for s in other.frame_steps)
        self.frame_labels.extend(f"{label} {lab}".strip() if label else lab for lab in other.frame_labels)
        if other.grad_sum is not None:
            if self.grad_sum is None or self.grad_sum.shape != other.grad_sum.shape:
                # Different resolutions (coarse-to-fine) cannot be summed; keep the latest.
                self.grad_sum = other.grad_sum.clone()
            else:
                self.grad_sum = self.grad_sum + other.grad_sum
        if other.segments:
            self.segments.extend((f"{label} {n}".strip(), a + offset, b + offset) for n, a, b in other.segments)
        else:
            self.segments.append((label, offset, offset + other.num_steps))
        return self

    def select(self, index: int) -> "Trace":
        """The record of one chain of the batch (for showing a single sample's path)."""
        batch = self.frames[0].shape[0] if self.frames else (len(self.energies[0]) if self.energies else 0)
        if not 0 <= index < batch:
            raise SamplingError(f"Chain index {index} is out of range for a batch of {batch}.")
        pick = lambda t: t[index : index + 1]  # noqa: E731
        return Trace(energies=[pick(e) for e in self.energies], grad_norms=[pick(g) for g in self.grad_norms],
                     frames=[pick(f) for f in self.frames], frame_steps=list(self.frame_steps),
                     frame_labels=list(self.frame_labels), segments=list(self.segments),
                     grad_sum=None if self.grad_sum is None else pick(self.grad_sum))

    def saliency(self) -> Tensor:
        """Per-pixel L2 over channels of sum_t grad E(x_t), min-max normalised per sample."""
        if self.grad_sum is None:
            raise SamplingError("This trace has no gradients recorded, so it has no saliency.")
        g = self.grad_sum
        sal = g.pow(2).sum(dim=1).sqrt() if g.dim() == 4 else g.abs()
        flat = sal.flatten(1)
        lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
        return ((flat - lo) / (hi - lo).clamp_min(1e-12)).view_as(sal)


# ----------------------------------------------------------------------------- helpers


def as_schedule(value: Schedule, name: str) -> Callable[[int], float | Tensor]:
    """Turn a number, tensor or callable of the step index into a callable; validate constants."""
    if callable(value):
        return value
    if isinstance(value, Tensor):
        if not (torch.isfinite(value).all() and (value >= 0).all()):
            raise SamplingError(f"{name} must be finite and non-negative everywhere.")
        return lambda _t: value
    try:
        if isinstance(value, bool):  # True is not a step size, though float(True) is 1
            raise TypeError
        v = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: ints beyond float range
        raise SamplingError(f"{name} must be a number, a tensor or a callable; got {value!r}.") from None
    if not math.isfinite(v) or v < 0:
        raise SamplingError(f"{name} must be a finite, non-negative number; got {value!r}.")
    return lambda _t: v


@contextlib.contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """Temporarily set ``requires_grad=False`` on parameters, restoring each flag after.

    Sampling only needs grad w.r.t. x; tracking parameter grads would cost time
    and could leak ``.grad`` into a training loop.
    """
    saved = [(p, p.requires_grad) for m in modules if m is not None for p in m.parameters()]
    try:
        for p, _ in saved:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)


def _energy_and_grad(energy_fn: EnergyFn, x: Tensor) -> tuple[Tensor, Tensor]:
    x = x.detach().requires_grad_(True)
    energy = energy_fn(x)
    if energy.dim() != 1 or energy.shape[0] != x.shape[0]:
        raise SamplingError(
            f"energy_fn must return one energy per sample (shape [{x.shape[0]}]); got {tuple(energy.shape)}."
        )
    if not energy.requires_grad:
        raise SamplingError("energy_fn returned energies that do not depend on x: there is no gradient to follow.")
    (grad,) = torch.autograd.grad(energy.sum(), x)
    return energy.detach(), grad


# ----------------------------------------------------------------------------- fast paths

# Fast paths (all on by default; ``fast_paths(False)`` runs the straightforward loop, for tests and
# the benchmark). CPU time of one guided CDRL step (16 samples, w = 1, one thread) on the 2-core AMD
# EPYC this studio is developed on, best of 6 (README "Performance"): straightforward 71 ms, with
# spectral norm cached 73 ms (no gain on CPU: eval-mode spectral norm is one matrix-vector product per
# layer, but it would be a power iteration per step in train mode), channels-last 45 ms, shared
# label-free layers (CDRL's ``forward_pair``) 40 ms; the naive loop (train-mode spectral norm,
# parameter gradients, guidance as two calls) 105 ms.
# * spectral-norm weights computed once per chain (``parametrize.cached``) instead of at every step;
# * channels-last activations and conv weights for 4-D inputs on CPU (CF-EBM, batch 16: 21 -> 18 ms);
# * energies, gradient norms and frames stay on the device and move to the host once, at the end;
#   the finiteness check reads one flag per step on CPU (free) and every 16 steps elsewhere.
# torch.compile (inductor) made the CDRL pass 19% faster (79 vs 97 ms) but its first call took 62 s,
# which no interactive request amortises (break-even after ~3,500 steps), so it is not used.
_FAST: contextvars.ContextVar[bool] = contextvars.ContextVar("studio_langevin_fast", default=True)
_LAYOUT_LOCK = threading.Lock()
CHECK_EVERY_ON_DEVICE = 16


@contextlib.contextmanager
def fast_paths(enabled: bool = True) -> Iterator[None]:
    """Switch the engine's fast paths on or off in this context (results agree to float precision)."""
    token = _FAST.set(enabled)
    try:
        yield
    finally:
        _FAST.reset(token)


# Who hears about every Langevin step in this context: a UI's progress bar for a request that runs several
# chains (CDRL's levels, then DRL's), which no single chain's tqdm bar can describe. Set per context, like
# the request deadline, so concurrent requests each hear only their own chains.
_STEP_LISTENER: contextvars.ContextVar[Callable[[int, int], None] | None] = contextvars.ContextVar(
    "studio_langevin_step_listener", default=None)


@contextlib.contextmanager
def step_listener(fn: Callable[[int, int], None] | None) -> Iterator[None]:
    """Call ``fn(step, steps)`` after every Langevin step of every chain run in this context (1-based step)."""
    token = _STEP_LISTENER.set(fn)
    try:
        yield
    finally:
        _STEP_LISTENER.reset(token)


# Who gets the engine's per-step dict (``callback``'s) for every chain run in this context: the ``callback`` of
# ``StudioModel.run`` (studio.protocol), which must hear every chain of a task (CDRL's levels, CF-EBM's scales)
# without each sampler threading it through. Per context, so concurrent requests hear only their own chains.
_STEP_CALLBACK: contextvars.ContextVar[Callable[[dict], None] | None] = contextvars.ContextVar(
    "studio_langevin_step_callback", default=None)


@contextlib.contextmanager
def step_callback(fn: Callable[[dict], None] | None) -> Iterator[None]:
    """Call ``fn(info)`` after every step of every chain run in this context, with the dict ``langevin`` passes its
    own ``callback``; ``None`` adds nothing. Samplers that step outside the engine call ``report_step``."""
    token = _STEP_CALLBACK.set(fn)
    try:
        yield
    finally:
        _STEP_CALLBACK.reset(token)


def report_step(info: dict) -> None:
    """Hand one step's dict to this context's ``step_callback`` (for samplers outside the engine, e.g. EGC's DDIM)."""
    hook = _STEP_CALLBACK.get()
    if hook is not None:
        hook(info)


def _wants_channels_last(x: Tensor, modules: Sequence[nn.Module]) -> bool:
    return (x.dim() == 4 and x.device.type == "cpu" and os.environ.get("STUDIO_CHANNELS_LAST", "1") != "0"
            and any(isinstance(m, nn.Conv2d) for mod in modules for m in mod.modules()))


def channels_last(module: nn.Module) -> nn.Module:
    """Store a frozen module's 4-D weights channels-last, once; values are unchanged (checkpoints are
    saved contiguous). Each weight gets a new Parameter rather than new storage under the old one, so
    a thread still running a forward on the old weights reads valid memory. Modules with trainable
    parameters are left alone (an optimizer holds their Parameter objects)."""
    if getattr(module, "_studio_channels_last", False) or any(p.requires_grad for p in module.parameters()):
        return module
    with _LAYOUT_LOCK:
        if not getattr(module, "_studio_channels_last", False):
            for sub in module.modules():
                for name, p in list(sub._parameters.items()):
                    if p is not None and p.dim() == 4 and not p.is_contiguous(memory_format=torch.channels_last):
                        sub._parameters[name] = nn.Parameter(p.detach().contiguous(memory_format=torch.channels_last),
                                                             requires_grad=False)
                if _is_gray_conv(sub):
                    sub.forward = types.MethodType(_gray_conv_forward, sub)
                sub._studio_channels_last = True
    return module


def _check_every(device: torch.device, fast: bool) -> int:
    """Steps between reads of the finiteness flags: every step on CPU (a read costs nothing there),
    every ``CHECK_EVERY_ON_DEVICE`` steps on an accelerator (each read waits for the device)."""
    return 1 if not fast or device.type == "cpu" else CHECK_EVERY_ON_DEVICE


def use_channels_last(module: nn.Module, x: Tensor) -> bool:
    """The engine's layout policy for a network run outside a chain (e.g. CDRL's initializer) on inputs
    like ``x``: convert it if the policy says so; return whether it is channels-last."""
    if _FAST.get() and _wants_channels_last(x, [module]):
        channels_last(module)
    return bool(getattr(module, "_studio_channels_last", False))


def _is_gray_conv(m: nn.Module) -> bool:
    return (isinstance(m, nn.Conv2d) and m.in_channels == 1 and m.groups == 1 and m.padding_mode == "zeros"
            and not isinstance(m.padding, str))


class _GrayConv(torch.autograd.Function):
    """A frozen conv on one input channel (grayscale images), differentiated for its input only.

    torch's convolution backward for one input channel took 9 ms for a batch of 32 at 32x32 (24
    output channels) on this CPU; the same input gradient as a transposed convolution takes 2.2 ms."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, conv: nn.Conv2d) -> Tensor:
        ctx.save_for_backward(weight)
        ctx.conv, ctx.size = conv, x.shape[2:]
        return F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, 1)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (weight,) = ctx.saved_tensors
        c = ctx.conv
        # The output padding that makes the transposed conv return exactly the input's size.
        extra = [ctx.size[i] - ((grad.shape[2 + i] - 1) * c.stride[i] - 2 * c.padding[i] + c.dilation[i] * (weight.shape[2 + i] - 1) + 1)
                 for i in range(2)]
        gx = F.conv_transpose2d(grad.contiguous(memory_format=torch.channels_last), weight, None, c.stride, c.padding,
                                extra, 1, c.dilation)
        return gx, None, None, None


def _gray_conv_forward(self: nn.Conv2d, x: Tensor) -> Tensor:
    """Forward of a converted one-input-channel conv: its output in channels-last (with one input channel
    both layouts look alike, so torch would keep NCHW and every later layer would convert, both ways),
    and the transposed-conv input gradient while its weights are frozen."""
    weight, bias = self.weight, self.bias
    if weight.requires_grad or (bias is not None and bias.requires_grad):
        out = self._conv_forward(x, weight, bias)
    else:
        out = _GrayConv.apply(x, weight, bias, self)
    return out.contiguous(memory_format=torch.channels_last)


def _to_host(tensors: list[Tensor]) -> list[Tensor]:
    """One device-to-host transfer for a list of same-shaped tensors, as contiguous CPU tensors."""
    if not tensors:
        return []
    return list(torch.stack(tensors).to("cpu").contiguous().unbind(0))


# ----------------------------------------------------------------------------- engine


def _movable_gradient(grad: Tensor, x: Tensor, mask: Tensor | None, clamp: tuple[float, float] | None) -> Tensor:
    """grad E with the entries that cannot move this step zeroed (see Trace.grad_sum)."""
    g = grad.detach()
    if mask is not None:
        g = g * (1 - mask)
    if clamp is not None:
        lo, hi = clamp
        g = g.masked_fill(((x >= hi) & (g < 0)) | ((x <= lo) & (g > 0)), 0.0)  # drift -g points out of the box
    return g


def _diverged(step: int, energy: Tensor) -> SamplingError:
    bad = (~torch.isfinite(energy)).nonzero().flatten().tolist()
    return SamplingError(
        f"Sampling diverged at step {step}: non-finite energy or gradient (samples {bad or 'grad only'}). "
        "Lower the step size or the number of steps."
    )


def langevin(
    energy_fn: EnergyFn,
    x0: Tensor,
    *,
    steps: int,
    step_size: Schedule,
    noise_std: Schedule,
    generator: Generators = None,
    mask: Tensor | None = None,
    known: Tensor | None = None,
    clamp: tuple[float, float] | None = None,
    callback: Callable[[dict], None] | None = None,
    record_every: int = 0,
    modules: Sequence[nn.Module] = (),
    check_finite: bool = True,
    progress: bool = False,
    desc: str = "Langevin",
    max_move: float | None = None,
) -> tuple[Tensor, Trace]:
    """Run ``steps`` Langevin updates from ``x0`` under ``energy_fn``; return (x, Trace).

    Args:
        energy_fn: maps a batch [B, ...] to energies [B] (lower = more probable).
        x0: the starting batch; it is not modified.
        steps: number of updates (0 returns x0 with an empty trace).
        step_size, noise_std: floats or callables of the step index t.
        generator: None, one generator, or one per sample (recommended).
        mask, known: ``mask == 1`` marks known entries, reset to ``known`` after
            every step (and at the start). Broadcastable to x0.
        clamp: (lo, hi) bounds applied after every step.
        callback: called after each step with a dict
            ``{step, x, energy, grad_norm, step_size, noise_std}`` (tensors on x's device).
        record_every: store a frame every n steps (0 = no frames). The final
            state is always stored when n > 0.
        modules: networks inside energy_fn to freeze while sampling (an
            ``nn.Module`` energy_fn is frozen automatically). Their spectral-norm
            (any ``torch.nn.utils.parametrize``) weights are computed once per call,
            and on CPU their conv weights are stored channels-last (see ``channels_last``).
        check_finite: raise ``SamplingError`` at the first non-finite energy/gradient/state
            (on an accelerator it is noticed up to 16 steps late, to avoid a sync per step).
        progress: show a tqdm bar (also what ``gr.Progress(track_tqdm=True)`` shows).
        max_move: clip each entry of the drift ``step_size * grad`` to [-max_move, max_move] before the
            noise is added (None = no clip). CoopFlow's code does this (0.1): an EBM whose energy scale grows
            during training then still moves each pixel by a bounded amount per step.

    While a chain runs, torch's parametrization cache is on for the whole process (it is
    process-global): do not train a parametrized module in another thread meanwhile.
    """
    if not isinstance(x0, Tensor) or not x0.is_floating_point():
        raise SamplingError(f"x0 must be a floating-point tensor; got {x0.dtype if isinstance(x0, Tensor) else type(x0).__name__}.")
    if not isinstance(steps, int) or steps < 0:
        raise SamplingError(f"steps must be a non-negative integer; got {steps!r}.")
    record_every = checks.integer("record_every", record_every, 0, 2**31)
    if (mask is None) != (known is None):
        raise SamplingError("mask and known must be given together (mask == 1 marks known entries).")
    if mask is not None:
        try:
            fits = torch.broadcast_shapes(tuple(mask.shape), tuple(known.shape), tuple(x0.shape)) == x0.shape
        except (RuntimeError, AttributeError, TypeError):
            fits = False
        if not fits:
            raise SamplingError(f"mask and known must be tensors that broadcast to x0's shape {tuple(x0.shape)}; got "
                                f"{tuple(getattr(mask, 'shape', ()))} and {tuple(getattr(known, 'shape', ()))}.")
    if clamp is not None:
        if not isinstance(clamp, (tuple, list)) or len(clamp) != 2:
            raise SamplingError(f"clamp must be a (low, high) pair; got {clamp!r}.")
        clamp = (checks.number("clamp low", clamp[0]), checks.number("clamp high", clamp[1]))
        if clamp[0] > clamp[1]:
            raise SamplingError(f"clamp low must not exceed clamp high; got {clamp}.")
    if max_move is not None and checks.number("max_move", max_move) <= 0:
        raise SamplingError(f"max_move must be positive (or None for no clip); got {max_move!r}.")
    step_fn = as_schedule(step_size, "step_size")
    noise_fn = as_schedule(noise_std, "noise_std")
    to_freeze = list(modules) + ([energy_fn] if isinstance(energy_fn, nn.Module) else [])
    fast = _FAST.get()
    layout = torch.contiguous_format
    if fast and _wants_channels_last(x0, to_freeze):
        for module in to_freeze:
            channels_last(module)
        if all(getattr(module, "_studio_channels_last", False) for module in to_freeze):
            layout = torch.channels_last  # a channels-last input only pays with channels-last weights
    check_every = _check_every(x0.device, fast)
    cache = parametrize.cached() if fast else contextlib.nullcontext()

    # Samplers need autograd even when the caller is in no_grad/inference_mode.
    with torch.inference_mode(False), torch.enable_grad(), frozen(*to_freeze), cache:
        x = x0.detach().clone(memory_format=layout)
        if mask is not None:
            mask_t = mask.to(device=x.device, dtype=x.dtype).clone()
            known_t = known.to(device=x.device, dtype=x.dtype).clone()
            if mask_t.min() < 0 or mask_t.max() > 1:
                raise SamplingError("mask values must lie in [0, 1] (1 = known).")
            x = mask_t * known_t + (1 - mask_t) * x
        trace = Trace()
        frames, frame_steps, frame_labels = [], [], []
        if record_every:
            frames.append(x if fast else x.detach().to("cpu", copy=True))
            frame_steps.append(0), frame_labels.append("start")
        energies, grad_norms, finite = [], [], []
        grad_sum = None
        reduce_dims = tuple(range(1, x.dim()))
        listener, hook = _STEP_LISTENER.get(), _STEP_CALLBACK.get()
        for t in tqdm(range(steps), disable=not progress, desc=desc, leave=False):
            check_deadline()  # a request's time limit (studio.runtime.deadline); a no-op outside one
            energy, grad = _energy_and_grad(energy_fn, x)
            grad_norm = torch.linalg.vector_norm(grad, dim=reduce_dims) if reduce_dims else grad.abs()
            if check_finite:
                finite.append(torch.isfinite(energy).all() & torch.isfinite(grad_norm).all())
                if (t + 1) % check_every == 0 or t + 1 == steps:
                    _raise_if_diverged(finite, energies + [energy], t + 1 - len(finite))
                    finite.clear()
            eta, sigma = step_fn(t), noise_fn(t)
            with torch.no_grad():
                effective = _movable_gradient(grad, x, mask_t if mask is not None else None, clamp)
                drift = eta * grad
                x = x - (drift if max_move is None else drift.clamp(-max_move, max_move))
                if isinstance(sigma, Tensor) or sigma > 0:
                    x = x + sigma * randn(x.shape, generator, device=x.device, dtype=x.dtype)
                if mask is not None:
                    x = mask_t * known_t + (1 - mask_t) * x
                if clamp is not None:
                    x = x.clamp(*clamp)
                x = x.contiguous(memory_format=layout)
                grad_sum = effective.clone() if grad_sum is None else grad_sum.add_(effective)
            if fast:
                energies.append(energy), grad_norms.append(grad_norm)
            else:  # the straightforward path: a host copy per step
                energies.append(energy.cpu()), grad_norms.append(grad_norm.cpu())
            if record_every and ((t + 1) % record_every == 0 or t + 1 == steps):
                # x is never modified in place, so a reference is a snapshot; copied to the host at the end.
                frames.append(x if fast else x.detach().to("cpu", copy=True))
                frame_steps.append(t + 1), frame_labels.append(f"step {t + 1}")
            if callback is not None or hook is not None:
                info = {"step": t, "x": x, "energy": energy, "grad_norm": grad_norm, "step_size": eta, "noise_std": sigma}
                if callback is not None:
                    callback(info)
                if hook is not None:
                    hook(info)
            if listener is not None:
                listener(t + 1, steps)
        if check_finite and not torch.isfinite(x).all():
            raise SamplingError("Sampling produced non-finite values. Lower the step size or the number of steps.")
    trace.energies, trace.grad_norms = _to_host(energies), _to_host(grad_norms)
    trace.frames, trace.frame_steps, trace.frame_labels = _to_host(frames), frame_steps, frame_labels
    if grad_sum is not None:
        trace.grad_sum = grad_sum.to("cpu").contiguous()
    return x.detach().contiguous(), trace


def _raise_if_diverged(flags: list[Tensor], energies: list[Tensor], first_step: int) -> None:
    """One host read for the pending per-step flags; name the first bad step and its samples."""
    if bool(torch.stack(flags).all()):
        return
    bad = int((~torch.stack(flags)).nonzero()[0])
    step = first_step + bad
    raise _diverged(step, energies[step])
