"""Compositional generation with CDRL: products of concepts (AND) and their negations (NOT).

Thesis §5.3.6 (after Du, Li and Mordatch 2020, and Liu et al. 2022). For concepts c_1..c_M with
signed weights lambda_i (lambda > 0: AND, lambda < 0: NOT; the default weight is 1) and guidance w,
the network term at every noise level t is

    F_t(y) = fhat(y; null, t) + (w + 1) sum_i lambda_i [fhat(y; c_i, t) - fhat(y; null, t)]
           = (w + 1) sum_i lambda_i fhat(y; c_i, t) - (w L + L - 1) fhat(y; null, t),     L = sum_i lambda_i.

With M concepts of weight +1 this is the thesis's Eq. 5.12, (w + 1) sum_i f(c_i) - (M w + M - 1) f(null);
with one it is classifier-free guidance (Eq. 5.9). A NOT subtracts its guided difference
(w + 1) |lambda| [f(c) - f(null)] from the rest: the concept negation of composable EBMs / diffusion.
No concept at all (every attribute on "no control") is plain unconditional sampling, ``generate(None)``.

What is sampled is CDRL's ancestral chain (``CDRL.generate``) with F in place of the guided network:
at level t, K Langevin steps through ``studio.langevin`` on the recovery-likelihood energy

    E_t(y) = -F_t(y) / s_t^2 + |y - x_{t+1}|^2 / (2 sigma_{t+1}^2)      (no quadratic at the top level),

step s_t^2 / 2 and noise s_t (s_t^2 rescaled by K_train / K), started from the initializer's proposal
y ~ N(G_t(x_{t+1}), init_std_t^2). A class-conditional initializer composes the same way (a product of
Gaussians of equal variance, Eq. 5.10 extended):

    G_t(x) = g(x; null) + (w + 1) sum_i lambda_i [g(x; c_i) - g(x; null)];

an unconditional one (the attribute models of §5.4.6) proposes g(x; null). The final Tweedie step at
level 0 follows grad F_0. Each Langevin step costs M + 1 network evaluations (one batched call).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from torch import Tensor

from . import checks
from .errors import SamplingError
from .protocol import SampleOutput

MAX_WEIGHT = 5.0  # |lambda| per concept
MAX_GUIDANCE = 20.0  # as CDRL.generate
# The attribute model's default guidance, chosen on seeds the evaluation never uses (1,000,000+, 40 per setting) on
# cdrl-fmnist-attributes after 120 min of training: w = 3 (the thesis) / 6 / 7 / 8 / 10 gave single-attribute accuracy
# 0.904 / 0.933 / 0.946 / 0.946 / 0.917 and two-attribute accuracy 0.652 / 0.706 / 0.713 / 0.723 / 0.731. Rule: the
# smallest w whose two-attribute accuracy clears the 0.70 bar by at least 0.01, because from w = 8 up the bright
# non-top samples saturate into white blobs (grids of all 8 combinations at w = 6, 8, 10, looked at).
ATTRIBUTE_GUIDANCE = 7.0
ATTRIBUTE_VALUES = (True, False, None)  # None = no control


@dataclass(frozen=True)
class Concept:
    name: str  # the model's class name ("Trouser", or "top=True" on an attribute model)
    label: int  # the network's label (1..C; 0 is the null class)
    weight: float  # lambda: > 0 AND, < 0 NOT

    def __str__(self) -> str:
        w = abs(self.weight)
        return ("" if self.weight > 0 else "NOT ") + self.name + ("" if w == 1 else f" (weight {w:g})")


@dataclass(frozen=True)
class Composition:
    """Concepts and guidance w; ``fhat`` and ``propose`` are the composed network terms F_t and G_t."""

    concepts: tuple[Concept, ...]
    guidance: float

    @property
    def labels(self) -> list[int]:
        """The network labels evaluated at every step: each concept's, then the null class."""
        return [c.label for c in self.concepts] + [0]

    @property
    def coefficients(self) -> list[float]:
        """F = sum_j coefficients[j] fhat(labels[j]): (w + 1) lambda_i per concept, -(w L + L - 1) for null."""
        w, total = self.guidance, sum(c.weight for c in self.concepts)
        return [(w + 1) * c.weight for c in self.concepts] + [-(w * total + total - 1)]

    def combine(self, parts: list[Tensor]) -> Tensor:
        """sum_j coefficients[j] parts[j], for parts evaluated at ``labels`` (network outputs, or any log-densities)."""
        out = None
        for coef, part in zip(self.coefficients, parts):
            out = coef * part if out is None else out + coef * part
        return out

    def fhat(self, model, y: Tensor, t: Tensor) -> Tensor:
        """F_t(y) per sample (higher = more probable), from one batched network call."""
        from .cdrl import _level_input

        sets = [torch.full_like(t, label) for label in self.labels]
        return self.combine(model.ebm.forward_many(y, _level_input(model.log_snr[t]), sets))

    def bind(self, model):
        """``fhat`` as a function of (y, t) for ``CDRL.refine``."""
        return lambda y, t: self.fhat(model, y, t)

    def propose(self, model, x_next: Tensor, t: Tensor) -> Tensor:
        """The proposal mean G_t(x_{t+1}): composed for a class-conditional initializer, g(x; null) otherwise."""
        if model.initializer is None or not model.config.conditional_initializer:
            return model.propose(x_next, t, torch.zeros_like(t))
        k = len(self.labels)
        means = model.propose(torch.cat([x_next] * k), t.repeat(k), torch.cat([torch.full_like(t, lab) for lab in self.labels]))
        return self.combine(list(means.chunk(k)))

    def describe(self) -> str:
        """The sampled network term with its numbers, e.g. ``F = 2 f(x; Trouser) - 2 f(x; Dress) + 1 f(x; null)``."""
        names = [c.name for c in self.concepts] + ["null"]
        terms = []
        for i, (coef, name) in enumerate(zip(self.coefficients, names)):
            if coef == 0 and name == "null":
                continue
            sign = "-" if coef < 0 else ("" if not terms else "+")
            terms.append(f"{sign} {abs(coef):.3g} f(x; {name})".lstrip())
        return "F = " + " ".join(terms)

    def network_evaluations(self, model, steps: int | None = None, *, tweedie: bool = True, init_only: bool = False) -> int:
        """Network evaluations per sample (each concept and the null class count once per call)."""
        k = len(self.labels)
        steps = model.config.langevin_steps if steps is None else steps
        proposal = 0 if model.initializer is None else (k if model.config.conditional_initializer else 1)
        per_level = proposal + (0 if init_only else k * steps)
        return model.config.num_levels * per_level + (k if tweedie and not init_only else 0)


# ----------------------------------------------------------------------------- reading concepts


def _label(config, name) -> tuple[str, int]:
    names = list(config.class_names)
    if isinstance(name, str):
        if name in ("null", "unconditional"):
            raise SamplingError("The unconditional model is part of every composition; list concepts only "
                                "(no concept at all samples unconditionally).")
        if name not in names:
            raise SamplingError(f"Unknown concept '{name}'. Choose from: {', '.join(names)}.")
        return name, names.index(name) + 1
    try:
        index = checks.integer("Concept index", name, 0, len(names) - 1)
    except SamplingError:
        raise SamplingError(f"Concept {name!r} is neither a class name nor an index 0..{len(names) - 1}. "
                            f"Choose from: {', '.join(names)}.") from None
    return names[index], index + 1


def _items(config, concepts) -> list[tuple[object, object]]:
    """(name or index, weight) pairs from a list of names / pairs, or an attribute dict."""
    if isinstance(concepts, dict):
        attributes = list(config.attributes)
        if not attributes:
            raise SamplingError("A dict of attribute values needs an attribute model; this model's concepts are its "
                                f"classes ({', '.join(config.class_names)}): pass e.g. [('Trouser', 1), ('Dress', -1)].")
        items = []
        for attr, value in concepts.items():
            if attr not in attributes:
                raise SamplingError(f"Unknown attribute '{attr}'. This model's attributes: {', '.join(attributes)}.")
            if value is not None and not isinstance(value, bool):
                raise SamplingError(f"Attribute '{attr}' must be True, False or None (no control); got {value!r}.")
            if value is not None:
                items.append((f"{attr}={value}", 1.0))
        return items
    if isinstance(concepts, (str, int)) or concepts is None:
        concepts = [] if concepts is None else [concepts]
    if not isinstance(concepts, (list, tuple)):
        raise SamplingError(f"Concepts must be a list of names or (name, weight) pairs, or a dict of attribute values; "
                            f"got {type(concepts).__name__}.")
    items = []
    for item in concepts:
        if isinstance(item, (list, tuple)):
            if len(item) != 2:
                raise SamplingError(f"A concept is a name or a (name, weight) pair; got {item!r}.")
            items.append((item[0], item[1]))
        else:
            items.append((item, 1.0))
    return items


def composition(config, concepts, guidance: float = 1.0) -> Composition:
    """Read and check concepts (see ``compose``) into a ``Composition``; every mistake is a ``SamplingError``."""
    w = checks.number("guidance w", guidance, 0, MAX_GUIDANCE)
    seen: dict[int, Concept] = {}
    attributes = list(config.attributes)
    by_attribute: dict[str, Concept] = {}
    for name, weight in _items(config, concepts):
        name, label = _label(config, name)
        lam = checks.number(f"Weight of '{name}'", weight, -MAX_WEIGHT, MAX_WEIGHT)
        if lam == 0:
            raise SamplingError(f"Weight of '{name}' is 0, which leaves it out: drop it, or give a weight in (0, {MAX_WEIGHT:g}] "
                                f"(AND) or [-{MAX_WEIGHT:g}, 0) (NOT).")
        concept = Concept(name, label, lam)
        if label in seen:
            old = seen[label]
            if (old.weight > 0) != (lam > 0):
                raise SamplingError(f"Contradictory: '{name}' is asked both AND and NOT.")
            raise SamplingError(f"'{name}' is listed twice; give each concept once (with one weight).")
        if attributes:
            attr = attributes[(label - 1) // 2]
            if attr in by_attribute:
                raise SamplingError(f"Contradictory: attribute '{attr}' is asked both as {by_attribute[attr]} and as {concept}; "
                                    "give each attribute one value (True, False or no control).")
            by_attribute[attr] = concept
        seen[label] = concept
    negated = {c.label for c in seen.values() if c.weight < 0}
    if not attributes and len(negated) == config.num_classes:
        raise SamplingError("NOT of every class leaves nothing to sample: keep at least one class out of the NOT list.")
    return Composition(tuple(seen.values()), w)


# ----------------------------------------------------------------------------- sampling


def compose_stream(model, concepts, *, guidance: float = 1.0, seeds="0-15", steps: int | None = None, noise: bool = True,
                   tweedie: bool = True, init_only: bool = False, image: Tensor | None = None, mask: Tensor | None = None,
                   record_every: int = 0, progress: bool = False) -> Iterator:
    """``compose`` as it happens: ``SampleUpdate``s after the top proposal and each level, then the result."""
    comp = composition(model.config, concepts, guidance)
    kwargs = dict(seeds=seeds, steps=steps, noise=noise, tweedie=tweedie, init_only=init_only, image=image, mask=mask,
                  record_every=record_every, progress=progress)
    if not comp.concepts:  # every attribute on "no control": exactly unconditional sampling
        return model.generate_stream(None, guidance=0.0, **kwargs)
    return model._generate(None, guidance=0.0, composition=comp, **kwargs)


def compose(model, concepts, *, guidance: float = 1.0, seeds="0-15", steps: int | None = None, noise: bool = True,
            tweedie: bool = True, init_only: bool = False, image: Tensor | None = None, mask: Tensor | None = None,
            record_every: int = 0, progress: bool = False) -> SampleOutput:
    """Sample the composition of ``concepts`` (the energy is in the module docstring), one image per seed.

    Args:
        concepts: a list of class names (or indices), each AND with weight 1, or of (name, weight) pairs,
            weight in [-5, 5] without 0 (negative = NOT): ``[("Trouser", 1), ("Dress", -1)]``. On an
            attribute model also a dict of attribute values, True / False / None (no control):
            ``{"top": True, "bright": False}``. An empty list samples unconditionally.
        guidance: w >= 0 (the thesis composes with w = 3); 0 = the plain product of experts.
        seeds, steps, noise, tweedie, init_only, image, mask, record_every, progress: as ``CDRL.generate``.
    Returns:
        ``SampleOutput`` (unpacks as ``images [N, C, H, W] in [-1, 1], Trace``): every level's chain under the composed energy.
    """
    for update in compose_stream(model, concepts, guidance=guidance, seeds=seeds, steps=steps, noise=noise, tweedie=tweedie,
                                 init_only=init_only, image=image, mask=mask, record_every=record_every, progress=progress):
        pass
    return SampleOutput(update.images, update.trace)


def composed_image_energy(model, x: Tensor, concepts, guidance: float = 1.0) -> Tensor:
    """-F_0(y) / s_0^2 of clean images x in [-1, 1], entered as level-0 data y = alpha_eff[0] abar_0 x
    (as ``CDRL.image_energy``); differentiable in x. No concept: the unconditional energy."""
    if not isinstance(x, Tensor) or x.dim() != 4:
        raise SamplingError("composed_energy expects images [N, C, H, W] in [-1, 1]; got "
                            f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}.")
    comp = composition(model.config, concepts, guidance)
    y = model.alpha_eff[0] * model.abar[0] * x
    t = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    return -comp.fhat(model, y, t) / model.step_sq[0]
