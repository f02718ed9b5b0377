"""Offline-first data loaders: Fashion-MNIST, Twitter/Google emoji, procedural 3D shapes.

Loaders read registry-installed copies (see ``train/get_data.sh``) from
``data_dir()`` and fall back to an online download only where one exists.
"""
from __future__ import annotations

from pathlib import Path


def data_dir() -> Path:
    """Where downloaded/extracted data lives: ``$STUDIO_DATA_DIR``, else the repository's ``data/`` (``studio.paths``)."""
    from ..paths import data_dir as located

    return located()
