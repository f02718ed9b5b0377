"""EGC: one network that classifies and generates (Guo et al., ICCV 2023).

A classifier f(x_t, t) -> logits over C classes is read as a joint energy over
*noisy* diffusion samples: p(x_t, y) ∝ exp(f(x_t, t)[y]). Then

* forward pass:  p(y | x_t) = softmax(f)[y]   (classification, at t = 0 for real images);
* free energy:   E(x_t, t) = -logsumexp_y f(x_t, t)[y]   (lower = more probable; ``energy()``);
* backward pass: grad_x logsumexp f = -grad_x E, trained to regress -eps, so the DDPM/DDIM
  epsilon is eps_hat = -grad_x logsumexp f = grad_x E (``score()`` returns -eps_hat).

Training (Algorithm 1, needs double backprop)::

    x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps
    L = || grad_x logsumexp f(x_t, t) + eps ||^2 + gamma * w(t) * CE(f(x_t, t), y)

Choices (the paper text wins over the notes; where both are silent, what fits a CPU budget):

* Fisher term averaged over pixels (DDPM's ``mean_flat``) instead of summed; the minimiser is the
  same, it only rescales gamma.
* CE weight w(t) = sqrt(abar_t) (the authors' code, notes) times gamma; label smoothing optional.
  Because w(t) vanishes at high noise and classification is judged at t = 0, a fraction
  ``low_t_fraction`` of each batch draws t from the lowest ``low_t_max`` steps (the Fisher term
  still sees every t; this is importance on where the classifier is evaluated).
* The network: a small ADM-style U-Net (GroupNorm/SiLU residual blocks with time scale-shift, no
  spectral norm, as the paper) whose full-resolution output map is pooled by single-head attention
  pooling (CLIP-style, as the paper) into C logits.
* A fixed, class-independent quadratic term -sqrt(1 - abar_t) |x_t|^2 / 2 is added to every logit
  (``base_quadratic``). It cancels in softmax, so classification is unchanged, but its gradient
  -sqrt(1 - abar_t) x_t is the exact target -eps for pure-noise x_t: the network then only learns
  the residual, which a gradient-parameterised score needs badly on a CPU budget.
* Classifier guidance (notes): eps' = eps_hat - sqrt(1 - abar_t) * s * grad log p(y | x_t), i.e. the
  guided energy E_s(x) = -(logsumexp f + s sqrt(1 - abar_t) log_softmax(f)[y]) and eps' = grad E_s:
  one forward and one backward pass of the same network.

Why the first design failed, and the fix (``density_units``, ``gaussian_base``, ``residual``)
------------------------------------------------------------------------------------------
The first checkpoint classified well (0.908) but its DDIM samples were noise: its denoising loss equalled
the fixed quadratic's at every t. Two reasons, measured on it: (1) the logits come out of GroupNorm ->
attention pooling -> linear, a bounded function, while the class-independent log-density must change by
hundreds of nats across a noise ball, and cross-entropy never pushes on that part; (2) the quadratic base
is exact only for N(0, I) data, and Fashion-MNIST (mean -0.56, a constant -1 border) is far from it. The
fix, in three parts (each a departure from the paper, which has neither; the paper's network is free to
learn everything, given GPU-weeks):

* ``density_units``: the logits are log p(x_t, y) + const, not sqrt(1 - abar_t) times it, so
  eps_hat = -sqrt(1 - abar_t) grad logsumexp f and the Fisher term is the same denoising loss. softmax(f)
  is then the exact posterior p(y | x_t) and guidance is unchanged in form.
* ``gaussian_base``: a class-independent analytic term, the log-density of the data's Gaussian
  (``"single"``) or of a mixture of one Gaussian per class (``"classes"``, the shipped choice), diffused
  exactly to each t: N(sqrt(abar_t) m_c, abar_t S_c + (1 - abar_t) I), with S_c a rank-``base_rank``
  PCA plus one shared variance for the rest (``fit_gaussian_base``, from the training images). It is
  added to every logit, so it cancels in softmax (the classifier is the attention head alone) while the
  score starts from the mixture's. Making the Gaussians class-dependent logits instead would hand
  classification to their likelihood ratios (hundreds of nats at t = 0: 0.79 test accuracy, measured).
* ``residual="sum"``: an unbounded learned class-independent term, a per-pixel potential from the U-Net's
  full-resolution features summed over the image, divided by sqrt(1 - abar_t) so its gradient is in eps
  units at every t; zero-initialised, so training starts exactly from the base.

Why the learned part then still added nothing, and the fix (a training recipe, ``train/configs/egc_fmnist_v4.yaml``)
-------------------------------------------------------------------------------------------------------------------
With the design above, three runs (2.7 h) still left the full model's denoising loss equal to the base's (t = 100:
0.1659 vs 0.1660), and the residual head had only random-walked. Measured from those weights: the cross-entropy terms
gave a total gradient norm of 2-4 against the Fisher term's 0.05-0.1, so gradient clipping and Adam's second moments
were set by the classifier and the denoising term had no say (gain after 3 minutes: 0.0000 with them, +0.016 with the
cross-entropy off). The fourth run continues with a small cross-entropy (gamma 0.05, low_t_ce 0.1) that keeps the
already trained classifier, and spends 0.6 of each batch at t < 400, where the base is furthest from the data.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from . import checks
from .errors import SamplingError, StudioError
from .kinds import register_model
from .langevin import Trace, frozen, make_generators, parse_seeds, randn, report_step
from .nn import UNetBlock, sinusoidal_embedding, unet_trunk
from .protocol import EnergySpec, SampleOutput, StudioModel, TaskSpec, relative_noise
from .runtime import check_deadline

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


@dataclass
class EGCConfig:
    image_size: int = 32
    channels: int = 1
    num_classes: int = 10
    class_names: list[str] = field(default_factory=lambda: list(FASHION_CLASSES))
    widths: list[int] = field(default_factory=lambda: [32, 64, 64])  # channels per resolution (32, 16, 8 px)
    emb_dim: int = 128
    feat_dim: int = 64  # channels of the full-resolution map that attention pooling reads
    dropout: float = 0.0
    num_timesteps: int = 1000  # DDPM T, linear betas
    beta_start: float = 1e-4
    beta_end: float = 0.02
    base_quadratic: bool = True  # the first design's fixed N(0, I) base (eps units); ignored when density_units
    # The fix of the first checkpoint's unlearned score (see "Why the first design failed" above):
    density_units: bool = False  # logits are log p(x_t, y) (+ const): eps_hat = -sqrt(1 - abar_t) grad logsumexp f
    # "none", "single" (one Gaussian fitted to all the data) or "classes" (a mixture of one Gaussian per
    # class); each diffused analytically to every t and added to every logit (class-independent).
    gaussian_base: str = "none"
    base_rank: int = 128  # principal directions kept per Gaussian; the rest share one variance (PPCA)
    residual: str = "none"  # "none" or "sum": a class-independent, unbounded learned log-density term
    base_min_var: float = 1e-3  # variance floor of the fitted Gaussians (constant background pixels)
    sample_steps: int = 50  # default DDIM steps
    guidance: float = 1.0  # default classifier-guidance scale s


class AttentionPool(nn.Module):
    """CLIP-style single-head attention pooling: the mean token queries all positions."""

    def __init__(self, dim: int, size: int, out: int):
        super().__init__()
        self.pos = nn.Parameter(torch.randn(size * size + 1, dim) / math.sqrt(dim))
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, out)

    def forward(self, h: Tensor) -> Tensor:
        tokens = h.flatten(2).transpose(1, 2)  # [B, HW, D]
        tokens = torch.cat([tokens.mean(1, keepdim=True), tokens], 1) + self.pos[None]
        q, k, v = self.qkv(tokens).chunk(3, dim=-1)
        attn = torch.softmax(q[:, :1] @ k.transpose(1, 2) / math.sqrt(q.shape[-1]), dim=-1)  # [B, 1, HW+1]
        return self.proj((attn @ v)[:, 0])


class EGCNet(nn.Module):
    """U-Net (one block per resolution, skip connections) -> attention pooling -> logits."""

    def __init__(self, c: EGCConfig):
        super().__init__()
        self.emb_dim = c.emb_dim
        self.temb = nn.Sequential(nn.Linear(c.emb_dim, c.emb_dim), nn.SiLU(), nn.Linear(c.emb_dim, c.emb_dim))
        widths = list(c.widths)
        self.inp = nn.Conv2d(c.channels, widths[0], 3, padding=1)
        self.down = nn.ModuleList()
        cin = widths[0]
        for w in widths:
            self.down.append(UNetBlock(cin, w, c.emb_dim, c.dropout))
            cin = w
        self.mid = UNetBlock(cin, cin, c.emb_dim, c.dropout)
        self.up = nn.ModuleList()
        for w in reversed(widths):
            self.up.append(UNetBlock(cin + w, w, c.emb_dim, c.dropout))
            cin = w
        self.out_norm = nn.GroupNorm(math.gcd(8, cin), cin)
        self.out = nn.Conv2d(cin, c.feat_dim, 3, padding=1)
        self.pool = AttentionPool(c.feat_dim, c.image_size, c.num_classes)
        if c.residual not in ("none", "sum"):
            raise StudioError(f"EGC residual must be 'none' or 'sum'; got {c.residual!r}.")
        self.residual = None
        if c.residual == "sum":
            # A per-pixel potential summed over the image: unbounded (it grows with the image, not through a
            # softmax-bounded pooling), so the class-independent log-density can change by hundreds of nats
            # across a noise ball. Zero-initialised: training starts from the analytic base exactly.
            self.residual = nn.Conv2d(c.feat_dim, c.channels, 1)
            nn.init.zeros_(self.residual.weight)
            nn.init.zeros_(self.residual.bias)

    def forward(self, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor | None]:
        """(class logits [B, C] from attention pooling, summed residual potential [B] or None)."""
        emb = self.temb(sinusoidal_embedding(t.float(), self.emb_dim).to(x.dtype))
        h = unet_trunk(self, x, emb)
        feat = self.out(F.silu(self.out_norm(h)))
        res = None if self.residual is None else self.residual(F.silu(feat)).flatten(1).sum(1)
        return self.pool(feat), res


def fgsm(logits_fn: Callable[[Tensor], Tensor], images: Tensor, labels: Tensor, eps: float) -> Tensor:
    """Fast gradient sign attack: x + eps * sign(grad_x CE(logits_fn(x), y)), clamped to [-1, 1].

    ``eps`` is in [-1, 1] pixel units. Works for any classifier given as a logits function.
    """
    eps = checks.number("FGSM epsilon (in [-1, 1] units)", eps, 0, 2)
    images = checks.finite("Images", checks.images("FGSM images", images))
    if not isinstance(labels, Tensor) or labels.dim() != 1 or labels.is_floating_point() or labels.is_complex() \
            or len(labels) != len(images):
        raise SamplingError(f"FGSM labels must be an integer tensor [{len(images)}], one class index per image; "
                            f"got {getattr(labels, 'shape', type(labels).__name__)}.")
    with torch.inference_mode(False), torch.enable_grad():
        x = images.detach().clone().requires_grad_(True)
        logits = logits_fn(x)
        if labels.min() < 0 or labels.max() >= logits.shape[1]:
            raise SamplingError(f"FGSM labels must be class indices 0..{logits.shape[1] - 1}; got {labels.tolist()}.")
        loss = F.cross_entropy(logits, labels.long().to(x.device), reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    return (images + eps * grad.sign()).clamp(-1, 1).detach()


def _trace_to_host(trace: Trace, frames: list[tuple[Tensor, int, str]]) -> None:
    """Move a DDIM record kept on the device to the host: one copy per list (energies, gradient norms, frames)."""
    stack = lambda ts: list(torch.stack(ts).cpu().unbind(0)) if ts else []  # noqa: E731
    trace.energies, trace.grad_norms = stack(trace.energies), stack(trace.grad_norms)
    trace.grad_sum = None if trace.grad_sum is None else trace.grad_sum.cpu()
    trace.frames = stack([f for f, _, _ in frames])
    trace.frame_steps, trace.frame_labels = [s for _, s, _ in frames], [label for _, _, label in frames]


@register_model("egc")
class EGC(nn.Module, StudioModel):
    """Energy-guided classifier/generator: logits f(x_t, t); energy -logsumexp f; eps = grad energy."""

    config_class = EGCConfig

    def __init__(self, config: EGCConfig):
        super().__init__()
        self.config = config
        self.net = EGCNet(config)
        betas = torch.linspace(config.beta_start, config.beta_end, config.num_timesteps, dtype=torch.float64)
        abar = torch.cumprod(1 - betas, 0)
        self.register_buffer("abar", abar.float(), persistent=False)
        if config.gaussian_base not in ("none", "single", "classes"):
            raise StudioError(f"EGC gaussian_base must be 'none', 'single' or 'classes'; got {config.gaussian_base!r}.")
        if config.gaussian_base != "none":
            # Per component: mean, top principal directions and their variances, the shared variance of the
            # remaining directions, and the log mixing weight (fit_gaussian_base); saved with the weights.
            d = config.channels * config.image_size**2
            k = min(config.base_rank, d)
            n = config.num_classes if config.gaussian_base == "classes" else 1
            self.register_buffer("base_mean", torch.zeros(n, d))
            self.register_buffer("base_eigvecs", torch.eye(d, k).repeat(n, 1, 1))
            self.register_buffer("base_eigvals", torch.ones(n, k))
            self.register_buffer("base_rest_var", torch.ones(n))
            self.register_buffer("base_log_weight", torch.full((n,), -math.log(n)))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _t(self, x: Tensor, t: Tensor | int) -> Tensor:
        if torch.is_tensor(t) and t.dim() == 1:
            return t.long().to(x.device)
        return torch.full((x.shape[0],), int(t), dtype=torch.long, device=x.device)

    # -- the one network ----------------------------------------------------------------------

    @torch.no_grad()
    def fit_gaussian_base(self, images: Tensor, labels: Tensor | None = None, batch_size: int = 2000) -> None:
        """Fit the analytic base to training images in [-1, 1] (and their labels, for ``"classes"``): per
        component the mean, the top ``base_rank`` eigenvectors of the covariance with their eigenvalues, the
        mean of the remaining eigenvalues, and the log share of the images.

        Variances are floored at ``base_min_var``: Fashion-MNIST's border pixels are a constant -1, and a
        zero-variance direction would make the base score infinite at t -> 0.
        """
        c = self.config
        if c.gaussian_base == "none":
            raise StudioError("This EGC has no Gaussian base (config gaussian_base is 'none').")
        flat = checks.finite("Images", self._check_images(images)).flatten(1).double()
        if c.gaussian_base == "classes":
            if labels is None or len(labels) != len(flat):
                raise StudioError("A per-class Gaussian base needs one label per image.")
            groups = [flat[labels.cpu() == y] for y in range(c.num_classes)]
        else:
            groups = [flat]
        if any(len(g) < 2 for g in groups):
            raise StudioError("Every Gaussian of the base needs at least two images.")
        k, dev = self.base_eigvecs.shape[-1], self.base_mean.device
        for i, g in enumerate(groups):
            mean = g.mean(0)
            cov = torch.zeros(g.shape[1], g.shape[1], dtype=torch.float64)
            for j in range(0, len(g), batch_size):
                centred = g[j : j + batch_size] - mean
                cov += centred.T @ centred
            vals, vecs = torch.linalg.eigh(cov / (len(g) - 1))  # ascending
            vals, vecs = vals.flip(0).clamp_min(c.base_min_var), vecs.flip(1)
            self.base_mean[i] = mean.float().to(dev)
            self.base_eigvecs[i] = vecs[:, :k].float().to(dev)
            self.base_eigvals[i] = vals[:k].float().to(dev)
            self.base_rest_var[i] = float(vals[k:].mean()) if k < len(vals) else c.base_min_var
            self.base_log_weight[i] = math.log(len(g) / len(flat))

    def _sigma(self, t: Tensor) -> Tensor:
        return (1 - self.abar[t]).sqrt()

    def base_log_density(self, x: Tensor, t: Tensor) -> Tensor:
        """log sum_c w_c N(x_t; sqrt(abar_t) m_c, abar_t S_c + (1 - abar_t) I): the exact diffused marginal if
        the data were this mixture of the fitted Gaussians (S_c = U diag(l) U^T + r (I - U U^T)). [B]"""
        ab = self.abar[t][:, None, None]  # [B, 1, 1]
        d = x[0].numel()
        z = x.flatten(1)[:, None, :] - ab.sqrt() * self.base_mean[None]  # [B, n, D]
        proj = torch.einsum("bnd,ndk->bnk", z, self.base_eigvecs)
        var_k = ab * self.base_eigvals[None] + (1 - ab)  # [B, n, k]
        var_r = ab[..., 0] * self.base_rest_var[None] + (1 - ab[..., 0])  # [B, n]
        proj_sq = proj.pow(2)
        quad = (proj_sq / var_k).sum(-1) + (z.pow(2).sum(-1) - proj_sq.sum(-1)).clamp_min(0) / var_r
        logdet = var_k.log().sum(-1) + (d - proj.shape[-1]) * var_r.log()
        return torch.logsumexp(self.base_log_weight[None] - 0.5 * (quad + logdet), dim=1)

    def _parts(self, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """(class logits h [B, C], class-independent term u [B]); f = h + u[:, None]."""
        c = self.config
        h, res = self.net(x, t)
        u = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
        if c.density_units:
            if c.gaussian_base != "none":
                u = u + self.base_log_density(x, t)
            if res is not None:
                # In eps units (like the paper's network gradient), so its scale is O(1) at every t.
                u = u + res / self._sigma(t)
        else:
            if res is not None:
                u = u + res
            if c.base_quadratic:
                u = u - 0.5 * self._sigma(t) * x.pow(2).flatten(1).sum(1)
        return h, u

    def logits(self, x: Tensor, t: Tensor | int = 0) -> Tensor:
        """f(x_t, t): [B, C]. The class-independent terms (see module doc) are included; they cancel in softmax."""
        x = self._check_images(x)  # shape and dtype only (no sync): this runs at every DDIM and training step
        h, u = self._parts(x, self._t(x, t))
        return h + u[:, None]

    def energy(self, x: Tensor, t: Tensor | int = 0) -> Tensor:
        """Free energy E(x_t, t) = -logsumexp_y f(x_t, t)[y] (lower = more probable)."""
        return -torch.logsumexp(self.logits(x, t), dim=1)

    def eps_scale(self, t: Tensor) -> Tensor:
        """The factor between grad logsumexp f and -eps_hat: sqrt(1 - abar_t) in density units, 1 as in the paper."""
        return self._sigma(t) if self.config.density_units else torch.ones_like(self.abar[t])

    def score(self, x: Tensor, t: Tensor | int = 0, create_graph: bool = False) -> Tensor:
        """-eps_hat: the network's denoising direction, eps_scale(t) * grad_x logsumexp f(x_t, t)
        (the true score times sqrt(1 - abar_t))."""
        with torch.inference_mode(False), torch.enable_grad():
            xr = x if (create_graph and x.requires_grad) else x.detach().clone().requires_grad_(True)
            tt = self._t(xr, t)
            lse = torch.logsumexp(self.logits(xr, tt), dim=1)
            (grad,) = torch.autograd.grad(lse.sum(), xr, create_graph=create_graph)
        return grad * self.eps_scale(tt).view(-1, 1, 1, 1)

    def denoising_loss(self, x0: Tensor, t: int, *, seed: int = 0, base_only: bool = False, batch_size: int = 250) -> float:
        """Mean || -eps_hat(x_t) + eps ||^2 per pixel at one t over images x0 (seeded noise); with ``base_only``
        the class head and the residual are left out (what the analytic base alone achieves)."""
        g = torch.Generator().manual_seed(seed)
        total, n = 0.0, 0
        for i in range(0, len(x0), batch_size):
            xb = x0[i : i + batch_size].to(self.device)
            eps = torch.randn(xb.shape, generator=g).to(self.device)
            tt = self._t(xb, t)
            ab = self.abar[tt].view(-1, 1, 1, 1)
            xt = (ab.sqrt() * xb + (1 - ab).sqrt() * eps).detach().requires_grad_(True)
            with torch.inference_mode(False), torch.enable_grad(), frozen(self):
                if base_only:
                    c = self.config
                    if c.density_units:
                        u = self.base_log_density(xt, tt) if c.gaussian_base != "none" else xt.sum((1, 2, 3)) * 0
                    else:
                        u = -0.5 * self._sigma(tt) * xt.pow(2).flatten(1).sum(1) if c.base_quadratic else xt.sum((1, 2, 3)) * 0
                    obj = u
                else:
                    obj = torch.logsumexp(self.logits(xt, tt), 1)
                (grad,) = torch.autograd.grad(obj.sum(), xt)
            neg_eps = grad * self.eps_scale(tt).view(-1, 1, 1, 1)
            total += float((neg_eps + eps).pow(2).flatten(1).mean(1).sum())
            n += len(xb)
        return total / max(1, n)

    def classify(self, images: Tensor) -> Tensor:
        """p(y | x) at t = 0 for images in [-1, 1] ([B, C, H, W]); returns probabilities [B, classes]."""
        images = checks.finite("Images", self._check_images(images))
        with torch.no_grad():
            return torch.softmax(self.logits(images.to(self.device), 0), dim=1)

    def predict(self, images: Tensor, batch_size: int = 500) -> Tensor:
        """Logits at t = 0 in batches (what metrics.class_accuracy takes)."""
        images = checks.finite("Images", self._check_images(images))
        out = []
        with torch.no_grad():
            for i in range(0, len(images), batch_size):
                out.append(self.logits(images[i : i + batch_size].to(self.device), 0).cpu())
        return torch.cat(out)

    def _check_images(self, images: Tensor) -> Tensor:
        """A real-valued tensor [B, C, H, W] of this model's image shape (integer tensors become float)."""
        c = self.config
        want = (c.channels, c.image_size, c.image_size)
        if isinstance(images, Tensor) and (images.dim() != 4 or tuple(images.shape[1:]) != want):
            raise SamplingError(f"Images must have shape [B, {want[0]}, {want[1]}, {want[2]}] in [-1, 1]; got {tuple(images.shape)}.")
        return checks.images("Images", images, want)

    # -- training loss (used by train/egc.py; no optimiser here) -------------------------------

    def training_losses(self, x0: Tensor, labels: Tensor, *, gamma: float = 1.0, label_smoothing: float = 0.0,
                        low_t_fraction: float = 0.25, low_t_max: int = 100, low_t_ce: float = 0.0,
                        focus_fraction: float = 0.0, focus_max: int = 400, ce_weight: str = "sqrt_abar",
                        generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Algorithm 1 on a batch x0 in [-1, 1]: Fisher/denoising term + weighted CE (double backprop).

        t is uniform on 0..T-1 except for two shares of the batch: ``low_t_fraction`` from t < ``low_t_max``
        (where classification is judged) and ``focus_fraction`` from t < ``focus_max`` (where the analytic
        base is furthest from the data's score, so the network has the most to learn).
        ``ce_weight`` is the CE weight per sample: ``"sqrt_abar"`` (the authors' code) or ``"uniform"``, which
        keeps the classifier learning at high noise, where classifier guidance must choose the class.
        ``low_t_ce`` > 0 adds a CE term (that weight) on a second, low-noise view of the same batch
        (t < ``low_t_max``, fresh noise). It needs no double backprop (about a third of a step's cost)
        and feeds the classifier where it is judged.
        """
        b, dev, T = x0.shape[0], x0.device, self.config.num_timesteps
        t = torch.randint(0, T, (b,), device=dev, generator=generator)
        n_low = int(round(low_t_fraction * b))
        n_focus = min(b - n_low, int(round(focus_fraction * b)))
        if n_low:
            t[:n_low] = torch.randint(0, min(low_t_max, T), (n_low,), device=dev, generator=generator)
        if n_focus:
            t[n_low : n_low + n_focus] = torch.randint(0, min(focus_max, T), (n_focus,), device=dev, generator=generator)
        eps = torch.randn(x0.shape, device=dev, generator=generator)
        ab = self.abar[t].view(-1, 1, 1, 1)
        x_t = (ab.sqrt() * x0 + (1 - ab).sqrt() * eps).requires_grad_(True)
        logits = self.logits(x_t, t)
        lse = torch.logsumexp(logits, dim=1)
        (grad,) = torch.autograd.grad(lse.sum(), x_t, create_graph=True)
        fisher = (grad * self.eps_scale(t).view(-1, 1, 1, 1) + eps).pow(2).flatten(1).mean(1)
        ce = F.cross_entropy(logits, labels, reduction="none", label_smoothing=label_smoothing)
        if ce_weight not in ("sqrt_abar", "uniform"):
            raise StudioError(f"ce_weight must be 'sqrt_abar' or 'uniform'; got {ce_weight!r}.")
        w = self.abar[t].sqrt() if ce_weight == "sqrt_abar" else torch.ones_like(ce)
        loss = fisher.mean() + gamma * (w * ce).mean()
        low, low_logits, low_labels = t < low_t_max, logits, labels
        out_extra = {}
        if low_t_ce > 0:
            t2 = torch.randint(0, min(low_t_max, T), (b,), device=dev, generator=generator)
            ab2 = self.abar[t2].view(-1, 1, 1, 1)
            x2 = ab2.sqrt() * x0 + (1 - ab2).sqrt() * torch.randn(x0.shape, device=dev, generator=generator)
            low_logits = self.logits(x2, t2)
            ce2 = F.cross_entropy(low_logits, labels, label_smoothing=label_smoothing)
            loss = loss + low_t_ce * ce2
            low = torch.ones_like(low)
            out_extra["ce_low_t"] = ce2.detach()
        with torch.no_grad():
            acc = (low_logits[low].argmax(1) == low_labels[low]).float().mean() if low.any() else torch.zeros((), device=dev)
        return {**out_extra, "loss": loss, "fisher": fisher.mean().detach(), "ce": ce.mean().detach(), "acc_low_t": acc, "lse": lse.mean().detach()}

    # -- sampling ------------------------------------------------------------------------------

    def _labels(self, classes, n: int) -> Tensor | None:
        items = list(classes) if isinstance(classes, (list, tuple)) else [classes] * n
        if len(items) != n:
            raise SamplingError(f"Got {len(items)} classes for {n} seeds; give one class or one per seed.")
        if all(c is None or c == "unconditional" for c in items):
            return None
        out = []
        for c in items:
            if c is None or c == "unconditional":
                raise SamplingError("Mixing unconditional and class-guided samples in one call is not supported.")
            if isinstance(c, str):
                if c not in self.config.class_names:
                    raise SamplingError(f"Unknown class '{c}'. Choose one of: {', '.join(self.config.class_names)} (or None).")
                out.append(self.config.class_names.index(c))
            else:  # an index: a whole number (not True, 2.5, NaN or a dict)
                try:
                    out.append(checks.integer("Class index", c, 0, self.config.num_classes - 1))
                except SamplingError:
                    raise SamplingError(f"Class index {c!r} is out of range 0..{self.config.num_classes - 1} (or give a "
                                        f"class name: {', '.join(self.config.class_names)}).") from None
        return torch.tensor(out, dtype=torch.long, device=self.device)

    def guided_eps(self, x: Tensor, t: int, labels: Tensor | None, guidance: float) -> tuple[Tensor, Tensor, Tensor]:
        """eps' = grad_x E_s(x) with E_s = -(k_t logsumexp f + s sqrt(1-abar_t) log p(y|x)), k_t = eps_scale(t);
        one backward pass.

        Returns (eps', free energy -logsumexp f [B], log p(y|x) or zeros [B]).
        """
        tt = self._t(x, t)
        with torch.inference_mode(False), torch.enable_grad():
            xr = x.detach().clone().requires_grad_(True)
            logits = self.logits(xr, tt)
            lse = torch.logsumexp(logits, dim=1)
            obj = lse * self.eps_scale(tt)
            logp = torch.zeros_like(lse)
            if labels is not None and guidance:
                logp = logits.gather(1, labels[:, None])[:, 0] - lse
                obj = obj + guidance * self._sigma(tt) * logp
            (grad,) = torch.autograd.grad(obj.sum(), xr)
        return -grad, (-lse).detach(), logp.detach()

    def timesteps(self, steps: int) -> list[int]:
        """DDIM's evenly spaced sub-sequence of 0..T-1, from high noise to low."""
        T = self.config.num_timesteps
        return sorted({int(round(v)) for v in torch.linspace(0, T - 1, steps).tolist()}, reverse=True)

    def generate(
        self,
        classes=None,
        *,
        seeds="0-15",
        guidance: float | None = None,
        steps: int | None = None,
        eta: float = 0.0,
        record_every: int = 0,
        progress: bool = False,
    ) -> SampleOutput:
        """DDIM (eta = 0) or DDPM-like ancestral (eta = 1) sampling, eps = -grad logsumexp f.

        Args:
            classes: None (unconditional: the marginal score only), a class name/index, or one per seed.
            guidance: classifier-guidance scale s >= 0 (through the same network); default from config.
            steps: DDIM steps (1..1000). eta: DDIM stochasticity (0 deterministic, 1 ancestral).
            record_every: Trace frames every n steps (plus start and end).
        Returns:
            (images in [-1, 1] [N, C, H, W], Trace).

        Why a Trace is recorded here rather than by calling ``studio.langevin``: a DDIM step is
        x_{t-1} = a_t x_t + b_t eps(x_t) + sigma_t z with a_t != 1, which is not the engine's
        x - step * grad E + noise form unless a synthetic quadratic is folded into the energy, and then
        the Trace would plot that synthetic energy instead of the model's. So the same ``Trace`` type
        is filled directly with the model's free energy E(x_t, t), |grad E|, frames, grad_sum and a
        segment, with the engine's seeding (one generator per sample, ``studio.langevin.randn``),
        parameter freezing and finite checks, so every Trace consumer works unchanged.
        """
        cfg = self.config
        s = cfg.guidance if guidance is None else checks.number("guidance scale", guidance, 0, 100)
        k = cfg.sample_steps if steps is None else checks.integer("steps", steps, 1, cfg.num_timesteps)
        eta = checks.number("eta", eta, 0, 1)
        record_every = checks.integer("record_every", record_every, 0, 2**31)
        seed_list = parse_seeds(seeds, max_count=2048)
        n = len(seed_list)
        gens = make_generators(seed_list, "cpu")
        labels = self._labels(classes, n)
        shape = (n, cfg.channels, cfg.image_size, cfg.image_size)
        x = randn(shape, gens).to(self.device)
        ts = self.timesteps(k)
        trace = Trace()
        frames = [(x, 0, "noise")] if record_every else []  # (state, step, label), copied to the host after the loop
        with frozen(self):
            for i, t in enumerate(tqdm(ts, disable=not progress, desc="DDIM", leave=False)):
                check_deadline()
                eps, energy, _ = self.guided_eps(x, t, labels, s)
                if not (torch.isfinite(eps).all() and torch.isfinite(energy).all()):
                    raise SamplingError(f"Sampling diverged at t = {t} (non-finite epsilon). Lower the guidance scale.")
                ab = self.abar[t]
                ab_prev = self.abar[ts[i + 1]] if i + 1 < len(ts) else torch.ones((), device=x.device)
                x0 = ((x - (1 - ab).sqrt() * eps) / ab.sqrt()).clamp(-1, 1)
                eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()  # consistent with the clipped x0
                sigma = eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)).clamp_min(0).sqrt()
                x = ab_prev.sqrt() * x0 + (1 - ab_prev - sigma**2).clamp_min(0).sqrt() * eps
                if float(sigma) > 0 and i + 1 < len(ts):
                    x = x + sigma * randn(shape, gens).to(x.device)
                # grad E at x_t is eps (the network's), so its norm is the Trace's grad norm.
                # On the device until the loop ends (one copy to the host per record, not one per step).
                trace.energies.append(energy)
                trace.grad_norms.append(eps.flatten(1).norm(dim=1))
                trace.grad_sum = eps.detach().clone() if trace.grad_sum is None else trace.grad_sum + eps.detach()
                if record_every and ((i + 1) % record_every == 0 or i + 1 == len(ts)):
                    frames.append((x, i + 1, f"t={ts[i + 1] if i + 1 < len(ts) else 0}"))
                report_step({"step": i, "x": x, "energy": energy, "grad_norm": trace.grad_norms[-1], "step_size": None,
                             "noise_std": sigma})  # a run()'s callback (studio.protocol)
        _trace_to_host(trace, frames)
        trace.segments.append(("DDIM" if eta == 0 else f"DDIM eta={eta:g}", 0, trace.num_steps))
        if not torch.isfinite(x).all():
            raise SamplingError("Sampling produced non-finite pixels. Lower the guidance scale.")
        return SampleOutput(x.clamp(-1, 1), trace)

    def topk(self, images: Tensor, k: int = 5) -> list[list[tuple[str, float]]]:
        """Top-k (class name, probability) per image, classified at t = 0."""
        k = checks.integer("k", k, 1, 2**31)
        probs = self.classify(images)
        k = min(k, self.config.num_classes)
        vals, idx = probs.topk(k, dim=1)
        return [[(self.config.class_names[j], float(v)) for v, j in zip(vr, ir)] for vr, ir in zip(vals.tolist(), idx.tolist())]

    def fgsm_accuracy(self, images: Tensor, labels: Tensor, eps: float) -> tuple[Tensor, float]:
        """FGSM against this classifier (t = 0): (perturbed images, accuracy on them)."""
        images = checks.finite("Images", self._check_images(images))
        with frozen(self):
            adv = fgsm(lambda z: self.logits(z, 0), images.to(self.device), labels, eps)
            pred = self.predict(adv).argmax(1)
        return adv, float((pred == labels.cpu()).float().mean())

    # -- the model protocol (studio.protocol) ------------------------------------------------

    title = "EGC"

    @classmethod
    def task_specs(cls, config: EGCConfig) -> list[TaskSpec]:
        """generate: ``steps`` DDIM steps; ``noise`` is DDIM's eta (see ``_run``)."""
        return [TaskSpec("generate", "generate", {"classes": None, "guidance": config.guidance, "steps": config.sample_steps,
                                                  "noise": 0.0},
                         describe="DDIM steps from Gaussian noise along eps = -grad logsumexp f")]

    @classmethod
    def image_energy_spec(cls, config: EGCConfig) -> EnergySpec:
        return EnergySpec(describe=" (the free energy -logsumexp f(x, t) at t = 0, the clean-image level)")

    def image_energy(self, x: Tensor) -> Tensor:
        """The free energy of clean images, E(x, 0) = -logsumexp_y f(x, 0)[y]."""
        return self.energy(x, 0)

    def _run(self, spec: TaskSpec, image, mask, **kwargs):
        """The shared ``noise`` is DDIM's ``eta``: 0 is deterministic DDIM, 1 the ancestral (DDPM) noise, which is
        what "1 = the sampler's stochastic process" means for a diffusion sampler."""
        if "noise" in kwargs:
            kwargs["eta"] = relative_noise(kwargs.pop("noise"))
        out = super()._run(spec, image, mask, **kwargs)
        out.notes.append(f"{out.trace.num_steps} DDIM steps from Gaussian noise along eps = -grad logsumexp f; the energy is "
                         "the free energy -logsumexp f(x_t, t) at each step's noise level (so it is not one fixed energy "
                         "along the chain).")
        return out


__all__ = ["EGC", "EGCConfig", "EGCNet", "fgsm", "FASHION_CLASSES", "StudioError"]
