"""Composition metrics (issue 23): AND / NOT of concepts on CDRL, judged automatically.

Attribute models (``config.attributes``, e.g. cdrl-fmnist-attributes), ``evaluate_cdrl_attributes``:

* ``compose_single_accuracy``: mean over the 6 single-attribute settings (one attribute True or False,
  the others no control) of the fraction of ``per_setting`` samples that have the asked value;
* ``compose_pair_accuracy``: the same over the 12 two-attribute settings, both values right;
* ``compose_triple_accuracy``: over the 8 three-attribute settings, all three right;
* ``compose_uncontrolled_rate``: over the 12 pair settings, the share of samples whose third (uncontrolled)
  attribute is True; ``compose_uncontrolled_rate_train`` is that share among training images with the
  pair's values (what a faithful product would give) and ``compose_uncontrolled_gap`` the mean absolute
  difference per setting;
* ``fd_uncond``: FD of ``samples`` unconditional samples to as many test images.

Attributes are judged by ``studio.data.fmnist_attributes`` (classes from evaluator-fmnist's predictions,
pixel statistics against the training medians stored in the checkpoint). Compositions use the thesis's
``studio.compose.ATTRIBUTE_GUIDANCE`` (chosen on other seeds; the thesis uses w = 3).

Class models (cdrl-fmnist), ``evaluate_compose_not`` (the ``compose`` metric group):

* ``compose_not_rate``: mean over the 10 classes of the fraction of "unconditional AND NOT c" samples
  that evaluator-fmnist calls c (bar <= 0.03). Every class uses the same seeds, so the unconditional
  samples at those seeds would score exactly 0.1 on this mean; ``compose_not_rate_uncond_max`` is the
  largest per-class share of those unconditional samples for reference;
* ``compose_not_fd``: mean over classes of the FD of those samples to the test images of the other nine classes.

Hook into train/evaluate.py (owned there): route ``kind == "cdrl"`` models with ``config.attributes`` to
``evaluate_cdrl_attributes`` (``evaluate_cdrl``'s class accuracy does not apply to them), add
``GROUPS["compose"] = ({"cdrl"}, evaluate_compose_not)`` and call ``card_extra`` from ``card_extra``.
"""
from __future__ import annotations

import itertools
import time
from pathlib import Path

import torch

import studio
from studio.compose import ATTRIBUTE_GUIDANCE
from studio.data import fmnist_attributes as fa
from studio.metrics import batched_features, frechet_distance

from .eval_common import fmnist_reference

NOT_GUIDANCE = 1.0  # w for "unconditional AND NOT c" (see NOT_WEIGHT)
NOT_WEIGHT = 1.0  # |lambda| of the NOT term
PER_SETTING = 200  # samples per attribute setting (the count)
NOT_PER_CLASS = 100  # samples per negated class
BATCH = 100


def _judge():
    return studio.load("evaluator-fmnist")


def _composed(model, concepts, seeds: list[int], guidance: float) -> torch.Tensor:
    """Samples of one composition at ``seeds``, in batches (each sample depends on its seed only)."""
    out = []
    for i in range(0, len(seeds), BATCH):
        chunk = ",".join(map(str, seeds[i : i + BATCH]))
        out.append(model.compose(concepts, guidance=guidance, seeds=chunk)[0])
    return torch.cat(out)


def _seeds(seed: int, n: int, offset: int = 0) -> list[int]:
    return list(range(seed * 100000 + offset, seed * 100000 + offset + n))


def judge_attributes(model, images: torch.Tensor, judge=None) -> torch.Tensor:
    """[N, A] bool: each sample's attribute values (evaluator-fmnist's class for class attributes)."""
    names = model.config.attributes
    classes = (judge or _judge()).predict(images) if fa.needs_classes(names) else None
    return fa.judge(names, images, classes, model.config.attribute_thresholds)


def attribute_settings(num: int, size: int) -> list[dict[int, bool]]:
    """Every setting controlling ``size`` of ``num`` attributes: {attribute index: value}."""
    return [dict(zip(idx, values)) for idx in itertools.combinations(range(num), size)
            for values in itertools.product((True, False), repeat=size)]


def _setting_name(names, setting: dict[int, bool]) -> str:
    return ", ".join(f"{names[i]}={v}" for i, v in setting.items())


def evaluate_compose_attributes(model, per_setting: int = PER_SETTING, seed: int = 0, guidance: float = ATTRIBUTE_GUIDANCE,
                                train_table: torch.Tensor | None = None, max_size: int = 3) -> dict:
    """Accuracy of 1-, 2- and 3-attribute compositions and the uncontrolled attribute's rate (see the module docstring).

    ``train_table``: the training images' attribute table (computed from Fashion-MNIST when None). ``max_size``:
    compositions of at most this many attributes (the guidance scan stops at pairs)."""
    names = list(model.config.attributes)
    judge = _judge() if fa.needs_classes(names) else None
    seeds = _seeds(seed, per_setting)
    metrics: dict = {"compose_guidance": guidance, "compose_samples_per_setting": per_setting}
    per_setting_acc: dict[str, float] = {}
    third: list[tuple[float, float]] = []
    with_third = max_size >= len(names)  # the uncontrolled attribute's rate belongs to the full evaluation only
    if train_table is None and with_third:
        from .datasets import labelled_split

        train = labelled_split("fashion-mnist", "train")
        train_table = fa.judge(names, train.images, train.labels, model.config.attribute_thresholds)
    for size, key in ((1, "single"), (2, "pair"), (3, "triple")):
        if size > min(len(names), max_size):
            continue
        accs = []
        for setting in attribute_settings(len(names), size):
            x = _composed(model, {names[i]: v for i, v in setting.items()}, seeds, guidance)
            table = judge_attributes(model, x, judge)
            hit = torch.ones(len(x), dtype=torch.bool)
            for i, v in setting.items():
                hit &= table[:, i] == v
            accs.append(float(hit.float().mean()))
            per_setting_acc[_setting_name(names, setting)] = round(accs[-1], 4)
            if with_third and size == len(names) - 1:
                (free,) = set(range(len(names))) - set(setting)
                rows = torch.ones(len(train_table), dtype=torch.bool)
                for i, v in setting.items():
                    rows &= train_table[:, i] == v
                third.append((float(table[:, free].float().mean()), float(train_table[rows, free].float().mean())))
        metrics[f"compose_{key}_accuracy"] = round(sum(accs) / len(accs), 4)
    if third:
        metrics["compose_uncontrolled_rate"] = round(sum(s for s, _ in third) / len(third), 4)
        metrics["compose_uncontrolled_rate_train"] = round(sum(t for _, t in third) / len(third), 4)
        metrics["compose_uncontrolled_gap"] = round(sum(abs(s - t) for s, t in third) / len(third), 4)
    metrics["compose_setting_accuracy"] = per_setting_acc
    return metrics


def evaluate_cdrl_attributes(model, samples: int, seed: int) -> dict:
    """Everything measured for an attribute model: unconditional FD at ``samples`` and the composition metrics."""
    judge, _, _, real_feats = fmnist_reference(samples, seed)
    uncond = _composed(model, [], _seeds(seed, samples), 0.0)
    metrics = {"fd_uncond": round(frechet_distance(batched_features(judge.features, uncond), real_feats), 3), "samples": samples}
    metrics.update(evaluate_compose_attributes(model, seed=seed))
    start = time.perf_counter()
    model.compose({model.config.attributes[0]: True}, guidance=ATTRIBUTE_GUIDANCE, seeds="0-15")
    metrics["seconds_per_16_single_attribute_samples"] = round(time.perf_counter() - start, 2)
    return metrics


def compose_not_metrics(model, per_class: int = NOT_PER_CLASS, seed: int = 0, guidance: float = NOT_GUIDANCE,
                        weight: float = NOT_WEIGHT, with_fd: bool = True) -> dict:
    """"Unconditional AND NOT c" for every class c at the same seeds: the share evaluator-fmnist calls c, and FD."""
    judge = _judge()
    names = list(model.config.class_names)
    seeds = _seeds(seed, per_class)
    rates, fds = [], []
    test = None
    if with_fd:
        from .datasets import labelled_split

        test = labelled_split("fashion-mnist", "test")
    for c, name in enumerate(names):
        x = _composed(model, [(name, -weight)], seeds, guidance)
        rates.append(float((judge.predict(x) == c).float().mean()))
        if test is not None:
            others = test.images[test.labels != c]
            fds.append(frechet_distance(batched_features(judge.features, x), batched_features(judge.features, others)))
    uncond = _composed(model, [], seeds, 0.0)
    shares = torch.bincount(judge.predict(uncond), minlength=len(names)).float() / len(uncond)
    out = {"compose_not_rate": round(sum(rates) / len(rates), 4), "compose_not_rate_max": round(max(rates), 4),
           "compose_not_rate_uncond_max": round(float(shares.max()), 4), "compose_not_per_class": per_class,
           "compose_not_guidance": guidance, "compose_not_weight": weight,
           "compose_not_rates": {n: round(r, 3) for n, r in zip(names, rates)}}
    if fds:
        out["compose_not_fd"] = round(sum(fds) / len(fds), 3)
    return out


def evaluate_compose_not(model, samples: int, seed: int) -> dict:
    """The ``compose`` metric group of a class model (``python -m train.evaluate cdrl-fmnist --only compose``)."""
    return compose_not_metrics(model, seed=seed)


# ----------------------------------------------------------------------------- card


def write_combination_grid(model, path: Path, per_setting: int = 8, guidance: float = ATTRIBUTE_GUIDANCE) -> Path:
    """A PNG with one row per full attribute combination (True / False for every attribute), seeds 0..per_setting-1."""
    from PIL import Image

    from studio.viz import image_grid

    names = list(model.config.attributes)
    rows = [_composed(model, {names[i]: v for i, v in s.items()}, list(range(per_setting)), guidance)
            for s in attribute_settings(len(names), len(names))]
    grid = image_grid(torch.cat(rows), ncols=per_setting, scale=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    (grid if isinstance(grid, Image.Image) else Image.fromarray(grid)).save(path)
    return path


def card_extra(model, metrics: dict) -> str:
    """The composition table of an attribute model's card (and the NOT numbers of a class model)."""
    lines = []
    names = list(model.config.attributes)
    acc = metrics.get("compose_setting_accuracy", {})
    if acc:
        lines.append(f"Composition at w = {metrics['compose_guidance']} ({metrics['compose_samples_per_setting']} samples per "
                     "setting; each sample's attributes judged automatically):\n")
        lines.append("| " + " | ".join(names) + " | samples with every asked value |")
        lines.append("|" + "---|" * (len(names) + 1))
        for key, value in acc.items():
            asked = dict(part.split("=") for part in key.split(", "))
            marks = {"True": "yes", "False": "no"}
            lines.append("| " + " | ".join(marks[asked[n]] if n in asked else "-" for n in names) + f" | {value} |")
    if "compose_not_rate" in metrics:
        lines.append(f"\nNOT: 'unconditional AND NOT c' (w = {metrics['compose_not_guidance']}, weight "
                     f"{metrics['compose_not_weight']}, {metrics['compose_not_per_class']} samples per class) is called c by "
                     f"evaluator-fmnist in {metrics['compose_not_rate']:.1%} of samples on average (worst class "
                     f"{metrics['compose_not_rate_max']:.1%}; unconditional samples: 10% on average).")
    return "\n".join(lines)
