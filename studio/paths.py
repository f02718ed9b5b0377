"""Where the studio finds its files, the same from a source checkout and from an installed package.

Checkpoints, in this order (``studio.hub.resolve``):

1. ``$STUDIO_CHECKPOINTS``, when set;
2. the repository's ``checkpoints/``, when ``studio`` is imported from a source checkout (a clone,
   ``pip install -e .``, the Docker image or a Space, which all run from the repository's files);
3. the Hub mirror ``ebm-studio/<name>`` through ``huggingface_hub`` (its cache, ``HF_HUB_OFFLINE``).

An installed copy outside a checkout has no local folder of its own unless ``STUDIO_CHECKPOINTS``
says so (``checkpoints_dir`` then names ``~/.cache/ebm-studio/checkpoints``, which is empty unless
something was exported there), so it loads by name from the Hub.

The app's held-out examples ship inside the package (``studio/assets`` in a wheel, ``assets/`` in
the repository); data sets live in ``$STUDIO_DATA_DIR``, else the repository's ``data/``, else
``~/.cache/ebm-studio/data``.
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
USER_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ebm-studio"


def repository_root() -> Path | None:
    """The source checkout ``studio`` was imported from, or None for an installed package."""
    root = PACKAGE.parent
    return root if (root / "pyproject.toml").is_file() and (root / "studio" / "__init__.py").is_file() else None


def _folder(variable: str, name: str) -> Path:
    """``$variable`` when set, else the repository's ``name/`` folder (the user cache's once installed)."""
    env = os.environ.get(variable, "").strip()
    if env:
        return Path(env).expanduser()
    repo = repository_root()
    return repo / name if repo is not None else USER_CACHE / name


def checkpoints_dir() -> Path:
    """The local checkpoint folder: ``$STUDIO_CHECKPOINTS``, else the repository's ``checkpoints/``."""
    return _folder("STUDIO_CHECKPOINTS", "checkpoints")


def assets_dir() -> Path:
    """The app's shipped files (held-out examples, figures): inside the package once installed."""
    installed = PACKAGE / "assets"
    if installed.is_dir():
        return installed
    return PACKAGE.parent / "assets"


def data_dir() -> Path:
    """Downloaded / extracted data sets: ``$STUDIO_DATA_DIR``, else the repository's ``data/``."""
    return _folder("STUDIO_DATA_DIR", "data")
