"""The studio installs like a library and the Docker image still builds from the repository's files.

* ``pip install .`` into a fresh virtual environment, then ``ebm-studio --port PORT`` started from a
  directory outside the repository serves the app, and ``import studio`` there is the installed copy
  (its held-out examples inside the package, no repository in sight).
* The Dockerfile's steps, run one by one here (``docker build`` is not available on these machines):
  WORKDIR, COPY (honouring .dockerignore), ``RUN pip install -r requirements.txt``, ENV, and CMD
  serving the app. Only the apt-get step is skipped: it installs the base image's system libraries.

Both environments are fresh venvs *layered* on the running one (``tools.fresh_install``): a ``.pth``
file puts the running environment's site-packages on their path, so pip finds torch, gradio and the
rest already installed instead of copying gigabytes from the local wheel store (a minute or more on a
2-core machine), while the studio itself is installed into (or copied for) the fresh environment only.
``venv --system-site-packages`` would not do: it layers on the base interpreter, not on this venv.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest

from tools.fresh_install import install, layered_venv, pip
from tools.processes import free_port, serving

ROOT = Path(__file__).resolve().parents[1]


def _pins(path: Path) -> list[str]:
    """The requirement lines of a requirements file (no comments, no -r includes)."""
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("-r")]


def test_pyproject_reads_the_requirement_files():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = meta["project"]
    assert project["name"] == "ebm-studio" and project["scripts"]["ebm-studio"] == "studio.cli:main"
    assert meta["tool"]["setuptools"]["dynamic"]["dependencies"] == {"file": ["requirements.txt"]}
    extras = project["optional-dependencies"]
    assert extras["train"] == _pins(ROOT / "requirements-train.txt")
    assert extras["dev"] == _pins(ROOT / "requirements-train.txt") + _pins(ROOT / "requirements-dev.txt")
    assert "spaces" in " ".join(_pins(ROOT / "requirements.txt")) and not any("accelerate" in p for p in _pins(ROOT / "requirements.txt"))


def serve(cmd: list[str], cwd: Path, env: dict, port: int, timeout: float = 240.0) -> str:
    """Start ``cmd``, wait for the app's page on ``port``, return its HTML; the process is stopped after."""
    with serving(cmd, port=port, cwd=cwd, env=env, timeout=timeout) as (_, _, page):
        return page


def app_env(checkpoints: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PORT", "GRADIO_SERVER_PORT")}
    env.update(STUDIO_CHECKPOINTS=str(checkpoints), HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", OMP_NUM_THREADS="1")
    return env


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ckpts")
    for name in ("toy-ring", "toy-gaussian-mixture"):
        shutil.copytree(ROOT / "checkpoints" / name, root / name)
    return root


def test_pip_install_then_ebm_studio_outside_the_repository(tmp_path, checkpoints):
    python = install(tmp_path)  # pip install . (a wheel of the source) into a fresh venv
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = app_env(checkpoints)
    probe = ("import json, studio, studio.paths as p; print(json.dumps([studio.__file__, str(p.repository_root()), "
             "str(p.assets_dir()), len(list((p.assets_dir() / 'examples').glob('*.png'))), str(p.checkpoints_dir())]))")
    where = subprocess.run([str(python), "-c", probe], cwd=outside, env=env, capture_output=True, text=True)
    assert where.returncode == 0, where.stderr[-2000:]
    module, repo, assets, examples, ckpts = json.loads(where.stdout)
    assert module.startswith(str(tmp_path / "venv")) and repo == "None"  # the installed copy, not the checkout
    assert assets.startswith(str(tmp_path / "venv")) and examples >= 10 and ckpts == str(checkpoints)
    # The benchmark's import_seconds, measured on this installation (its bar, <= 3 s, is checked by tools.bench's table).
    from tools import bench

    assert 0 < bench.bench_import(1, python=python)["import_seconds"] < 60
    help_text = subprocess.run([str(python), "-m", "studio", "--help"], cwd=outside, env=env, capture_output=True, text=True).stdout
    assert "--port" in help_text and "--host" in help_text and "--share" in help_text
    port = free_port()
    page = serve([str(tmp_path / "venv" / "bin" / "ebm-studio"), "--port", str(port)], outside, env, port)
    assert "EBM Studio" in page


def _dockerignored(rel: str, patterns: list[str]) -> bool:
    parts = rel.split("/")
    return any(fnmatch(rel, p) or fnmatch(parts[0], p) or (p.startswith("**/") and any(fnmatch(x, p[3:]) for x in parts))
               for p in patterns)


def test_the_dockerfile_steps_build_and_serve(tmp_path, checkpoints):
    """Each instruction of the Dockerfile, in order, with the image's /app as a temporary folder."""
    steps = [line.strip() for line in (ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
             if line.strip() and not line.strip().startswith("#")]
    ignore = [p.strip().rstrip("/") for p in (ROOT / ".dockerignore").read_text().splitlines() if p.strip() and not p.startswith("#")]
    workdir, env, cmd, python, ran = None, app_env(checkpoints), None, None, []
    for step in steps:
        op, _, rest = step.partition(" ")
        if op == "FROM":
            assert rest.startswith("python:3.11"), rest  # this interpreter stands in for the base image
            python = layered_venv(tmp_path / "image-python")
        elif op == "RUN" and rest.startswith("apt-get"):
            assert "libgomp1" in rest and "ffmpeg" in rest  # the base image's system libraries: not run here
        elif op == "WORKDIR":
            workdir = tmp_path / rest.lstrip("/")
            workdir.mkdir(parents=True)
        elif op == "COPY":
            src, dst = rest.split()
            if src == ".":
                for path in ROOT.rglob("*"):
                    rel = path.relative_to(ROOT).as_posix()
                    if path.is_file() and not _dockerignored(rel, ignore):
                        (workdir / rel).parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(path, workdir / rel)
            else:
                shutil.copy2(ROOT / src, workdir / (Path(src).name if dst == "." else dst))
        elif op == "RUN":
            args = shlex.split(rest)
            assert args[:2] == ["pip", "install"], rest
            pip(python, *args[1:], cwd=workdir)
        elif op == "ENV":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                env[key] = value
        elif op == "EXPOSE":
            assert rest == "7860"
        elif op == "CMD":
            cmd = json.loads(rest)
        ran.append(op)
    assert ran[:1] == ["FROM"] and ran[-1] == "CMD" and "COPY" in ran
    assert not (workdir / ".venv").exists() and not (workdir / "runs").exists() and (workdir / "app.py").is_file()
    assert env["GRADIO_SERVER_NAME"] == "0.0.0.0"
    env["GRADIO_SERVER_NAME"] = "127.0.0.1"  # this test's server stays on the loopback interface
    port = free_port()
    env["PORT"] = str(port)
    assert cmd == ["python", "app.py"]
    page = serve([str(python), *cmd[1:]], workdir, env, port)
    assert "EBM Studio" in page
