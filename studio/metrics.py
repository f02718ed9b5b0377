"""Sample-quality metrics: Frechet distance in evaluator features, accuracy, PSNR, SSIM, AUROC, and a
bootstrap bound for means over grouped items.

Every FD the studio reports sits next to its *floor*: the FD between two
disjoint sets of real images of the same size (real train vs real test), which
is what a perfect generator would score at that sample count.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import StudioError


def _as_float64(x) -> Tensor:
    return (x if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x))).detach().to("cpu", torch.float64)


def gaussian_stats(feats) -> tuple[Tensor, Tensor]:
    """Mean and covariance (unbiased) of [N, D] features."""
    f = _as_float64(feats)
    if f.dim() != 2 or f.shape[0] < 2:
        raise StudioError(f"Features must be a [N, D] array with N >= 2; got shape {tuple(f.shape)}.")
    mu = f.mean(0)
    centred = f - mu
    return mu, centred.T @ centred / (f.shape[0] - 1)


def _sqrtm_psd(m: Tensor) -> Tensor:
    vals, vecs = torch.linalg.eigh((m + m.T) / 2)
    return (vecs * vals.clamp_min(0).sqrt()) @ vecs.T


def frechet_distance_from_stats(mu1: Tensor, s1: Tensor, mu2: Tensor, s2: Tensor) -> float:
    """|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)).

    tr((S1 S2)^(1/2)) equals the sum of square roots of the eigenvalues of the
    symmetric PSD matrix S1^(1/2) S2 S1^(1/2), which avoids scipy's sqrtm.
    """
    if mu1.shape != mu2.shape:
        raise StudioError(f"Feature dimensions differ: {tuple(mu1.shape)} vs {tuple(mu2.shape)}.")
    r1 = _sqrtm_psd(s1)
    inner = r1 @ s2 @ r1
    tr_sqrt = torch.linalg.eigvalsh((inner + inner.T) / 2).clamp_min(0).sqrt().sum()
    return float((mu1 - mu2).pow(2).sum() + torch.trace(s1) + torch.trace(s2) - 2 * tr_sqrt)


def frechet_distance(feats_a, feats_b) -> float:
    """Frechet distance between Gaussians fitted to two [N, D] feature sets (float64)."""
    return frechet_distance_from_stats(*gaussian_stats(feats_a), *gaussian_stats(feats_b))


@torch.no_grad()
def batched_features(fn: Callable[[Tensor], Tensor], images: Tensor, batch_size: int = 500, device=None) -> Tensor:
    """Apply a feature function in batches (no grad); returns CPU features."""
    out = []
    for i in range(0, len(images), batch_size):
        chunk = images[i : i + batch_size]
        out.append(fn(chunk.to(device) if device is not None else chunk).cpu())
    return torch.cat(out)


def fd_floor(feature_fn: Callable[[Tensor], Tensor], real_a: Tensor, real_b: Tensor, n: int, seed: int = 0) -> float:
    """FD between n random real images of two disjoint sets (e.g. train vs test): the best FD achievable at n."""
    if n > min(len(real_a), len(real_b)):
        raise StudioError(f"Cannot draw {n} images: the sets have {len(real_a)} and {len(real_b)}.")
    g = torch.Generator().manual_seed(seed)
    ia = torch.randperm(len(real_a), generator=g)[:n]
    ib = torch.randperm(len(real_b), generator=g)[:n]
    return frechet_distance(batched_features(feature_fn, real_a[ia]), batched_features(feature_fn, real_b[ib]))


def class_accuracy(logits_or_preds: Tensor, labels: Tensor) -> float:
    """Fraction of predictions equal to labels (accepts logits [N, C] or class indices [N])."""
    preds = logits_or_preds.argmax(1) if logits_or_preds.dim() == 2 else logits_or_preds
    if preds.shape != labels.shape:
        raise StudioError(f"Predictions {tuple(preds.shape)} and labels {tuple(labels.shape)} differ in shape.")
    return float((preds.cpu() == labels.cpu()).float().mean())


def psnr(x: Tensor, y: Tensor, data_range: float = 2.0) -> Tensor:
    """Per-image PSNR in dB (images in [-1, 1] have range 2); identical images give inf."""
    mse = (x.double() - y.double()).pow(2).flatten(1).mean(1)
    return (10 * torch.log10(data_range**2 / mse)).float()


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-coords**2 / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(x: Tensor, y: Tensor, data_range: float = 2.0, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Per-image SSIM (Wang et al. 2004): Gaussian 11x11 window, sigma 1.5, K1 = 0.01, K2 = 0.03,
    valid-region filtering, averaged over channels and positions."""
    if x.shape != y.shape or x.dim() != 4:
        raise StudioError(f"SSIM needs two [N, C, H, W] batches of the same shape; got {tuple(x.shape)} and {tuple(y.shape)}.")
    if min(x.shape[-2:]) < window:
        raise StudioError(f"Images must be at least {window}x{window} for SSIM; got {tuple(x.shape[-2:])}.")
    c = x.shape[1]
    w = _gaussian_window(window, sigma).to(x.device)[None, None].repeat(c, 1, 1, 1)
    x, y = x.double(), y.double()
    filt = lambda z: F.conv2d(z, w, groups=c)  # noqa: E731
    mx, my = filt(x), filt(y)
    vx = filt(x * x) - mx**2
    vy = filt(y * y) - my**2
    cov = filt(x * y) - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1).float()


def auroc(scores_pos, scores_neg) -> float:
    """P(score of a positive > score of a negative), ties counting 1/2 (Mann-Whitney U / (n_pos n_neg))."""
    pos, neg = _as_float64(scores_pos).flatten(), _as_float64(scores_neg).flatten()
    if len(pos) == 0 or len(neg) == 0:
        raise StudioError("AUROC needs at least one positive and one negative score.")
    ranks = average_ranks(torch.cat([pos, neg]))
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))


def average_ranks(values: Tensor) -> Tensor:
    """1-based ranks of a 1-D tensor, ties sharing their average rank."""
    order = torch.argsort(values, stable=True)
    _, inverse, counts = torch.unique_consecutive(values[order], return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).double()
    ranks = torch.empty(len(values), dtype=torch.float64, device=values.device)
    ranks[order] = (ends - (counts.double() - 1) / 2)[inverse]
    return ranks


def spearman(a, b) -> float:
    """Spearman rank correlation of two equally long sets of values (flattened), ties averaged."""
    x, y = _as_float64(a).flatten(), _as_float64(b).flatten()
    if len(x) != len(y) or len(x) < 2:
        raise StudioError(f"Spearman correlation needs two sets of equal length >= 2; got {len(x)} and {len(y)}.")
    rx, ry = average_ranks(x), average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = rx.norm() * ry.norm()
    if denom == 0:
        raise StudioError("Spearman correlation is undefined when one set is constant.")
    return float((rx * ry).sum() / denom)


def grouped_bootstrap_lower_bound(values, groups: list, confidence: float = 0.95, resamples: int = 2000,
                                  seed: int = 0) -> float:
    """One-sided lower confidence bound of the mean of ``values`` (one per item), resampling whole groups.

    Items of one group (an emoji and its skin-tone variants) are not independent draws, so the bootstrap
    draws groups with replacement and takes the mean over every item of the drawn groups; ``confidence``
    of those means lie above the bound. Seeded, so the same inputs give the same bound.
    """
    x = _as_float64(values).flatten()
    if len(x) != len(groups) or len(x) < 2:
        raise StudioError(f"The bootstrap needs one group label per value and >= 2 values; got {len(x)} values, {len(groups)} labels.")
    if not 0.0 < confidence < 1.0 or resamples < 100:
        raise StudioError(f"The bootstrap needs 0 < confidence < 1 and >= 100 resamples; got {confidence} and {resamples}.")
    labels = {g: i for i, g in enumerate(dict.fromkeys(groups))}
    ids = torch.tensor([labels[g] for g in groups])
    sums = torch.zeros(len(labels), dtype=torch.float64).index_add_(0, ids, x)
    counts = torch.bincount(ids, minlength=len(labels)).double()
    draws = torch.randint(len(labels), (resamples, len(labels)), generator=torch.Generator().manual_seed(seed))
    means = sums[draws].sum(1) / counts[draws].sum(1)
    return float(torch.quantile(means, 1.0 - confidence))
