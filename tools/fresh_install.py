"""``pip install .`` into a fresh virtual environment, quickly: for the packaging tests and the benchmark's
``import_seconds``.

The fresh venv is *layered* on the running environment: a ``.pth`` file puts the running environment's
site-packages on its path, so pip finds torch, gradio and the other pinned dependencies already
installed (``--no-deps`` then installs the studio alone) instead of copying gigabytes from the wheel
store, while ``studio`` itself comes from the wheel built here. ``venv --system-site-packages`` would
not do: inside a venv it layers on the base interpreter, not on the venv. The build reads a copy of
the source (what ``pip install .`` reads), so it leaves no ``build/`` folder in the checkout.
"""
from __future__ import annotations

import shutil
import site
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "requirements.txt", "studio", "assets")


def source_tree(where: Path, root: Path = ROOT) -> Path:
    """What ``pip install .`` reads, copied to ``where``."""
    where.mkdir(parents=True)
    for name in SOURCES:
        src = root / name
        if src.is_dir():
            shutil.copytree(src, where / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, where / name)
    return where


def build_wheel(source: Path, out: Path) -> Path:
    """The ``ebm_studio`` wheel of ``source`` (the running environment's setuptools, no download)."""
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)])
    wheel, = out.glob("ebm_studio-*.whl")
    return wheel


def layered_venv(where: Path) -> Path:
    """A fresh venv (no pip of its own) that also sees the running environment's packages; returns its python."""
    run([sys.executable, "-m", "venv", "--without-pip", str(where)])
    python = where / "bin" / "python"
    purelib = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip()
    ours = sysconfig.get_paths()["purelib"]
    others = [p for p in site.getsitepackages() if p != ours]
    Path(purelib, "_layered_on_parent_env.pth").write_text("\n".join([ours, *others]) + "\n")
    return python


def pip(python: Path, *args: str, cwd: Path | None = None) -> str:
    """The running pip, acting on ``python``'s environment (``pip --python``)."""
    return run([sys.executable, "-m", "pip", "--python", str(python), *args], cwd=cwd)


def install(where: Path, root: Path = ROOT) -> Path:
    """Build the wheel of ``root`` and install it (``--no-deps``) into a fresh layered venv under ``where``; its python."""
    wheel = build_wheel(source_tree(where / "source", root), where / "wheels")
    python = layered_venv(where / "venv")
    pip(python, "install", "--no-deps", "--no-index", str(wheel))
    return python


def import_seconds(python: Path, repeats: int = 3) -> float:
    """Median wall time of ``python -c "import studio"`` started in an empty folder (after one warm-up run,
    which also writes the bytecode caches)."""
    with tempfile.TemporaryDirectory() as empty:
        times = []
        for i in range(repeats + 1):
            start = time.perf_counter()
            run([str(python), "-c", "import studio"], cwd=Path(empty))
            if i:
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(cmd: list[str], cwd: Path | None = None) -> str:
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}): {(out.stdout + out.stderr)[-2000:]}")
    return out.stdout
