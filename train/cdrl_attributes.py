"""The attribute mode of train/cdrl.py: an attribute-conditional CDRL for composition (thesis §5.4.6).

Each attribute value is a class of its own (attribute i True is class 2i, False is class 2i + 1; see
``studio.data.fmnist_attributes``). At every batch each training image is given the class of one of
its attributes, picked at random, then label dropout sends some to the null class; the initializer is
unconditional (it always sees the null label), so only the EBM learns the attributes, as in the thesis.

The attributes' base rates, pairwise shares and correlations on the training split go into the
checkpoint's config and card; an attribute set with a pair of values below 5% of the data is refused.

``warm_start`` (optional) starts from a class-conditional CDRL of the same architecture: every weight
is copied except the label embeddings, whose rows are rebuilt (null kept; a class attribute's True row
is the mean of its classes' rows and its False row the mean of the other classes'; a pixel attribute's
rows start at the null row). On a CPU budget this spends the minutes on the attributes rather than on
learning Fashion-MNIST again.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from studio.data import fmnist_attributes as fa
from studio.errors import StudioError

from .common import ConfigError

LABEL_EMBEDDINGS = ("ebm.embed.label.weight", "initializer.embed.label.weight")
MODEL_FIELDS = ("num_classes", "class_names", "attributes", "attribute_thresholds", "conditional_initializer")


@dataclass
class AttributeSettings:
    names: list[str] = field(default_factory=list)  # empty: class-conditional training (the Fashion-MNIST classes)
    warm_start: str = ""  # a class-conditional CDRL checkpoint to start from (see the module docstring)


class AttributeMode:
    """Attribute labels of the training images, the model config they imply, and the card's statistics."""

    def __init__(self, settings: AttributeSettings, images: Tensor, labels: Tensor):
        try:
            fa.lookup(settings.names)
            self.names = list(settings.names)
            self.thresholds = fa.thresholds(self.names, images)
            self.table = fa.judge(self.names, images, labels, self.thresholds)
            self.stats = fa.statistics(self.names, self.table)
            fa.check_coverage(self.names, self.stats)
        except StudioError as err:
            raise ConfigError(f"attributes.names: {err}") from None
        self.warm_start_from = settings.warm_start

    def model_fields(self, model_section: dict) -> dict:
        """The model config entries attribute mode sets (a config that sets them itself is an error)."""
        clash = sorted(set(model_section) & set(MODEL_FIELDS))
        if clash:
            raise ConfigError(f"model: {clash} follow from attributes.names in attribute mode; remove them from the config.")
        return {"num_classes": 2 * len(self.names), "class_names": fa.class_names(self.names), "attributes": self.names,
                "attribute_thresholds": self.thresholds, "conditional_initializer": False}

    @staticmethod
    def labels(table_rows: Tensor, generator: torch.Generator | None) -> Tensor:
        """Class indices (0..2A-1) for a batch of attribute rows: one random attribute per image."""
        return fa.random_labels(table_rows, generator)

    def warm_start(self, model: nn.Module) -> None:
        """Copy a class-conditional CDRL's weights into ``model`` (label embeddings rebuilt; see the module docstring)."""
        from studio.data.fashion_mnist import CLASS_NAMES
        from studio.hub import load_strict, read_config, read_weights, resolve

        path = resolve(self.warm_start_from).path
        config = read_config(path)
        source_classes = config["config"].get("class_names", [])
        if config.get("kind") != "cdrl" or source_classes != CLASS_NAMES:
            raise ConfigError(f"attributes.warm_start: {self.warm_start_from} is not a class-conditional Fashion-MNIST CDRL.")
        tensors, _ = read_weights(path, config.get("weights_sha256"))
        tensors = dict(tensors)
        for key in LABEL_EMBEDDINGS:
            if key in tensors:
                tensors[key] = self._attribute_rows(tensors[key], CLASS_NAMES)
        load_strict(model, tensors, f"attributes.warm_start {self.warm_start_from}")

    def _attribute_rows(self, rows: Tensor, class_names: list[str]) -> Tensor:
        """[1 + 2A, dim] label embedding from a class model's [1 + C, dim]: null, then True / False per attribute."""
        out = [rows[0]]
        for a in fa.lookup(self.names):
            if a.by_class:
                inside = torch.tensor([n in a.classes for n in class_names])
                out += [rows[1:][inside].mean(0), rows[1:][~inside].mean(0)]
            else:
                out += [rows[0], rows[0]]
        return torch.stack(out)

    def card_section(self) -> str:
        """Markdown: the attributes, their base rates, pairwise shares and correlations on the training split."""
        s = self.stats
        lines = [f"Attributes (judged automatically, `studio.data.fmnist_attributes`; measured on the {s['images']:,} "
                 "training images):", "", "| attribute | rule | base rate |", "|---|---|---|"]
        for name in self.names:
            rule = fa.ATTRIBUTES[name].description
            if name in self.thresholds:
                rule += f" ({self.thresholds[name]:.3f})"
            lines.append(f"| {name} | {rule} | {s['base_rates'][name]} |")
        lines += ["", "| pair | share of True/True, True/False, False/True, False/False | correlation |", "|---|---|---|"]
        for pair, cells in s["pairs"].items():
            lines.append(f"| {pair} | {', '.join(str(v) for v in cells.values())} | {s['correlations'][pair]:+.3f} |")
        lines += ["", f"Every pair of values covers at least {s['min_pair_coverage']:.1%} of the data (needed: "
                  f"{fa.MIN_PAIR_COVERAGE:.0%}). Training labels: each image takes the class of one of its attributes, "
                  "picked at random at every batch; the initializer is unconditional."]
        return "\n".join(lines)
