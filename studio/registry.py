"""The model registry: shipped checkpoint names, their Hub repos and one-line descriptions.

Importing this module imports every method module, so every model kind is
registered with ``studio.hub`` before a checkpoint is loaded.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from . import cdrl, cfebm, coopflow, egc, evaluator, lab, letit, nerf_lebm, toy  # noqa: F401  (register model kinds)
from .hub import checkpoints_dir, read_card

HUB_ORG = os.environ.get("STUDIO_HUB_ORG", "ebm-studio")


@dataclass(frozen=True)
class Entry:
    name: str
    description: str

    @property
    def repo_id(self) -> str:
        """The Hub mirror used when ``checkpoints/<name>`` is not present locally."""
        return f"{HUB_ORG}/{self.name}"


_ENTRIES = [
    Entry("toy-gaussian-mixture", "Analytic 2-D mixture of 8 Gaussians on a circle (Langevin playground)."),
    Entry("toy-ring", "Analytic 2-D ring energy (Langevin playground)."),
    Entry("cdrl-fmnist", "CDRL: class-conditional Fashion-MNIST EBM with an initializer and classifier-free guidance."),
    Entry("cdrl-fmnist-attributes", "CDRL conditional on three binary Fashion-MNIST attributes (top, bright, high-contrast) for AND / NOT composition."),
    Entry("drl-fmnist", "DRL baseline: the CDRL energy without an initializer (K = 30 per level)."),
    Entry("cfebm-fmnist", "CF-EBM: Fashion-MNIST EBM grown 8 -> 16 -> 32 px; generation, denoising, inpainting, OOD scores."),
    Entry("ebm-single-fmnist", "Ablation: the CF-EBM network trained at 32 px only, on the same image budget."),
    Entry("cfebm-emoji-t2g", "CF-EBM pixel-space translation baseline: Twitter -> Google emoji, grown 16 -> 32 -> 64 px."),
    Entry("letit-emoji", "LETIT: latent energy transport between Twitter and Google emoji (autoencoder + one latent EBM per direction)."),
    Entry("nerf-lebm-shapes", "NeRF-LEBM: 3D shapes3d objects from a triplane radiance field with EBM priors on shape and appearance latents."),
    Entry("nerf-vae-shapes", "NeRF-VAE baseline: the NeRF-LEBM field and encoder with a Gaussian prior, same budget."),
    Entry("egc-fmnist", "EGC: one Fashion-MNIST network that classifies (forward pass) and generates (its input gradient is the diffusion score)."),
    Entry("coopflow-fmnist", "CoopFlow: a normalizing flow proposes Fashion-MNIST images, a short-run Langevin flow on an EBM refines them."),
    Entry("evaluator-fmnist", "Reference Fashion-MNIST classifier; its features define the studio's FD."),
    Entry("evaluator-emoji", "Reference Twitter-vs-Google emoji style classifier."),
    Entry("evaluator-shapes3d", "Reference 6-class classifier of procedural shapes3d renders."),
]
REGISTRY: dict[str, Entry] = {e.name: e for e in _ENTRIES}


def local_names() -> list[str]:
    root = checkpoints_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "config.json").is_file())


def known_names() -> list[str]:
    return sorted(set(REGISTRY) | set(local_names()))


def list_models() -> dict[str, str]:
    """Every loadable name with a one-line description (local checkpoints and Hub mirrors)."""
    out = {}
    local = set(local_names())
    for name in known_names():
        desc = REGISTRY[name].description if name in REGISTRY else ""
        if not desc and name in local:
            meta, _ = read_card(checkpoints_dir() / name / "README.md") if (checkpoints_dir() / name / "README.md").exists() else ({}, "")
            desc = str(meta.get("description", ""))
        where = "local" if name in local else f"Hub: {REGISTRY[name].repo_id}"
        out[name] = f"{desc} [{where}]".strip()
    return out
