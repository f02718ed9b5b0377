"""Training smoke runs through `accelerate launch` on fixture data, resume, typed configs."""
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

import studio
from conftest import write_fake_fashion_mnist
from train.common import EMA, ConfigError, build_dataclass, load_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def fmnist_dir(tmp_path):
    return write_fake_fashion_mnist(tmp_path / "fm", train=200, test=50)


def _launch(script: str, args: list[str], env_extra: dict) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_extra, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", script, *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


TINY_CDRL = ["--set", "model.ebm_width=4", "--set", "model.init_width=4", "--set", "model.temb_dim=16",
             "--set", "model.langevin_steps=2", "--set", "train.batch_size=8", "--set", "train.save_every=2",
             "--set", "train.threads=1", "--set", "train.warmup=1"]


def test_cdrl_training_smoke_run_resume_and_export(tmp_path, fmnist_dir):
    env = {"FASHION_MNIST_DIR": str(fmnist_dir)}
    run_dir, out = tmp_path / "run", tmp_path / "ckpt"
    base = ["--config", "train/configs/cdrl_fmnist.yaml", *TINY_CDRL, "--run-dir", str(run_dir), "--export-dir", str(out)]
    first = _launch("train/cdrl.py", [*base, "--set", "train.steps=2"], env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert json.loads((run_dir / "run.json").read_text())["step"] == 2
    second = _launch("train/cdrl.py", [*base, "--set", "train.steps=4", "--resume"], env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert json.loads((run_dir / "run.json").read_text())["step"] == 4
    model = studio.load(out)
    assert model.checkpoint.kind == "cdrl" and model.checkpoint.extra["training"]["steps"] == 4
    x, _ = model.generate("Bag", seeds="0-1", steps=2)
    assert x.shape == (2, 1, 32, 32)


def test_drl_config_trains_without_initializer(tmp_path, fmnist_dir):
    out = tmp_path / "drl"
    res = _launch("train/cdrl.py", ["--config", "train/configs/drl_fmnist.yaml", *TINY_CDRL, "--set", "train.steps=1",
                                    "--run-dir", str(tmp_path / "r"), "--export-dir", str(out)], {"FASHION_MNIST_DIR": str(fmnist_dir)})
    assert res.returncode == 0, res.stderr[-3000:]
    model = studio.load(out, kind="drl")
    assert model.initializer is None


def test_evaluator_training_smoke_run(tmp_path, fmnist_dir):
    out = tmp_path / "ev"
    res = _launch("train/evaluator.py", ["--config", "train/configs/evaluator_fmnist.yaml", "--set", "train.epochs=0.1",
                                         "--set", "train.batch_size=16", "--set", "model.width=4", "--set", "train.threads=1",
                                         "--run-dir", str(tmp_path / "r"), "--export-dir", str(out)], {"FASHION_MNIST_DIR": str(fmnist_dir)})
    assert res.returncode == 0, res.stderr[-3000:]
    model = studio.load(out, kind="evaluator")
    assert model.config.num_classes == 10 and model.features(torch.zeros(2, 1, 32, 32)).shape == (2, 128)


def test_resume_without_state_is_a_clear_error(tmp_path, fmnist_dir):
    res = _launch("train/cdrl.py", ["--config", "train/configs/cdrl_fmnist.yaml", *TINY_CDRL, "--resume",
                                    "--run-dir", str(tmp_path / "none")], {"FASHION_MNIST_DIR": str(fmnist_dir)})
    assert res.returncode != 0 and "no saved state" in res.stderr


@dataclass
class Inner:
    lr: float = 0.1
    flag: bool = False


@dataclass
class Outer:
    name: str = "x"
    steps: int = 1
    inner: Inner = field(default_factory=Inner)
    sizes: list[int] = field(default_factory=list)


def test_typed_configs(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: run\nsteps: 5\ninner:\n  lr: 1\n  flag: true\nsizes: [1, 2]\n")
    cfg = load_config(Outer, path, ["inner.lr=0.5", "steps=7"])
    assert cfg == Outer("run", 7, Inner(0.5, True), [1, 2])
    # YAML 1.1 reads `1e-4` (no dot) as a string; a float field still takes it, and only numbers.
    assert load_config(Outer, path, ["inner.lr=1e-4"]).inner.lr == 1e-4
    assert load_config(Outer, path, ["inner.lr=-2.5E+3"]).inner.lr == -2500.0
    for bad, match in [({"steps": "5"}, "integer"), ({"inner": {"flag": "False"}}, "true/false"),
                       ({"nope": 1}, "unknown keys"), ({"sizes": [1, "a"]}, "integer"),
                       ({"inner": {"lr": "1e"}}, "number"), ({"inner": {"lr": "0.1"}}, "number"), ({"inner": {"lr": "nan"}}, "number")]:
        with pytest.raises(ConfigError, match=match):
            build_dataclass(Outer, bad)
    with pytest.raises(ConfigError, match="key=value"):
        load_config(Outer, path, ["steps"])


def test_ema_tracks_parameters():
    net = torch.nn.Linear(2, 1)
    ema = EMA(net, decay=0.5)
    with torch.no_grad():
        net.weight.fill_(1.0)
    for _ in range(50):
        ema.update(net)
    torch.testing.assert_close(ema.shadow.weight, net.weight)


TINY_CFEBM = ["--set", "model.width=4", "--set", 'model.steps={"8": 2, "16": 2}', "--set", "train.resolutions=[8, 16]",
              "--set", "train.batch_size=8", "--set", "train.save_every=1", "--set", "train.threads=1"]


def test_cfebm_training_crosses_a_stage_boundary_and_resumes(tmp_path, fmnist_dir):
    env = {"FASHION_MNIST_DIR": str(fmnist_dir)}
    run_dir, out = tmp_path / "run", tmp_path / "ckpt"
    common = ["--config", "train/configs/cfebm_fmnist.yaml", *TINY_CFEBM, "--run-dir", str(run_dir), "--export-dir", str(out)]
    # First run: all of the 8 px stage and into the 16 px stage, stopped mid-stage by an images budget trick:
    first = _launch("train/cfebm.py", [*common, "--set", 'train.images={"8": 16, "16": 16}'], env)
    assert first.returncode == 0, first.stderr[-3000:]
    info = json.loads((run_dir / "state" / "run.json").read_text())
    assert info["progress"]["stage"] == 2 and info["model_config"]["resolution"] == 16
    model = studio.load(out)
    assert model.config.resolution == 16 and sorted(model.coarse) == ["8"] and not model.config.fading
    x, _ = model.generate("0-1", multiscale=True)
    assert x.shape == (2, 1, 16, 16)


def test_cfebm_resume_mid_stage(tmp_path, fmnist_dir):
    env = {"FASHION_MNIST_DIR": str(fmnist_dir)}
    run_dir, out = tmp_path / "run", tmp_path / "ckpt"
    common = ["--config", "train/configs/cfebm_fmnist.yaml", *TINY_CFEBM, "--run-dir", str(run_dir), "--export-dir", str(out),
              "--set", 'train.images={"8": 16, "16": 48}']
    first = _launch("train/cfebm.py", [*common, "--set", "train.max_minutes=0.0001"], env)
    assert first.returncode == 0, first.stderr[-3000:]
    info = json.loads((run_dir / "state" / "run.json").read_text())
    assert info["progress"]["stage"] == 0 and info["progress"]["seen"] == 8
    second = _launch("train/cfebm.py", [*common, "--resume"], env)
    assert second.returncode == 0, second.stderr[-3000:]
    info = json.loads((run_dir / "state" / "run.json").read_text())
    assert info["progress"]["stage"] == 2 and info["progress"]["step"] == 2 + 6
    assert studio.load(out).config.resolution == 16


def test_cfebm_single_scale_ablation_uses_the_same_network_and_image_budget(tmp_path, fmnist_dir):
    env = {"FASHION_MNIST_DIR": str(fmnist_dir)}
    run_dir, out = tmp_path / "run", tmp_path / "ckpt"
    args = ["--config", "train/configs/cfebm_fmnist.yaml", *TINY_CFEBM, "--run-dir", str(run_dir), "--export-dir", str(out),
            "--set", 'train.images={"8": 8, "16": 16}', "--no-coarse-to-fine"]
    done = _launch("train/cfebm.py", args, env)
    assert done.returncode == 0, done.stderr[-3000:]
    info = json.loads((run_dir / "state" / "run.json").read_text())
    assert info["progress"]["step"] == 3  # (8 + 16) images / batch 8, all at 16 px
    model = studio.load(out)
    assert model.config.resolution == 16 and model.config.base_resolution == 8 and not model.coarse
    assert model.checkpoint.extra["coarse_to_fine"] is False
    assert "--no-coarse-to-fine" in (out / "README.md").read_text()
    with pytest.raises(studio.SamplingError):
        model.generate("0", multiscale=True)


def test_cfebm_translation_training_starts_chains_at_source_images(tmp_path):
    from test_data_emoji import _entries, build_tree

    build_tree(tmp_path / "data" / "emoji", _entries())
    out = tmp_path / "ckpt"
    args = ["--config", "train/configs/cfebm_emoji_t2g.yaml", "--run-dir", str(tmp_path / "run"), "--export-dir", str(out),
            "--set", "model.width=4", "--set", 'model.steps={"16": 2, "32": 2}', "--set", "train.resolutions=[16, 32]",
            "--set", 'train.images={"16": 8, "32": 8}', "--set", "train.batch_size=4", "--set", "train.image_size=32",
            "--set", "train.threads=1"]
    done = _launch("train/cfebm.py", args, {"STUDIO_DATA_DIR": str(tmp_path / "data")})
    assert done.returncode == 0, done.stderr[-3000:]
    model = studio.load(out)
    assert (model.config.channels, model.config.resolution) == (3, 32)
    assert (model.config.source_domain, model.config.target_domain) == ("twitter", "google")
    source = torch.rand(2, 3, 32, 32) * 2 - 1
    y, trace = model.translate(source, seeds="0-1", record_every=1)
    assert y.shape == source.shape and trace.saliency().shape == (2, 32, 32)
    torch.testing.assert_close(trace.frames[0], source)  # the chain starts at the source image
    bad = _launch("train/cfebm.py", [*args, "--set", "train.source_domain=google"], {"STUDIO_DATA_DIR": str(tmp_path / "data")})
    assert bad.returncode != 0 and "source_domain and target_domain" in bad.stderr
