"""Binary attributes of Fashion-MNIST images, judged automatically: the concepts of the attribute-conditional CDRL.

The thesis composes CelebA's Male, Smile and Young (§5.4.6). Fashion-MNIST has no such labels, so
each attribute here is a rule anyone can re-run:

* ``top``: the garment is a top (T-shirt/top, Pullover, Coat or Shirt). Training images use their
  label; generated samples use evaluator-fmnist's predicted class.
* ``bright``: the mean intensity of the object's pixels is above the training median.
* ``high-contrast``: the spread (standard deviation) of the object's pixel intensities is above the
  training median (prints, stripes, straps and laces rather than flat shading).
* ``footwear`` (Sandal, Sneaker, Ankle boot) and ``large`` (object area above the median) are defined
  too, for other attribute sets.

Object pixels are those above a quarter of the intensity range (x > -0.5 in [-1, 1]): generated samples
carry a faint halo around the object and a background slightly above -1, which a lower level would count
as object (it would make samples look dimmer and more contrasted than they are). Every attribute is
unchanged by a horizontal flip, which training uses as augmentation. The medians are measured once
on the training split and stored in the checkpoint's config (``attribute_thresholds``), so samples
are judged without the data set.

The default set, (top, bright, high-contrast), is one whose every pair of values covers at least 5% of
the training images (12.0% at the least; see ``statistics``). Footwear and top never meet, and
footwear x large (5.1%) and top x large (6.4%) pass only barely.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import StudioError
from .fashion_mnist import CLASS_NAMES

OBJECT_LEVEL = -0.5  # pixels above this (a quarter of the range) belong to the object
MIN_PAIR_COVERAGE = 0.05  # composing two values that almost never occur together asks for the impossible
DEFAULT_ATTRIBUTES = ("top", "bright", "high-contrast")


@dataclass(frozen=True)
class Attribute:
    """One binary attribute: by class (``classes``) or by a pixel statistic above its training median (``statistic``)."""

    name: str
    description: str
    classes: tuple[str, ...] = ()
    statistic: str = ""  # "intensity", "contrast" or "area"

    @property
    def by_class(self) -> bool:
        return bool(self.classes)


ATTRIBUTES = {a.name: a for a in (
    Attribute("top", "a top: T-shirt/top, Pullover, Coat or Shirt (evaluator-fmnist's class)",
              classes=("T-shirt/top", "Pullover", "Coat", "Shirt")),
    Attribute("footwear", "footwear: Sandal, Sneaker or Ankle boot (evaluator-fmnist's class)",
              classes=("Sandal", "Sneaker", "Ankle boot")),
    Attribute("bright", "mean intensity of the object's pixels above the training median", statistic="intensity"),
    Attribute("high-contrast", "spread (std) of the object's pixel intensities above the training median", statistic="contrast"),
    Attribute("large", "object area above the training median", statistic="area"),
)}


def lookup(names) -> list[Attribute]:
    """The definitions of ``names`` (at least one, no repeats); unknown names are a clear error."""
    names = list(names)
    unknown = [n for n in names if n not in ATTRIBUTES]
    if unknown or not names or len(set(names)) != len(names):
        raise StudioError(f"Attributes must be distinct names from {', '.join(ATTRIBUTES)}; got {names}.")
    return [ATTRIBUTES[n] for n in names]


def class_names(names) -> list[str]:
    """The conditional classes of an attribute model: attribute i True is class 2i, False is class 2i + 1."""
    return [f"{a.name}={v}" for a in lookup(names) for v in (True, False)]


def label_of(index: int, value: bool) -> int:
    """Class index (0-based, before the null class shift) of attribute ``index`` having ``value``."""
    return 2 * index + (0 if value else 1)


# ----------------------------------------------------------------------------- pixel statistics


def pixel_statistics(images: Tensor) -> dict[str, Tensor]:
    """Per image: mean object intensity, object intensity std and object area (fraction of pixels), in [0, 1] units."""
    x = (images.detach().float().mean(1) + 1) / 2  # grey, [N, H, W] in [0, 1]
    obj = (images.detach().float().mean(1) > OBJECT_LEVEL).float()
    count = obj.sum((1, 2))
    safe = count.clamp_min(1)
    mean = (x * obj).sum((1, 2)) / safe
    var = ((x - mean.view(-1, 1, 1)).pow(2) * obj).sum((1, 2)) / safe
    # An empty image (no object pixels) is dim, flat and small.
    empty = count == 0
    return {"intensity": torch.where(empty, 0.0, mean), "contrast": torch.where(empty, 0.0, var.sqrt()),
            "area": count / obj[0].numel()}


def thresholds(names, images: Tensor) -> dict[str, float]:
    """The training medians of the pixel attributes among ``names`` (class attributes need none)."""
    stats = pixel_statistics(images)
    return {a.name: round(float(stats[a.statistic].median()), 6) for a in lookup(names) if not a.by_class}


def judge(names, images: Tensor, classes: Tensor | None, medians: dict[str, float]) -> Tensor:
    """[N, len(names)] bool: each image's value of each attribute.

    ``classes`` are class indices (labels for data, evaluator-fmnist's predictions for samples); they
    may be None when no attribute is by class."""
    attrs = lookup(names)
    stats = pixel_statistics(images) if any(not a.by_class for a in attrs) else {}
    cols = []
    for a in attrs:
        if a.by_class:
            if classes is None:
                raise StudioError(f"Attribute '{a.name}' is judged by class: pass class indices (evaluator-fmnist's predictions).")
            members = torch.tensor([CLASS_NAMES.index(c) for c in a.classes])
            cols.append(torch.isin(classes.cpu(), members))
        else:
            if a.name not in medians:
                raise StudioError(f"No threshold for attribute '{a.name}': the checkpoint's attribute_thresholds lack it.")
            cols.append(stats[a.statistic].cpu() > medians[a.name])
    return torch.stack(cols, 1)


def needs_classes(names) -> bool:
    return any(a.by_class for a in lookup(names))


# ----------------------------------------------------------------------------- training labels and statistics


def random_labels(table: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """§5.4.6's training labels: each image gets the class of one of its attributes, picked at random
    (afresh at every batch), i.e. attribute i's True or False class. ``table`` is [N, A] bool."""
    n, num = table.shape
    pick = torch.randint(0, num, (n,), generator=generator, device=generator.device if generator is not None else "cpu")
    value = table.to(pick.device).gather(1, pick.view(-1, 1)).squeeze(1)
    return 2 * pick + (~value).long()


def statistics(names, table: Tensor) -> dict:
    """Base rates, the share of every pair of values (the smallest must reach MIN_PAIR_COVERAGE),
    phi correlations (Pearson on 0/1) and the share of every full combination."""
    names = list(names)
    t = table.bool()
    f = t.float()
    out: dict = {"images": len(t), "base_rates": {n: round(float(f[:, i].mean()), 4) for i, n in enumerate(names)},
                 "pairs": {}, "correlations": {}, "combinations": {}}
    for i, j in itertools.combinations(range(len(names)), 2):
        key = f"{names[i]} x {names[j]}"
        out["pairs"][key] = {f"{vi}/{vj}": round(float(((t[:, i] == vi) & (t[:, j] == vj)).float().mean()), 4)
                             for vi in (True, False) for vj in (True, False)}
        out["correlations"][key] = round(float(torch.corrcoef(torch.stack([f[:, i], f[:, j]]))[0, 1]), 3)
    for values in itertools.product((True, False), repeat=len(names)):
        hit = torch.ones(len(t), dtype=torch.bool)
        for i, v in enumerate(values):
            hit &= t[:, i] == v
        out["combinations"]["/".join(str(v) for v in values)] = round(float(hit.float().mean()), 4)
    out["min_pair_coverage"] = min(min(p.values()) for p in out["pairs"].values()) if out["pairs"] else 1.0
    return out


def check_coverage(names, stats: dict) -> None:
    """Refuse an attribute set with a pair of values rarer than MIN_PAIR_COVERAGE of the training data."""
    for pair, cells in stats["pairs"].items():
        for values, share in cells.items():
            if share < MIN_PAIR_COVERAGE:
                raise StudioError(f"Attributes {pair} = {values} cover only {share:.1%} of the training images (at least "
                                  f"{MIN_PAIR_COVERAGE:.0%} needed to compose them); choose another attribute set than {list(names)}.")
