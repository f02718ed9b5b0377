"""Offline-first data loaders: Fashion-MNIST, Twitter/Google emoji, procedural 3D shapes.

Loaders read registry-installed copies (see ``train/get_data.sh``) from
``data_dir()`` and fall back to an online download only where one exists.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def data_dir() -> Path:
    """Where downloaded/extracted data lives: ``$STUDIO_DATA_DIR`` or ``<repo>/data``."""
    return Path(os.environ.get("STUDIO_DATA_DIR", REPO_ROOT / "data"))
