"""Training survives faults: SIGKILL mid-run, crashes inside a save, and --resume continues exactly.

Faults injected here (counted in the README's Reliability section):
1. SIGKILL of a running `accelerate launch` (launcher and worker) after a saved state;
2. a crash inside accelerate's save_state (half-written state.tmp);
3. a crash between the two renames that commit a state;
4. a crash while a resumed run re-writes the loss log is covered by truncate_log's temp file + rename.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import studio
from studio.data.fashion_mnist import write_idx

REPO = Path(__file__).resolve().parents[1]
STEPS, SAVE_EVERY, KILL_AFTER = 24, 4, 8

TINY_CDRL = ["--config", "train/configs/cdrl_fmnist.yaml", "--set", "model.ebm_width=4", "--set", "model.init_width=4",
             "--set", "model.temb_dim=16", "--set", "model.langevin_steps=2", "--set", "train.batch_size=8",
             "--set", f"train.save_every={SAVE_EVERY}", "--set", "train.threads=1", "--set", "train.warmup=3",
             "--set", f"train.steps={STEPS}", "--set", "train.ema_decay=0.9"]


@pytest.fixture
def fmnist_dir(tmp_path):
    rng = np.random.default_rng(0)
    d = tmp_path / "fm"
    d.mkdir()
    for prefix, n in (("train", 120), ("t10k", 20)):  # 120 images = 15 batches: the runs cross an epoch boundary
        write_idx(d / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(d / f"{prefix}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))
    return d


def _launch(args: list[str], fmnist: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "FASHION_MNIST_DIR": str(fmnist), "STUDIO_THREADS": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "train/cdrl.py", *TINY_CDRL, *args]
    # A session of its own, so SIGKILL reaches the launcher and its worker together (a dying node).
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _finish(proc: subprocess.Popen, timeout: float = 300) -> None:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]


def _log(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path, fmnist_dir):
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"
    reference = _launch(["--run-dir", str(ref_dir), "--export-dir", str(tmp_path / "ref-ckpt")], fmnist_dir)
    victim = _launch(["--run-dir", str(run_dir), "--export-dir", str(tmp_path / "ckpt")], fmnist_dir)
    info = run_dir / "run.json"
    deadline = time.time() + 240
    while time.time() < deadline and victim.poll() is None:
        if info.exists() and json.loads(info.read_text())["step"] >= KILL_AFTER:
            break
        time.sleep(0.02)
    assert victim.poll() is None, "the run ended before it could be killed:\n" + victim.communicate()[1][-2000:]
    os.killpg(victim.pid, signal.SIGKILL)
    victim.communicate()
    assert victim.returncode == -signal.SIGKILL
    saved = json.loads(info.read_text())["step"]
    assert KILL_AFTER <= saved < STEPS and saved % SAVE_EVERY == 0
    assert not (tmp_path / "ckpt").exists()  # killed before the export

    _finish(_launch(["--run-dir", str(run_dir), "--export-dir", str(tmp_path / "ckpt"), "--resume"], fmnist_dir))
    _finish(reference)

    # The step counter continued to the end, and every step is logged exactly once.
    assert json.loads(info.read_text())["step"] == STEPS
    log, ref_log = _log(run_dir), _log(ref_dir)
    assert [r["step"] for r in log] == list(range(1, STEPS + 1)) == [r["step"] for r in ref_log]
    # The loss curve after the resume is the uninterrupted one (same data order, same chain noise).
    for key in ("ebm_loss", "init_loss", "f_pos", "f_neg"):
        np.testing.assert_allclose([r[key] for r in log], [r[key] for r in ref_log], rtol=1e-4, atol=1e-5, err_msg=key)

    # Optimizer state (Adam step counts and moments), weights and EMA continued rather than restarting.
    opt, ref_opt = (torch.load(d / "state" / "optimizer.bin", weights_only=True) for d in (run_dir, ref_dir))
    for pid, st in opt["state"].items():
        assert int(st["step"]) == STEPS
        torch.testing.assert_close(st["exp_avg"], ref_opt["state"][pid]["exp_avg"], rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(st["exp_avg_sq"], ref_opt["state"][pid]["exp_avg_sq"], rtol=1e-4, atol=1e-9)
    weights, ref_weights = (load_file(str(d / "state" / "model.safetensors")) for d in (run_dir, ref_dir))
    for k, v in weights.items():
        torch.testing.assert_close(v, ref_weights[k], rtol=1e-4, atol=1e-6)
    ema = torch.load(run_dir / "state" / "custom_checkpoint_0.pkl", weights_only=True)
    assert int(ema["num_updates"]) == STEPS
    exported, ref_exported = studio.load(tmp_path / "ckpt"), studio.load(tmp_path / "ref-ckpt")
    for (k, v), (_, w) in zip(exported.state_dict().items(), ref_exported.state_dict().items()):
        torch.testing.assert_close(v, w, rtol=1e-4, atol=1e-6, msg=k)
    assert exported.checkpoint.extra["training"]["steps"] == STEPS


# -- crashes inside a save (in-process, with a real Accelerator) -------------------------------


@pytest.fixture(autouse=False)
def accelerator():
    """A factory of Accelerators (one per simulated process start); accelerate's global state is reset after."""
    from accelerate.state import AcceleratorState

    from train.common import make_accelerator

    yield lambda: make_accelerator(cpu=True)
    AcceleratorState._reset_state(True)


def _tiny_run(new_accelerator, run_dir: Path, resume: bool):
    from train.common import EMA, Run

    acc = new_accelerator()
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    ema = EMA(model, 0.5)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model, opt = acc.prepare(model, opt)
    acc.register_for_checkpointing(ema)
    run = Run(acc, run_dir, resume)
    return model, opt, ema, run


def _train_step(model, opt, ema, run) -> None:
    loss = model(torch.ones(4, 3)).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    ema.update(model)
    run.state.step += 1
    run.log({"loss": float(loss.detach())})


def test_crash_inside_save_state_keeps_the_last_good_state(tmp_path, accelerator, monkeypatch):
    model, opt, ema, run = _tiny_run(accelerator, tmp_path, resume=False)
    for _ in range(2):
        _train_step(model, opt, ema, run)
    run.save()
    saved_weight = model.weight.detach().clone()
    _train_step(model, opt, ema, run)

    real_save = run.acc.save_state

    def dies_halfway(path, *a, **k):
        real_save(path, *a, **k)
        (Path(path) / "model.safetensors").write_bytes(b"half")  # a torn write, then the process dies
        raise KeyboardInterrupt("killed mid-save")

    monkeypatch.setattr(run.acc, "save_state", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        run.save()
    monkeypatch.undo()
    assert (tmp_path / "state.tmp").exists() and json.loads((tmp_path / "run.json").read_text())["step"] == 2

    model2, opt2, ema2, run2 = _tiny_run(accelerator, tmp_path, resume=True)
    assert run2.state.step == 2 and int(ema2.num_updates) == 2
    torch.testing.assert_close(model2.weight.detach(), saved_weight)
    assert [r["step"] for r in _log(tmp_path)] == [1, 2]  # the unsaved step 3 is dropped from the curve
    _train_step(model2, opt2, ema2, run2)
    run2.save()  # the torn state.tmp is cleared and replaced
    assert json.loads((tmp_path / "state" / "run.json").read_text())["step"] == 3


def test_crash_between_the_commit_renames_resumes_from_the_previous_state(tmp_path, accelerator, monkeypatch):
    model, opt, ema, run = _tiny_run(accelerator, tmp_path, resume=False)
    _train_step(model, opt, ema, run)
    run.save()
    saved_weight = model.weight.detach().clone()
    _train_step(model, opt, ema, run)

    real_rename = Path.rename

    def rename(self, target):
        if self.name == "state.tmp":
            raise KeyboardInterrupt("killed between renames")  # state -> state.old happened, state.tmp -> state not
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(KeyboardInterrupt):
        run.save()
    monkeypatch.undo()
    assert not (tmp_path / "state").exists() and (tmp_path / "state.old").is_dir()

    model2, _, ema2, run2 = _tiny_run(accelerator, tmp_path, resume=True)
    assert run2.state.step == 1 and int(ema2.num_updates) == 1
    torch.testing.assert_close(model2.weight.detach(), saved_weight)


def test_resume_reads_runs_saved_by_the_previous_layout(tmp_path, accelerator):
    """Runs saved before run.json moved into the state folder (e.g. a run in progress) still resume."""
    model, opt, ema, run = _tiny_run(accelerator, tmp_path, resume=False)
    _train_step(model, opt, ema, run)
    run.save()
    (tmp_path / "state" / "run.json").unlink()
    _, _, _, run2 = _tiny_run(accelerator, tmp_path, resume=True)
    assert run2.state.step == 1


# -- NeRF-LEBM: a crash right after a save, then --resume, repeats the uninterrupted run ----------


NERF_ARGS = ["--config", "train/configs/nerf_lebm_shapes.yaml", "--cpu", "--set", "train.steps=5", "--set", "train.save_every=2",
             "--set", "train.log_every=3", "--set", "train.warmup=1", "--set", "train.max_minutes=0", "--set", "train.ema_decay=0.9",
             *[a for kv in ("train_objects=5", "val_objects=2", "views=2", "batch_size=2", "rays=8") for a in ("--set", f"train.{kv}")],
             *[a for kv in ("shape_dim=8", "appearance_dim=6", "plane_res=8", "plane_channels=4", "decoder_width=8", "hidden=16",
                            "appearance_features=8", "encoder_width=8", "ebm_width=16", "samples=8", "train_samples=4", "prior_steps=3")
               for a in ("--set", f"model.{kv}")]]


def test_nerf_lebm_crash_after_a_save_then_resume_matches_an_uninterrupted_run(tmp_path, accelerator, monkeypatch):
    """In-process (a fresh Accelerator per session): the resumed run continues the step counter, data order, noise,
    lr schedule, optimiser, EMA and the log_every averaging window (3 steps, saved mid-window at step 2)."""
    from accelerate.state import AcceleratorState

    from train import nerf_lebm
    from train.common import Run

    monkeypatch.setenv("STUDIO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("STUDIO_THREADS", "1")
    ref, run = tmp_path / "ref", tmp_path / "run"

    def session(run_dir: Path, *extra: str) -> None:
        AcceleratorState._reset_state(True)  # a new process start (the accelerator fixture resets it after the test)
        nerf_lebm.main([*NERF_ARGS, "--run-dir", str(run_dir), "--export-dir", str(run_dir / "export"), *extra])

    session(ref)
    real_save = Run.save

    def save_then_die(self):
        real_save(self)
        if self.state.step == 2:
            raise KeyboardInterrupt("killed after the step-2 save")

    monkeypatch.setattr(Run, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        session(run)
    monkeypatch.setattr(Run, "save", real_save)
    assert json.loads((run / "run.json").read_text())["step"] == 2 and not (run / "export").exists()
    session(run, "--resume")

    log, ref_log = _log(run), _log(ref)
    assert [r["step"] for r in log] == list(range(1, 6)) == [r["step"] for r in ref_log]
    for key in ("loss", "recon", "kl", "e_pos", "e_neg"):
        np.testing.assert_allclose([r[key] for r in log], [r[key] for r in ref_log], rtol=1e-5, atol=1e-6, err_msg=key)
    state, ref_state = (json.loads((d / "run.json").read_text()) for d in (run, ref))
    history, ref_history = state["extra"]["history"], ref_state["extra"]["history"]
    assert [h["step"] for h in history] == [h["step"] for h in ref_history] == [3]
    for h, r in zip(history, ref_history):
        # "minutes" is wall time rounded to 0.01 min: the resumed run's clock (saved elapsed time plus its own
        # restart and step 3) lands within a second of the uninterrupted one's, and on a loaded machine (a
        # full-module run) often across a rounding boundary. Comparing it exactly made this test flaky; the loss
        # averages themselves came out bitwise equal. They are rounded to 5 decimals, so they are compared with a
        # tolerance of that size; a skipped or repeated step moves them far more.
        assert h.keys() == r.keys()
        for key in h.keys() - {"step", "minutes"}:
            assert h[key] == pytest.approx(r[key], rel=1e-4, abs=2e-5), key
            window = [rec[key] for rec in ref_log[:3]]
            assert h[key] == pytest.approx(sum(window) / 3, rel=1e-4, abs=2e-5), key  # steps 1, 2, 3, each once
            if abs(window[2] - window[1]) > 1e-3:  # repeating step 2 instead of 3 would show
                assert h[key] != pytest.approx((window[0] + 2 * window[1]) / 3, rel=1e-4, abs=2e-5), key
    opt = torch.load(run / "state" / "optimizer.bin", weights_only=True)
    assert all(int(st["step"]) == 5 for st in opt["state"].values())
    weights, ref_weights = (load_file(str(d / "state" / "model.safetensors")) for d in (run, ref))
    for k, v in weights.items():
        torch.testing.assert_close(v, ref_weights[k], rtol=1e-5, atol=1e-6, msg=k)
    exported, ref_exported = studio.load(run / "export"), studio.load(ref / "export")
    for (k, v), (_, w) in zip(exported.state_dict().items(), ref_exported.state_dict().items()):
        torch.testing.assert_close(v, w, rtol=1e-5, atol=1e-6, msg=k)
    assert exported.checkpoint.extra["training"]["steps"] == 5
