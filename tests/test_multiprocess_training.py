"""Train scripts scale out: 2 gloo processes on the CPU stay in sync and split the global batch.

`accelerate launch --multi_gpu --num_processes 2 train/x.py --cpu` starts two processes with
Accelerator(cpu=True) (gloo backend). Each run checks its replicas at every save (parameter
checksums gathered from all processes, written to run.json); STUDIO_TRACE_BATCHES=1 makes each
process log what it trained on, which is compared here with the global batch a single process
would draw.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import studio
from studio.data.fashion_mnist import write_idx
from train.common import DivergenceError, check_replicas, infinite_batches, step_generator

REPO = Path(__file__).resolve().parents[1]
BATCH = 8


@pytest.fixture(scope="module")
def fmnist_dir(tmp_path_factory):
    rng = np.random.default_rng(1)
    d = tmp_path_factory.mktemp("fm")
    for prefix, n in (("train", 64), ("t10k", 16)):
        write_idx(d / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(d / f"{prefix}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))
    return d


def _launch_two(script: str, args: list[str], fmnist: Path, env_extra: dict | None = None) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "FASHION_MNIST_DIR": str(fmnist), "STUDIO_THREADS": "1",
           "STUDIO_TRACE_BATCHES": "1", **(env_extra or {})}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", script, "--cpu", *args]
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]


def _traced(run_dir: Path) -> dict[int, list[list[float]]]:
    """step -> [rank 0 rows, rank 1 rows]."""
    out: dict[int, list] = {}
    for rank in (0, 1):
        for line in (run_dir / f"batches-rank{rank}.jsonl").read_text().splitlines():
            rec = json.loads(line)
            out.setdefault(rec["step"], [None, None])[rank] = rec["rows"]
    return out


def _assert_split(traced: dict, expected: list[list[float]]) -> None:
    assert sorted(traced) == list(range(1, len(expected) + 1))
    for step, rows in enumerate(expected, start=1):
        r0, r1 = traced[step]
        assert len(r0) == len(r1) == BATCH // 2  # each process trains on half of the global batch
        assert r0 + r1 == rows  # ... and together they are exactly the global batch, in order


def test_cfebm_two_processes_stay_in_sync_across_a_stage_boundary(tmp_path, fmnist_dir, monkeypatch):
    """CF-EBM grows its network between stages, so its DDP wrapper is rebuilt; replicas must agree throughout."""
    run_dir, out = tmp_path / "run", tmp_path / "ckpt"
    _launch_two("train/cfebm.py", ["--config", "train/configs/cfebm_fmnist.yaml", "--set", "model.width=4",
                                   "--set", 'model.steps={"8": 2, "16": 2}', "--set", "train.resolutions=[8, 16]",
                                   "--set", f"train.batch_size={BATCH}", "--set", "train.save_every=1",
                                   "--set", 'train.images={"8": 16, "16": 32}', "--run-dir", str(run_dir),
                                   "--export-dir", str(out)], fmnist_dir)
    info = json.loads((run_dir / "state" / "run.json").read_text())
    assert info["progress"]["stage"] == 2 and info["progress"]["step"] == 6
    assert len(info["replicas"]) == 2 and info["replicas"][0] == info["replicas"][1]
    # Global batch indices come from a generator seeded by the step (seed 0), over the training split.
    from studio.data.fashion_mnist import load_fashion_mnist

    monkeypatch.setenv("FASHION_MNIST_DIR", str(fmnist_dir))
    n = len(load_fashion_mnist("train").images)
    expected = [torch.randint(0, n, (BATCH,), generator=step_generator(0, s)).double().tolist() for s in range(6)]
    _assert_split(_traced(run_dir), expected)
    assert [json.loads(line)["step"] for line in (run_dir / "log.jsonl").read_text().splitlines()] == list(range(1, 7))
    assert studio.load(out).config.resolution == 16


# Tiny CDRL, EGC and CoopFlow runs: each draws the global batch from infinite_batches(seed 0) and splits it.
TINY_RUNS = {
    "cdrl": ("train/cdrl.py", "train/configs/cdrl_fmnist.yaml",
             {"model.ebm_width": 4, "model.init_width": 4, "model.temb_dim": 16, "model.langevin_steps": 2, "train.warmup": 1}),
    "egc": ("train/egc.py", "train/configs/egc_fmnist.yaml",
            {"model.widths": "[4, 8]", "model.feat_dim": 4, "model.emb_dim": 16, "train.eval_every": 0, "train.warmup": 1,
             "train.val_images": 8, "train.threads": 1}),
    "coopflow": ("train/coopflow.py", "train/configs/coopflow_fmnist.yaml",
                 {"model.flow_steps": 1, "model.flow_hidden": 8, "model.ebm_width": 2, "model.ebm_head": 4,
                  "model.langevin_steps": 2, "train.pretrain_steps": 1, "train.warmup_steps": 1, "train.threads": 1}),
}


@pytest.mark.parametrize("kind", sorted(TINY_RUNS))
def test_two_processes_stay_in_sync_and_split_the_batch(tmp_path, fmnist_dir, monkeypatch, kind):
    script, config, sets = TINY_RUNS[kind]
    run_dir, out = tmp_path / "run", tmp_path / "ckpt"
    steps = 4  # CoopFlow: one flow-only step, one EBM warm-up step, then two cooperative steps
    sets = {**sets, "train.batch_size": BATCH, "train.save_every": 2, "train.steps": steps}
    _launch_two(script, ["--config", config, *[a for k, v in sets.items() for a in ("--set", f"{k}={v}")],
                         "--run-dir", str(run_dir), "--export-dir", str(out)], fmnist_dir)
    info = json.loads((run_dir / "run.json").read_text())
    replicas = info["extra"]["replicas"]
    assert info["step"] == steps and replicas["processes"] == 2
    assert replicas["checksums"][0] == replicas["checksums"][1]  # identical parameters after N steps, bit for bit

    from studio.data.fashion_mnist import load_fashion_mnist

    monkeypatch.setenv("FASHION_MNIST_DIR", str(fmnist_dir))
    data = load_fashion_mnist("train")
    batches = infinite_batches((data.images,) if kind == "coopflow" else (data.images, data.labels), BATCH, 0)
    expected = [[round(v, 4) for v in next(batches)[0].flatten(1).double().sum(1).tolist()] for _ in range(steps)]
    _assert_split(_traced(run_dir), expected)
    assert studio.load(out).checkpoint.extra["training"]["steps"] == steps


NERF_TINY = {"shape_dim": 8, "appearance_dim": 6, "plane_res": 8, "plane_channels": 4, "decoder_width": 8, "hidden": 16,
             "appearance_features": 8, "encoder_width": 8, "ebm_width": 16, "samples": 8, "train_samples": 4, "prior_steps": 3}
NERF_TRAIN = {"train_objects": 6, "val_objects": 2, "views": 2, "batch_size": BATCH, "rays": 8, "target_views": 2}


@pytest.mark.parametrize("prior", ["ebm", "gaussian"])
def test_nerf_lebm_two_processes_stay_in_sync_and_split_the_batch(tmp_path, monkeypatch, prior):
    """The EBM prior runs Langevin chains inside the DDP forward; the Gaussian baseline leaves its EBMs unused."""
    run_dir, out, data_dir = tmp_path / "run", tmp_path / "ckpt", tmp_path / "data"
    steps = 3
    sets = {**{f"train.{k}": v for k, v in NERF_TRAIN.items()}, **{f"model.{k}": v for k, v in NERF_TINY.items()},
            "train.steps": steps, "train.save_every": 2, "train.log_every": 1, "train.warmup": 1, "train.max_minutes": 0}
    _launch_two("train/nerf_lebm.py", ["--config", "train/configs/nerf_lebm_shapes.yaml", "--prior", prior,
                                       *[a for k, v in sets.items() for a in ("--set", f"{k}={v}")],
                                       "--run-dir", str(run_dir), "--export-dir", str(out)],
                tmp_path, {"STUDIO_DATA_DIR": str(data_dir)})
    info = json.loads((run_dir / "run.json").read_text())
    replicas = info["extra"]["replicas"]
    assert info["step"] == steps and replicas["processes"] == 2
    assert replicas["checksums"][0] == replicas["checksums"][1]  # identical parameters after N steps, bit for bit

    from train.nerf_lebm import NeRFTrainSettings, TrainingViews

    monkeypatch.setenv("STUDIO_DATA_DIR", str(data_dir))
    ts = NeRFTrainSettings(**NERF_TRAIN)
    data = TrainingViews(ts)  # the objects the run rendered (read from its cache)
    # The global batch: the encoder views drawn from the (seed 0, step) generator, as one process would.
    expected = [[round(v, 4) for v in data.batch(ts, step_generator(0, s))["images"].flatten(1).double().sum(1).tolist()]
                for s in range(steps)]
    _assert_split(_traced(run_dir), expected)
    logged = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == list(range(1, steps + 1)) and ("e_neg" in logged[-1]) == (prior == "ebm")
    model = studio.load(out)
    assert model.config.prior == prior and model.checkpoint.extra["training"]["steps"] == steps


def test_out_of_sync_replicas_stop_the_run():
    check_replicas([1.0, 1.0], step=3)
    with pytest.raises(DivergenceError, match="replicas differ at step 3.*accelerator.prepare"):
        check_replicas([1.0, 1.0 + 1e-6], step=3)
