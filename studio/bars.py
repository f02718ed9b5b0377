"""The bars the shipped models are held to, declared once, and how each model's card measures up.

A bar is a promise an issue made about a model's output (its FD, its class accuracy, its PSNR gain...).
The numbers come from the checkpoint's own ``metrics.json`` (written by ``python -m train.evaluate``),
so when a model is retrained and re-evaluated, every place that reads these verdicts follows: the
warnings next to the buttons that run a model (``studio.ui.bar_warnings``), and the README's model table
(``train.readme_table``). No warning text is written by hand.

A bar's target is a number or the name of another key of the same metrics (``t2g_ssim >= identity_t2g_ssim``).
A key the card does not have is "not measured": no verdict, no warning. ``use`` names the action of the
tab the bar is about ("generate", "classify", "t2g"...), so a tab shows only the bars of what its button runs.
"""
from __future__ import annotations

import json
import operator
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}


@dataclass(frozen=True)
class Bar:
    model: str
    key: str
    op: str
    target: float | str  # a number, or another key of the same metrics.json
    what: str  # the measured quantity in plain words
    use: str  # which action of the model the bar is about
    source: str  # where the bar was set

    def __post_init__(self):
        if self.op not in OPS:
            raise ValueError(f"Unknown comparison {self.op!r} in the bar on {self.model} {self.key}.")


@dataclass(frozen=True)
class Verdict:
    bar: Bar
    value: float
    target: float

    @property
    def met(self) -> bool:
        return bool(OPS[self.bar.op](self.value, self.target))

    def describe(self) -> str:
        """E.g. "FD of guided samples: 48.09 (bar <= 10)"; a key-valued target is named with its value."""
        b = self.bar
        target = f"{_fmt(self.target)}" if not isinstance(b.target, str) else f"{b.target} = {_fmt(self.target)}"
        return f"{b.what}: {_fmt(self.value)} (bar {b.op} {target})"


def _fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1 else f"{v:.4g}"


# The issue that set each bar is named; the README's model table and the tabs' warnings read this list.
BARS: tuple[Bar, ...] = (
    # issue 19: EGC must generate
    Bar("egc-fmnist", "egc_test_accuracy", ">=", 0.88, "test accuracy (10,000 images)", "classify", "issue 19"),
    Bar("egc-fmnist", "egc_class_accuracy_guided", ">=", 0.80,
        "evaluator-fmnist accuracy on guided samples of the requested class", "generate", "issue 19"),
    Bar("egc-fmnist", "egc_fd", "<=", 10.0, "FD of guided samples (floor 0.176)", "generate", "issue 19"),
    Bar("egc-fmnist", "egc_denoise_gain_t100", ">", 0.1,
        "denoising gain of the network over its analytic base at t = 100", "generate", "issue 19"),
    Bar("egc-fmnist", "egc_samples", ">=", 2000, "guided samples behind the FD and accuracy", "generate", "issue 19"),
    # issue 20: CoopFlow that makes clothing
    Bar("coopflow-fmnist", "coopflow_fd_refined", "<=", 10.0, "FD of refined samples (floor 0.176)", "generate", "issue 20"),
    Bar("coopflow-fmnist", "coopflow_fd_refined", "<", "coopflow_fd_flow", "FD of refined samples vs the flow's proposals",
        "generate", "issue 20"),
    Bar("coopflow-fmnist", "coopflow_class_entropy", ">=", 2.0,
        "entropy of the samples' predicted-class histogram (nats; ln 10 = 2.303 is all classes evenly)", "generate", "issue 20"),
    # issue 21: LETIT translations that stay clean
    Bar("letit-emoji", "t2g_fd", "<=", 10.0, "FD of Twitter -> Google outputs", "t2g", "issue 21"),
    Bar("letit-emoji", "t2g_psnr_gain", ">=", 0.3, "Twitter -> Google PSNR gain over the untranslated input (dB)", "t2g", "issue 21"),
    Bar("letit-emoji", "t2g_ssim", ">=", "identity_t2g_ssim", "Twitter -> Google SSIM to the true drawing vs the untranslated input's",
        "t2g", "issue 21"),
    Bar("letit-emoji", "t2g_target_score", ">=", 0.8, "Twitter -> Google: evaluator's probability of the Google style", "t2g", "issue 21"),
    Bar("letit-emoji", "g2t_fd", "<=", 5.0, "FD of Google -> Twitter outputs", "g2t", "issue 21"),
    Bar("letit-emoji", "g2t_psnr_gain", ">=", 0.3, "Google -> Twitter PSNR gain over the untranslated input (dB)", "g2t", "issue 21"),
    Bar("letit-emoji", "g2t_ssim", ">=", "identity_g2t_ssim", "Google -> Twitter SSIM to the true drawing vs the untranslated input's",
        "g2t", "issue 21"),
    Bar("letit-emoji", "g2t_target_score", ">=", 0.8, "Google -> Twitter: evaluator's probability of the Twitter style", "g2t", "issue 21"),
    # issue 22: the Fashion-MNIST EBMs at their best
    Bar("cfebm-fmnist", "fd", "<=", 6.0, "FD of single-scale samples (floor 0.176)", "generate", "issue 22"),
    Bar("cfebm-fmnist", "fd_multiscale", "<=", "fd", "FD of multi-scale samples vs single-scale", "multiscale", "issue 22"),
    Bar("cdrl-fmnist", "fd_uncond", "<=", 8.0, "unconditional FD", "generate", "issue 22"),
    Bar("cdrl-fmnist", "class_accuracy_w1", ">=", 0.92, "class accuracy at guidance w = 1", "generate", "issue 22"),
    # issue 23: compositional generation
    Bar("cdrl-fmnist-attributes", "compose_single_accuracy", ">=", 0.85,
        "single-attribute settings: share of samples with the asked value", "compose", "issue 23"),
    Bar("cdrl-fmnist-attributes", "compose_pair_accuracy", ">=", 0.70,
        "two-attribute settings: share of samples with both asked values", "compose", "issue 23"),
    Bar("cdrl-fmnist", "compose_not_rate", "<=", 0.03, "'unconditional AND NOT c': share of samples judged c", "compose",
        "issue 23"),
    # NeRF-LEBM's claim: its EBM prior beats the Gaussian prior of the same budget
    Bar("nerf-lebm-shapes", "fd_ebm_prior", "<", "fd_gaussian_prior", "FD of EBM-prior renders vs the Gaussian prior's",
        "generate", "the NeRF-LEBM issue"),
)


def bars_for(name: str, use: str | None = None) -> list[Bar]:
    return [b for b in BARS if b.model == name and (use is None or b.use == use)]


def read_metrics(name: str, root: Path | None = None) -> dict:
    """``checkpoints/<name>/metrics.json`` ({} when the model has none or it cannot be read)."""
    from .hub import checkpoints_dir

    path = Path(root or checkpoints_dir()) / name / "metrics.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _number(metrics: Mapping, key: str) -> float | None:
    v = metrics.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def verdicts(name: str, use: str | None = None, metrics: Mapping | None = None) -> list[Verdict]:
    """The measured bars of ``name`` (those of ``use`` only, when given); unmeasured ones are left out."""
    metrics = read_metrics(name) if metrics is None else metrics
    out = []
    for bar in bars_for(name, use):
        value = _number(metrics, bar.key)
        target = _number(metrics, bar.target) if isinstance(bar.target, str) else float(bar.target)
        if value is not None and target is not None:
            out.append(Verdict(bar, value, target))
    return out


def misses(name: str, use: str | None = None, metrics: Mapping | None = None) -> list[Verdict]:
    return [v for v in verdicts(name, use, metrics) if not v.met]
