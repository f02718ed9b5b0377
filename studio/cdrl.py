"""CDRL (Cooperative Diffusion Recovery Likelihood) and its baseline DRL.

A sequence of T = 6 noise-conditional EBMs f(y, t) learns the data at
increasing noise levels of a variance-preserving diffusion. At each level an
initializer network g(x_{t+1}; t) proposes y_t, and K Langevin steps on the
recovery-likelihood conditional

    p(y_t | x_{t+1}) ∝ exp( f(y_t; t) - |y_t - x_{t+1}|^2 / (2 sigma_{t+1}^2) )

refine the proposal. DRL is the same EBM without the initializer: its chains
start at x_{t+1} and need more steps (K = 30).

Conventions and mapping onto ``studio.langevin`` (energy = lower is better):

* The network outputs fhat(y, t, c); the paper's f = fhat / s_t^2 with
  s_t^2 = step_coef * sbar_t * sigma_{t+1}^2 (step_coef = 0.054 for CDRL).
* Energy of the conditional: E(y) = -fhat(y)/s_t^2 + |y - x_{t+1}|^2 / (2 sigma_{t+1}^2).
* Paper update y += (s^2/2) grad log p + s eps  ->  ``step_size = s^2/2``, ``noise_std = s``.
* K differing from training: s_new^2 = s_train^2 * K_train / K (step ∝ 1/sqrt(K)),
  applied to the drift, the quadratic pull and the noise alike.
* Top level (t = T-1): no quadratic term and alpha = 1 (the EBM is the marginal of x_{T-1}).
* Labels: 0 is the null class (unconditional); class c is label c + 1. Guidance
  weight w follows the paper: log p~ = (w+1) f(y; c) - w f(y; null), so w = 0 means
  no guidance (diffusers' guidance_scale = w + 1). It is applied to both networks.
* Attribute models (§5.4.6): ``config.attributes`` names binary attributes; class 2i is attribute i
  True and class 2i + 1 False, and the initializer is unconditional (``conditional_initializer``).
  ``compose`` (studio/compose.py) samples products of concepts (AND / NOT) on either kind.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import checks
from .errors import SamplingError
from .kinds import register_model
from .langevin import Trace, langevin, make_generators, parse_seeds, randn, use_channels_last
from .nn import ConditionEmbedding, EBMResBlock, SmallUNet, sn_conv, sn_linear
from .protocol import EnergySpec, SampleOutput, StudioModel, TaskSpec, relative_noise, seeds_for_images

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


# ----------------------------------------------------------------------------- schedule


@dataclass(frozen=True)
class Schedule:
    """Per-level constants of the log-SNR schedule, as float64 tensors indexed by t = 0..T."""

    log_snr: Tensor  # lambda_t, [T+1]
    abar: Tensor  # signal scale, [T+1]
    sbar: Tensor  # noise scale, [T+1]
    alpha: Tensor  # alpha_{t+1} = abar_{t+1} / abar_t, [T]
    sigma: Tensor  # sigma_{t+1} = sqrt(1 - alpha_{t+1}^2), [T]
    step_sq: Tensor  # s_t^2 = step_coef * sbar_t * sigma_{t+1}^2, [T]
    init_std: Tensor  # initializer std in y-space, [T]


def log_snr_schedule(num_levels: int = 6, lambda_max: float = 9.8, lambda_min: float = -5.1, step_coef: float = 0.054) -> Schedule:
    """lambda(u) = -2 log tan(a u + b) at u = t/T (the CDRL schedule; see cdrl-coopflow-notes, part B)."""
    b = math.atan(math.exp(-0.5 * lambda_max))
    a = math.atan(math.exp(-0.5 * lambda_min)) - b
    u = torch.arange(num_levels + 1, dtype=torch.float64) / num_levels
    lam = -2 * torch.log(torch.tan(a * u + b))
    abar = torch.sigmoid(lam).sqrt()  # abar^2 / sbar^2 = exp(lambda) with abar^2 + sbar^2 = 1
    sbar = torch.sigmoid(-lam).sqrt()
    alpha = abar[1:] / abar[:-1]
    sigma = (1 - alpha**2).sqrt()
    step_sq = step_coef * sbar[:-1] * sigma**2
    # DDPM posterior std of x_t given x_{t+1}, mapped to y = alpha x_t; the top level keeps factor 1.
    post = ((1 - abar[:-1] ** 2) / (1 - abar[1:] ** 2)).sqrt() * sigma
    init_std = post * torch.where(torch.arange(num_levels) == num_levels - 1, torch.ones_like(alpha), alpha)
    return Schedule(lam, abar, sbar, alpha, sigma, step_sq, init_std)


# ----------------------------------------------------------------------------- networks


class NoiseConditionalEBM(nn.Module):
    """fhat(y, t, c): DRL-style spectral-norm residual network; higher fhat = more probable.

    Blocks at 32, 16, 8 and 4 px; ReLU, spatial sum, then an inner product with a
    projection of the (time + class) embedding.
    """

    def __init__(self, channels: int, width: int, blocks_per_level: int, temb_dim: int, num_classes: int):
        super().__init__()
        widths = [width, 2 * width, 2 * width, 2 * width]
        self.embed = ConditionEmbedding(temb_dim, num_classes, sn=True)
        self.inp = sn_conv(channels, width, 3)
        self.blocks = nn.ModuleList()
        cin = width
        for w in widths:
            self.blocks.append(nn.ModuleList(EBMResBlock(cin if i == 0 else w, w, temb_dim) for i in range(blocks_per_level)))
            cin = w
        self.head = sn_linear(temb_dim, cin)

    def forward(self, y: Tensor, level: Tensor, labels: Tensor) -> Tensor:
        temb = self.embed(level, labels)
        return self._trunk(self.inp(y), temb)

    def forward_pair(self, y: Tensor, level: Tensor, labels: Tensor, other_labels: Tensor) -> tuple[Tensor, Tensor]:
        """(fhat(y, level, labels), fhat(y, level, other_labels)) in one batched call, e.g. the conditional
        and null evaluations of guidance. The input conv and the first block's first conv do not see the
        label, so they run once for both halves (about a quarter of the work of a pass at 32 px)."""
        temb = self.embed(torch.cat([level, level]), torch.cat([labels, other_labels]))
        h = self.inp(y)
        first = self.blocks[0][0]
        pre = first.conv1(first.act(h))
        h = first(torch.cat([h, h]), temb, pre=torch.cat([pre, pre]))
        return self._trunk(h, temb, skip_first=True).chunk(2)

    def forward_many(self, y: Tensor, level: Tensor, label_sets: Sequence[Tensor]) -> list[Tensor]:
        """fhat(y, level, labels) for each of ``label_sets`` in one batched call (a composition's
        concepts and the null class), sharing the label-free first convolutions like ``forward_pair``."""
        k = len(label_sets)
        temb = self.embed(level.repeat(k), torch.cat(list(label_sets)))
        h = self.inp(y)
        first = self.blocks[0][0]
        pre = first.conv1(first.act(h))
        h = first(torch.cat([h] * k), temb, pre=torch.cat([pre] * k))
        return list(self._trunk(h, temb, skip_first=True).chunk(k))

    def _trunk(self, h: Tensor, temb: Tensor, skip_first: bool = False) -> Tensor:
        for i, level_blocks in enumerate(self.blocks):
            if i > 0:
                h = F.avg_pool2d(h, 2)
            for j, block in enumerate(level_blocks):
                if not (skip_first and i == 0 and j == 0):
                    h = block(h, temb)
        feat = F.relu(h).sum(dim=(2, 3))
        return (feat * self.head(temb)).sum(1)


class Initializer(nn.Module):
    """g(x_{t+1}; t, c): predicts y_t directly, as x_{t+1} + UNet(x_{t+1})."""

    def __init__(self, channels: int, width: int, temb_dim: int, num_classes: int, dropout: float = 0.1):
        super().__init__()
        self.embed = ConditionEmbedding(temb_dim, num_classes, act="silu")
        self.unet = SmallUNet(channels, (width, 2 * width, 2 * width), temb_dim, dropout)

    def forward(self, x_next: Tensor, level: Tensor, labels: Tensor) -> Tensor:
        return x_next + self.unet(x_next, self.embed(level, labels))


# ----------------------------------------------------------------------------- model


@dataclass
class SampleUpdate:
    """One step of ``CDRL.generate_stream``: a preview of the chain, or (``done``) the result."""

    label: str  # "level 5 proposal", "level 4", ..., "done"
    images: Tensor  # [N, C, H, W] in [-1, 1]
    trace: Trace | None = None  # the full Trace, on the final update only

    @property
    def done(self) -> bool:
        return self.trace is not None


@dataclass
class CDRLConfig:
    image_size: int = 32
    channels: int = 1
    num_classes: int = 10
    class_names: list[str] = field(default_factory=lambda: list(FASHION_CLASSES))
    ebm_width: int = 32
    ebm_blocks: int = 1
    init_width: int = 32
    temb_dim: int = 128
    num_levels: int = 6
    lambda_max: float = 9.8
    lambda_min: float = -5.1
    step_coef: float = 0.054
    langevin_steps: int = 15  # K used in training (the step-size reference)
    use_initializer: bool = True
    tweedie_coef: float = 2.0
    conditional_initializer: bool = True  # False: g(x; null) for every label (the attribute model of §5.4.6)
    attributes: list[str] = field(default_factory=list)  # attribute model: class 2i / 2i + 1 = attribute i True / False
    attribute_thresholds: dict[str, float] = field(default_factory=dict)  # training medians of pixel attributes


def _level_input(log_snr: Tensor) -> Tensor:
    """Networks see arctan(exp(-lambda/2)) / (pi/2) * 1000 (the authors' input scaling)."""
    return torch.atan(torch.exp(-0.5 * log_snr)) / (math.pi / 2) * 1000


@register_model("cdrl")
class CDRL(nn.Module, StudioModel):
    """Cooperative diffusion recovery likelihood: EBM + initializer, guided sampling, inpainting."""

    config_class = CDRLConfig

    def __init__(self, config: CDRLConfig):
        super().__init__()
        self.config = config
        c = config
        self.ebm = NoiseConditionalEBM(c.channels, c.ebm_width, c.ebm_blocks, c.temb_dim, c.num_classes)
        self.initializer = Initializer(c.channels, c.init_width, c.temb_dim, c.num_classes) if c.use_initializer else None
        s = log_snr_schedule(c.num_levels, c.lambda_max, c.lambda_min, c.step_coef)
        self.schedule = s
        for name in ("abar", "sbar", "log_snr"):
            self.register_buffer(name, getattr(s, name).float(), persistent=False)
        for name in ("alpha", "sigma", "step_sq", "init_std"):
            self.register_buffer(name, getattr(s, name).float(), persistent=False)
        top = c.num_levels - 1
        # alpha = 1 and no quadratic pull at the top level.
        self.register_buffer("alpha_eff", torch.where(torch.arange(c.num_levels) == top, 1.0, self.alpha), persistent=False)

    # -- network wrappers ------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def fhat(self, y: Tensor, t: Tensor, labels: Tensor) -> Tensor:
        return self.ebm(y, _level_input(self.log_snr[t]), labels)

    def energy(self, y: Tensor, t: Tensor | int = 0, labels: Tensor | None = None) -> Tensor:
        """Marginal energy -f(y; t) = -fhat / s_t^2 at level t (lower = more probable)."""
        if not isinstance(y, Tensor) or y.dim() != 4:
            raise SamplingError(f"energy expects a tensor [N, C, H, W]; got {tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__}.")
        t, labels = self._broadcast(y, t, labels)
        return -self.fhat(y, t, labels) / self.step_sq[t]

    def image_energy(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """The energy of clean images x in [-1, 1] at the lowest noise level (level 0).

        Level 0's data are y = alpha_eff[0] x_0 with x_0 = abar_0 x + sbar_0 eps (``training_losses``;
        alpha_eff[0] is alpha_1 = abar_1 / abar_0, or 1 when level 0 is the top), so a noiseless image
        enters ``energy`` as alpha_eff[0] abar_0 x; callers need not know that scaling. Gradients flow to
        ``x`` (for saliency and disagreement maps)."""
        if not isinstance(x, Tensor) or x.dim() != 4:
            raise SamplingError("image_energy expects images [N, C, H, W] in [-1, 1]; got "
                                f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}.")
        return self.energy(self.alpha_eff[0] * self.abar[0] * x, 0, labels)

    def propose(self, x_next: Tensor, t: Tensor, labels: Tensor) -> Tensor:
        """Initializer mean g(x_{t+1}; lambda_{t+1}); without an initializer (DRL) it is x_{t+1}."""
        if self.initializer is None:
            return x_next
        if not self.config.conditional_initializer:
            labels = torch.zeros_like(labels)
        return self.initializer(x_next, _level_input(self.log_snr[t + 1]), labels)

    def _broadcast(self, y: Tensor, t: Tensor | int, labels: Tensor | None) -> tuple[Tensor, Tensor]:
        b = y.shape[0]
        t = torch.as_tensor(t, device=y.device).long().expand(b) if not torch.is_tensor(t) or t.dim() == 0 else t.long()
        labels = torch.zeros(b, dtype=torch.long, device=y.device) if labels is None else labels
        return t, labels

    # -- guided networks (one batched call for cond + null) ----------------------------------

    def guided_fhat(self, y: Tensor, t: Tensor, labels: Tensor, w: float) -> Tensor:
        if not self._guided(labels, w):
            return self.fhat(y, t, labels)
        return self._pair_fhat(y, t, labels, w)

    def _pair_fhat(self, y: Tensor, t: Tensor, labels: Tensor, w: float) -> Tensor:
        """(w + 1) fhat(y; c) - w fhat(y; null), both from one network call (``forward_pair``)."""
        cond, null = self.ebm.forward_pair(y, _level_input(self.log_snr[t]), labels, torch.zeros_like(labels))
        return (w + 1) * cond - w * null

    def guided_propose(self, x_next: Tensor, t: Tensor, labels: Tensor, w: float) -> Tensor:
        if self.initializer is None or w == 0 or bool((labels == 0).all()) or not self.config.conditional_initializer:
            return self.propose(x_next, t, labels)
        both = self.propose(torch.cat([x_next, x_next]), torch.cat([t, t]), torch.cat([labels, torch.zeros_like(labels)]))
        cond, null = both.chunk(2)
        return (w + 1) * cond - w * null

    # -- the recovery-likelihood Langevin ----------------------------------------------------

    def step_scale(self, t: Tensor, steps: int) -> Tensor:
        """s_t^2 rescaled for K steps: s_train^2 * K_train / K."""
        return self.step_sq[t] * (self.config.langevin_steps / steps)

    def refine(
        self,
        y0: Tensor,
        x_next: Tensor,
        t: Tensor,
        labels: Tensor,
        *,
        steps: int,
        w: float = 0.0,
        noise: bool = True,
        generator=None,
        mask: Tensor | None = None,
        known: Tensor | None = None,
        record_every: int = 0,
        fhat_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    ) -> tuple[Tensor, Trace]:
        """K Langevin steps on p(y_t | x_{t+1}) from y0 (per-sample level t allowed).

        ``fhat_fn(y, t)`` replaces the (guided) network term, e.g. a composition's; labels and w are then unused."""
        s_train_sq = self.step_sq[t].view(-1, 1, 1, 1)
        s_sq = self.step_scale(t, steps).view(-1, 1, 1, 1)
        sig_sq = self.sigma[t].pow(2).view(-1, 1, 1, 1)
        quad_on = (self.alpha_eff[t] != 1).float().view(-1, 1, 1, 1)
        x_anchor = x_next.detach()
        f_scale = s_train_sq.flatten()
        guided = self._guided(labels, w)  # decided once per chain, not at every step

        def energy(y: Tensor) -> Tensor:
            if fhat_fn is not None:
                f = fhat_fn(y, t)
            else:
                f = self._pair_fhat(y, t, labels, w) if guided else self.fhat(y, t, labels)
            quad = (quad_on * (y - x_anchor).pow(2) / (2 * sig_sq)).flatten(1).sum(1)
            return -f / f_scale + quad

        return langevin(energy, y0, steps=steps, step_size=s_sq / 2, noise_std=s_sq.sqrt() if noise else 0.0,
                        generator=generator, mask=mask, known=known, record_every=record_every, modules=[self.ebm])

    @staticmethod
    def _guided(labels: Tensor, w: float) -> bool:
        """Whether guidance changes anything (w != 0 and some label is a class); checked once per chain."""
        return w != 0 and not bool((labels == 0).all())

    # -- sampling (Algorithm 5) --------------------------------------------------------------

    def _labels(self, classes: Sequence[int | str | None] | int | str | None, n: int) -> Tensor:
        """Map class names / indices (or None = unconditional) to labels 0 (null) .. C."""
        items = list(classes) if isinstance(classes, (list, tuple)) else [classes] * n
        if len(items) != n:
            raise SamplingError(f"Got {len(items)} classes for {n} seeds; give one class or one per seed.")
        out = []
        for c in items:
            if c is None or c == "unconditional":
                out.append(0)
            elif isinstance(c, str):
                if c not in self.config.class_names:
                    raise SamplingError(f"Unknown class '{c}'. Choose one of: {', '.join(self.config.class_names)} (or None).")
                out.append(self.config.class_names.index(c) + 1)
            else:
                try:
                    out.append(checks.integer("Class index", c, 0, self.config.num_classes - 1) + 1)
                except SamplingError:
                    raise SamplingError(f"Class index {c!r} is out of range 0..{self.config.num_classes - 1} "
                                        "(or not a class name).") from None
        return torch.tensor(out, dtype=torch.long, device=self.device)

    def network_evaluations(self, steps: int | None = None, init_only: bool = False, tweedie: bool = True, w: float = 0.0) -> int:
        """Network evaluations per sample (a guided call counts twice: cond and null)."""
        k = self.config.langevin_steps if steps is None else steps
        mult = 2 if w else 1
        per_level = (1 if self.initializer is not None else 0) + (0 if init_only else k)
        return mult * (self.config.num_levels * per_level + (1 if tweedie and not init_only else 0))

    def generate(
        self,
        classes=None,
        *,
        seeds="0-15",
        guidance: float = 0.0,
        steps: int | None = None,
        noise: bool = True,
        tweedie: bool = True,
        init_only: bool = False,
        image: Tensor | None = None,
        mask: Tensor | None = None,
        record_every: int = 0,
        progress: bool = False,
    ) -> SampleOutput:
        """Sample images in [-1, 1], one per seed.

        Args:
            classes: None (unconditional), a class name / index, or one per seed.
            guidance: w >= 0; 0 = no guidance.
            steps: Langevin steps K per level (default: the training K; step size rescaled).
            noise: Langevin noise on/off. tweedie: final denoising step at t = 0.
            init_only: skip Langevin; use the initializer's proposals only (CDRL only).
            image, mask: inpainting; ``mask == 1`` marks known pixels kept from ``image``.
            record_every: Trace frames every n Langevin steps (plus each level's proposal).
        Returns:
            ``SampleOutput`` (unpacks as ``images [N, C, H, W], Trace``) where the Trace concatenates every level.
        """
        for update in self.generate_stream(classes, seeds=seeds, guidance=guidance, steps=steps, noise=noise, tweedie=tweedie,
                                           init_only=init_only, image=image, mask=mask, record_every=record_every,
                                           progress=progress):
            pass
        return SampleOutput(update.images, update.trace)

    def generate_stream(self, classes=None, **kwargs) -> Iterator[SampleUpdate]:
        """``generate`` as it happens: a ``SampleUpdate`` after the top level's proposal and after
        each level's chain (the current state x_t, clamped to [-1, 1]), then a final one with the
        samples and the Trace (``update.done``). Same arguments and results as ``generate``."""
        return self._generate(classes, **kwargs)

    def _generate(self, classes=None, *, seeds="0-15", guidance: float = 0.0, steps: int | None = None, noise: bool = True,
                  tweedie: bool = True, init_only: bool = False, image: Tensor | None = None, mask: Tensor | None = None,
                  record_every: int = 0, progress: bool = False, composition=None) -> Iterator[SampleUpdate]:
        """The ancestral sampler. ``composition`` (a ``studio.compose.Composition``) replaces the guided
        networks by composed ones: its ``propose(model, x, t)`` and ``fhat(model, y, t)``."""
        cfg = self.config
        k = cfg.langevin_steps if steps is None else checks.integer("steps (K)", steps, 1, 200)
        guidance = checks.number("guidance w", guidance, 0, 20)
        if init_only and self.initializer is None:
            raise SamplingError("This model has no initializer (DRL): initializer-only sampling is not available.")
        seed_list = parse_seeds(seeds, max_count=1024)
        n = len(seed_list)
        gens = make_generators(seed_list, "cpu")
        labels = self._labels(classes, n)
        shape = (n, cfg.channels, cfg.image_size, cfg.image_size)
        known0 = mask_t = None
        if (image is None) != (mask is None):
            raise SamplingError("Inpainting needs both an image and a mask (1 = known pixel).")
        if image is not None:
            known0, mask_t = self._check_inpaint(image, mask, n)
            obs_noise = randn(shape, gens).to(self.device)  # one noise per sample, shared by all levels
        x = randn(shape, gens).to(self.device)
        if self.initializer is not None:
            use_channels_last(self.initializer, x)  # the engine's layout policy (13% faster on this CPU)
        trace = Trace()
        top = cfg.num_levels - 1
        for t_int in self._progress(range(top, -1, -1), progress):
            t = torch.full((n,), t_int, dtype=torch.long, device=self.device)
            known_y = None
            if known0 is not None:
                known_x = self.abar[t_int] * known0 + self.sbar[t_int] * obs_noise
                known_y = self.alpha_eff[t_int] * known_x
            with torch.no_grad():
                mean = composition.propose(self, x, t) if composition else self.guided_propose(x, t, labels, guidance)
            std = self.init_std[t_int] if self.initializer is not None else 0.0
            y = mean + std * randn(shape, gens).to(self.device) if self.initializer is not None else mean.clone()
            if known_y is not None:
                y = mask_t * known_y + (1 - mask_t) * y
            level = Trace()
            if record_every:
                level.add_frame(y, "proposal")
            if t_int == top:  # the first thing worth showing, one network call in
                yield SampleUpdate(f"level {t_int} proposal", (y / self.alpha_eff[t_int]).clamp(-1, 1))
            if not init_only:
                y, chain = self.refine(y, x, t, labels, steps=k, w=guidance, noise=noise, generator=gens,
                                       mask=mask_t if known_y is not None else None, known=known_y, record_every=record_every,
                                       fhat_fn=composition.bind(self) if composition else None)
                level.extend(chain)
            trace.extend(level, f"level {t_int}")
            x = y / self.alpha_eff[t_int]
            if t_int > 0:
                yield SampleUpdate(f"level {t_int}", x.clamp(-1, 1))
        if tweedie and not init_only:
            x = self._tweedie(x, labels, guidance, composition.bind(self) if composition else None)
        if known0 is not None:
            x = mask_t * known0 + (1 - mask_t) * x
        if not torch.isfinite(x).all():
            raise SamplingError("Sampling diverged (non-finite pixels). Try fewer guidance or more steps.")
        yield SampleUpdate("done", x.clamp(-1, 1), trace)

    def inpaint(self, image: Tensor, mask: Tensor, **kwargs) -> SampleOutput:
        """Complete ``image`` where ``mask == 0``; different seeds give different completions. Seeds pair with
        images as everywhere (``studio.protocol.seeds_for_images``): one seed for several images means s, s+1, ..."""
        if kwargs.get("seeds") is not None and isinstance(image, Tensor) and image.dim() == 4 and image.shape[0] > 1:
            kwargs["seeds"] = seeds_for_images(parse_seeds(kwargs["seeds"], max_count=1024), image.shape[0])
        return self.generate(image=image, mask=mask, **kwargs)

    # -- composition (AND / NOT of concepts; the sampler is the same, see studio/compose.py) ---

    def compose(self, concepts, **kwargs) -> SampleOutput:
        """Sample a product of concepts, e.g. ``m.compose([("Trouser", +1), ("Dress", -1)], guidance=1.0,
        seeds="0-7")`` or, on an attribute model, ``m.compose({"top": True, "bright": False})``.
        See ``studio.compose.compose`` for the energy sampled and the arguments."""
        from .compose import compose

        return compose(self, concepts, **kwargs)

    def compose_stream(self, concepts, **kwargs) -> Iterator[SampleUpdate]:
        """``compose`` as it happens (previews per level, then the result), like ``generate_stream``."""
        from .compose import compose_stream

        return compose_stream(self, concepts, **kwargs)

    def composed_energy(self, x: Tensor, concepts, guidance: float = 0.0) -> Tensor:
        """The composed energy of clean images x in [-1, 1] at level 0 (``image_energy`` of a composition)."""
        from .compose import composed_image_energy

        return composed_image_energy(self, x, concepts, guidance)

    def _check_inpaint(self, image: Tensor, mask: Tensor, n: int) -> tuple[Tensor, Tensor]:
        cfg = self.config
        want = (cfg.channels, cfg.image_size, cfg.image_size)
        img = checks.images("Inpainting image", image, want)
        if not isinstance(mask, Tensor) or mask.dim() < 2:
            raise SamplingError(f"Mask must be a 0/1 tensor of size {want[1:]} (1 = known pixel); got {type(mask).__name__}.")
        m = mask if mask.dim() == 4 else mask.reshape(1, 1, *mask.shape[-2:])
        if tuple(m.shape[-2:]) != want[1:] or not ((m == 0) | (m == 1)).all():
            raise SamplingError(f"Mask must be 0/1 of size {want[1:]} (1 = known pixel); got shape {tuple(mask.shape)}.")
        if img.shape[0] not in (1, n):
            raise SamplingError(f"Got {img.shape[0]} images for {n} seeds; give one image or one per seed.")
        return img.expand(n, *want).float().to(self.device), m.float().to(self.device)

    def _tweedie(self, x: Tensor, labels: Tensor, w: float, fhat_fn: Callable[[Tensor, Tensor], Tensor] | None = None) -> Tensor:
        """E[x0 | x_0-level] = (x + coef * sbar_0^2 grad log p_0(x)) / abar_0 (coef = 2 as in the paper)."""
        t = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        with torch.inference_mode(False), torch.enable_grad():
            xr = x.detach().requires_grad_(True)
            f = fhat_fn(xr, t) if fhat_fn is not None else self.guided_fhat(xr, t, labels, w)
            logp = f / self.step_sq[0]
            (grad,) = torch.autograd.grad(logp.sum(), xr)
        return (x + self.config.tweedie_coef * self.sbar[0] ** 2 * grad) / self.abar[0]

    @staticmethod
    def _progress(it, progress: bool):
        from tqdm.auto import tqdm

        return tqdm(it, disable=not progress, desc="levels", leave=False)

    # -- training losses (used by train/cdrl.py; no optimiser here) ---------------------------

    def training_losses(self, x0: Tensor, labels: Tensor, *, label_dropout: float = 0.1, generator: torch.Generator | None = None,
                        init_target: str = "refined") -> dict[str, Tensor]:
        """One CDRL step's losses on a data batch x0 in [-1, 1] with class indices (0..C-1).

        Returns ``ebm_loss`` (weighted fhat(neg) - fhat(pos)), ``init_loss`` and stats.
        Uses one shared noise e for x_t and x_{t+1} (noise variance reduction).

        ``init_target``: "refined" (the paper) regresses g(x_{t+1}) on the EBM-refined
        sample; "data" regresses it on y_t from a forward step with *fresh* noise,
        x_{t+1} = y_t + sigma_{t+1} eps, i.e. on the true conditional mean (the paper's
        ablation "initializer regresses on data"). "data" converges far faster early
        in training, which is what a CPU budget of a few thousand steps needs.
        """
        if init_target not in ("refined", "data"):
            raise ValueError(f"init_target must be 'refined' or 'data'; got {init_target!r}")
        cfg = self.config
        b, dev = x0.shape[0], x0.device
        t = torch.randint(0, cfg.num_levels, (b,), device=dev, generator=generator)
        lab = labels.long() + 1
        drop = torch.rand(b, device=dev, generator=generator) < label_dropout
        lab = torch.where(drop, torch.zeros_like(lab), lab)
        e = torch.randn(x0.shape, device=dev, generator=generator)
        bc = lambda v: v.view(-1, 1, 1, 1)  # noqa: E731
        x_t = bc(self.abar[t]) * x0 + bc(self.sbar[t]) * e
        x_next = bc(self.abar[t + 1]) * x0 + bc(self.sbar[t + 1]) * e
        y_pos = bc(self.alpha_eff[t]) * x_t
        if self.initializer is not None:
            with torch.set_grad_enabled(init_target == "refined" and torch.is_grad_enabled()):
                mean = self.propose(x_next, t, lab)
            y0 = mean.detach() + bc(self.init_std[t]) * torch.randn(x0.shape, device=dev, generator=generator)
        else:
            mean, y0 = None, x_next.detach()
        was_training = self.ebm.training
        self.ebm.eval()  # no spectral-norm power iterations inside the chain
        y_neg, _ = self.refine(y0, x_next, t, lab, steps=cfg.langevin_steps, generator=generator)
        self.ebm.train(was_training)
        weight = self.sigma[0] / self.sigma[t]
        f = self.fhat(torch.cat([y_pos, y_neg]), torch.cat([t, t]), torch.cat([lab, lab]))
        f_pos, f_neg = f.chunk(2)
        ebm_loss = (weight * (f_neg - f_pos)).mean()
        out = {"ebm_loss": ebm_loss, "f_pos": f_pos.mean().detach(), "f_neg": f_neg.mean().detach()}
        if mean is not None and init_target == "refined":
            out["init_loss"] = (y_neg.detach() - mean).pow(2).flatten(1).sum(1).mean()
        elif mean is not None:
            x_fresh = y_pos + bc(self.sigma[t]) * torch.randn(x0.shape, device=dev, generator=generator)
            out["init_loss"] = (y_pos - self.propose(x_fresh, t, lab)).pow(2).flatten(1).sum(1).mean()
        return out


    # -- the model protocol (studio.protocol) ------------------------------------------------

    title = "CDRL"

    @classmethod
    def task_specs(cls, config: CDRLConfig) -> list[TaskSpec]:
        """generate, inpaint and compose; ``steps`` is K per noise level (``levels`` of them), the step size follows
        from K (s_train^2 K_train / K), and ``noise`` is on (1) or off (0), see ``_run``."""
        shared = {"classes": None, "guidance": 0.0, "steps": config.langevin_steps, "noise": 1.0, "tweedie": True}
        levels = config.num_levels
        return [
            TaskSpec("generate", "generate", {**shared, "init_only": False} if config.use_initializer else shared,
                     saliency=True, levels=levels,
                     describe="through every noise level, starting at the top level's proposal (saliency is summed over the levels)"),
            TaskSpec("inpaint", "inpaint", shared, frozenset({"image", "mask"}), saliency=True, levels=levels,
                     describe="every noise level keeps the known pixels (noised to that level)"),
            TaskSpec("compose", "compose", {"concepts": [], "guidance": 1.0, "steps": config.langevin_steps, "noise": 1.0,
                                            "tweedie": True}, frozenset({"concepts"}),
                     levels=levels, describe="the product of the concepts' energies at every noise level"),
        ]

    @classmethod
    def image_energy_spec(cls, config: CDRLConfig) -> EnergySpec:
        return EnergySpec(describe=" at the lowest noise level")

    def _run(self, spec: TaskSpec, image, mask, **kwargs):
        """The shared ``noise`` -> CDRL's switch. CDRL's noise std at level t is s_t, fixed with the step size s_t^2/2
        by the recovery-likelihood schedule, so its chains are proper Langevin (shared noise 1, the sampler's
        ``noise=True``) or noise-free descent (0, ``noise=False``); other fractions would leave that schedule and
        are refused."""
        if "noise" in kwargs:
            level = relative_noise(kwargs["noise"])
            if level not in (0.0, 1.0):
                raise SamplingError(f"CDRL's noise is set per level by its schedule: noise is 1 (on) or 0 (off); got {level:g}.")
            kwargs["noise"] = level == 1.0
        return super()._run(spec, image, mask, **kwargs)


@dataclass
class DRLConfig(CDRLConfig):
    """DRL: no initializer; chains start at x_{t+1}; K = 30; DRL's smaller step coefficient."""

    use_initializer: bool = False
    langevin_steps: int = 30
    step_coef: float = 0.0268  # DRL code: s_t^2 = 2e-4 * (sbar_t / sbar_0) * sigma_{t+1}^2


@register_model("drl")
class DRL(CDRL):
    """Diffusion recovery likelihood: the CDRL EBM sampled without an initializer."""

    config_class = DRLConfig
    title = "DRL"
