"""Training-batch augmentations, each drawing from the step's generator (so ``--resume`` repeats them).

Edges are replicated when shifting: the emoji and Fashion-MNIST backgrounds are flat, so a shifted image
looks like a real one.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def random_hflip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Mirror each image of the batch with probability 1/2 (one uniform draw per image)."""
    flip = torch.rand(x.shape[0], device=x.device, generator=gen) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)


def random_shift_each(x: torch.Tensor, shift: int, gen: torch.Generator) -> torch.Tensor:
    """Shift each image by its own random offset of up to ``shift`` px in x and y (square images)."""
    if not shift:
        return x
    n, s = x.shape[0], x.shape[-1]
    pad = F.pad(x, (shift,) * 4, mode="replicate")
    dx, dy = torch.randint(0, 2 * shift + 1, (2, n), generator=gen, device=gen.device).to(x.device)
    span = torch.arange(s, device=x.device)
    rows = (span[None, :] + dy[:, None])[:, None, :, None].expand(n, x.shape[1], s, s + 2 * shift)
    x = pad.gather(2, rows)
    cols = (span[None, :] + dx[:, None])[:, None, None, :].expand(n, x.shape[1], s, s)
    return x.gather(3, cols)


def random_shift_all(x: torch.Tensor, shift: int, gen: torch.Generator) -> torch.Tensor:
    """Shift the whole batch by one random offset of up to ``shift`` px in x and y."""
    if not shift:
        return x
    pad = F.pad(x, (shift,) * 4, mode="replicate")
    dx, dy = torch.randint(0, 2 * shift + 1, (2,), generator=gen, device=gen.device).tolist()
    return pad[..., dy : dy + x.shape[-2], dx : dx + x.shape[-1]]
