"""Reference classifiers that judge every checkpoint: class accuracy of samples and FD features.

Nobody tunes these to a generator: they are trained once on real data by
``train/evaluator.py`` and shipped as ``evaluator-fmnist``, ``evaluator-emoji``
and ``evaluator-shapes3d``. Their penultimate features (after ReLU) define the
studio's Frechet distance.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .kinds import register_model


@dataclass
class EvaluatorConfig:
    in_channels: int = 1
    image_size: int = 32
    num_classes: int = 10
    width: int = 32
    feature_dim: int = 128
    dropout: float = 0.3
    class_names: list[str] = field(default_factory=list)
    dataset: str = "fashion-mnist"


def _stage(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


@register_model("evaluator")
class EvaluatorNet(nn.Module):
    """A small VGG-style CNN: stages of two conv-BN-ReLU + max-pool down to 4x4, global pool, MLP head.

    Inputs are images in [-1, 1]. Other resolutions are resized (area when
    shrinking, bilinear when growing) and grey/RGB converted, so samples at any
    size can be judged; say so when you compare numbers across sizes.
    """

    config_class = EvaluatorConfig

    def __init__(self, config: EvaluatorConfig):
        super().__init__()
        self.config = config
        w = config.width
        widths = [w, 2 * w, 4 * w] + ([4 * w] if config.image_size >= 64 else [])
        stages, cin = [], config.in_channels
        for c in widths:
            stages.append(_stage(cin, c))
            cin = c
        self.body = nn.Sequential(*stages)
        self.embed = nn.Linear(cin, config.feature_dim)
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.feature_dim, config.num_classes)

    def prepare(self, x: Tensor) -> Tensor:
        c, s = self.config.in_channels, self.config.image_size
        if x.shape[1] != c:
            x = x.mean(1, keepdim=True) if c == 1 else x.expand(-1, c, -1, -1)
        if x.shape[-1] != s or x.shape[-2] != s:
            mode = "area" if x.shape[-1] > s else "bilinear"
            x = F.interpolate(x, size=(s, s), mode=mode, **({} if mode == "area" else {"align_corners": False}))
        return x

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features [B, feature_dim] (post-ReLU): the space of the studio's FD."""
        h = self.body(self.prepare(x)).mean(dim=(2, 3))
        return F.relu(self.embed(h))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.drop(self.features(x)))

    @torch.no_grad()
    def predict(self, x: Tensor, batch_size: int = 500) -> Tensor:
        return torch.cat([self(x[i : i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])
