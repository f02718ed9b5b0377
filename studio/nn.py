"""Shared network building blocks: spectral-norm layers, residual blocks, embeddings, a small U-Net."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm


def sn_conv(cin: int, cout: int, k: int = 3, sn: bool = True) -> nn.Module:
    conv = nn.Conv2d(cin, cout, k, padding=k // 2)
    return spectral_norm(conv) if sn else conv


def sn_linear(cin: int, cout: int, sn: bool = True) -> nn.Module:
    lin = nn.Linear(cin, cout)
    return spectral_norm(lin) if sn else lin


def sinusoidal_embedding(x: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Transformer-style embedding of a scalar per sample ([B] -> [B, dim])."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=x.device, dtype=torch.float32) / half)
    args = x.float()[:, None] * freqs[None]
    return torch.cat([args.cos(), args.sin()], dim=1)


class ConditionEmbedding(nn.Module):
    """Embedding of a noise level (a scalar per sample) plus an optional class label.

    Label 0 is the null class used by classifier-free guidance; labels 1..C are classes.
    """

    def __init__(self, dim: int, num_classes: int = 0, sn: bool = False, act: str = "lrelu"):
        super().__init__()
        self.dim = dim
        self.fc1 = sn_linear(dim, dim, sn)
        self.fc2 = sn_linear(dim, dim, sn)
        self.act = nn.LeakyReLU(0.2) if act == "lrelu" else nn.SiLU()
        self.label = nn.Embedding(num_classes + 1, dim) if num_classes else None

    def forward(self, level: Tensor, labels: Tensor | None = None) -> Tensor:
        emb = self.fc2(self.act(self.fc1(sinusoidal_embedding(level, self.dim))))
        if self.label is not None:
            if labels is None:
                labels = torch.zeros(level.shape[0], dtype=torch.long, device=level.device)
            emb = emb + self.label(labels)
        return emb


class EBMResBlock(nn.Module):
    """DRL-style residual block: lrelu -> conv -> +Dense(temb) -> lrelu -> conv * gain -> + shortcut.

    The per-channel gain starts at zero so every block begins as the identity,
    which keeps the energy landscape smooth early in training.
    """

    def __init__(self, cin: int, cout: int, temb_dim: int, sn: bool = True):
        super().__init__()
        self.conv1 = sn_conv(cin, cout, 3, sn)
        self.conv2 = sn_conv(cout, cout, 3, sn)
        self.temb = sn_linear(temb_dim, cout, sn)
        self.gain = nn.Parameter(torch.zeros(1, cout, 1, 1))
        self.skip = sn_conv(cin, cout, 1, sn) if cin != cout else nn.Identity()
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: Tensor, temb: Tensor, pre: Tensor | None = None) -> Tensor:
        """``pre``: conv1(act(x)) if already computed (it does not depend on the embedding)."""
        pre = self.conv1(self.act(x)) if pre is None else pre
        h = pre + self.temb(self.act(temb))[:, :, None, None]
        h = self.conv2(self.act(h)) * self.gain
        return self.skip(x) + h


class UNetBlock(nn.Module):
    """GroupNorm/SiLU residual block with scale-shift conditioning (for initializers/decoders)."""

    def __init__(self, cin: int, cout: int, emb_dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.GroupNorm(math.gcd(8, cin), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * cout)
        self.norm2 = nn.GroupNorm(math.gcd(8, cout), cout)
        self.drop = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.drop(F.silu(h)))
        return self.skip(x) + h


class SmallUNet(nn.Module):
    """A compact U-Net (one block per resolution, no attention), sized for CPU training.

    ``widths`` gives channels per resolution, top to bottom; the input size must
    be divisible by 2**(len(widths) - 1). The last conv is zero-initialised, so the
    network starts by outputting zeros.
    """

    def __init__(self, channels: int, widths: tuple[int, ...], emb_dim: int, dropout: float = 0.0):
        super().__init__()
        self.inp = nn.Conv2d(channels, widths[0], 3, padding=1)
        self.down = nn.ModuleList()
        cin = widths[0]
        for w in widths:
            self.down.append(UNetBlock(cin, w, emb_dim, dropout))
            cin = w
        self.mid = UNetBlock(cin, cin, emb_dim, dropout)
        self.up = nn.ModuleList()
        for w in reversed(widths):
            self.up.append(UNetBlock(cin + w, w, emb_dim, dropout))
            cin = w
        self.out_norm = nn.GroupNorm(math.gcd(8, cin), cin)
        self.out = nn.Conv2d(cin, channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        return self.out(F.silu(self.out_norm(unet_trunk(self, x, emb))))


def unet_trunk(net: nn.Module, x: Tensor, emb: Tensor) -> Tensor:
    """The U-Net's features before its output head: ``net.inp``, the ``down`` blocks (2x average pooling between
    them), ``mid``, and the ``up`` blocks with their skips. Shared by ``UNet`` and networks with other heads (EGC)."""
    h = net.inp(x)
    skips = []
    for i, block in enumerate(net.down):
        if i > 0:
            h = F.avg_pool2d(h, 2)
        h = block(h, emb)
        skips.append(h)
    h = net.mid(h, emb)
    for block in net.up:
        skip = skips.pop()
        if h.shape[-1] != skip.shape[-1]:
            h = F.interpolate(h, size=skip.shape[-2:], mode="nearest")
        h = block(torch.cat([h, skip], 1), emb)
    return h
