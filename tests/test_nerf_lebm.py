"""NeRF-LEBM on tiny seeded models: the shape/appearance split, priors, rendering, inference, training."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import studio
from studio.errors import StudioError
from studio.nerf_lebm import ELEVATION_RANGE, NeRFLEBM, NeRFLEBMConfig

REPO = Path(__file__).resolve().parents[1]
TINY = dict(shape_dim=8, appearance_dim=6, plane_res=8, plane_channels=4, decoder_width=8, hidden=16,
            appearance_features=8, encoder_width=8, ebm_width=16, samples=8, train_samples=6, prior_steps=5)


def tiny(prior: str = "ebm", seed: int = 0) -> NeRFLEBM:
    torch.manual_seed(seed)
    return NeRFLEBM(NeRFLEBMConfig(prior=prior, **TINY)).eval()


def test_shape_only_resampling_leaves_appearance_latents_untouched():
    m = tiny()
    z_s, z_a = m.sample_latents(3, seeds="0-2")
    new_s, same_a = m.resample(z_s, z_a, "shape", seeds=10)
    assert torch.equal(same_a, z_a) and not torch.allclose(new_s, z_s)
    same_s, new_a = m.resample(z_s, z_a, "appearance", seeds=10)
    assert torch.equal(same_s, z_s) and not torch.allclose(new_a, z_a)
    with pytest.raises(StudioError, match="part must be"):
        m.resample(z_s, z_a, "colour", seeds=0)


def test_appearance_changes_colour_only_never_density():
    m = tiny()
    z_s, z_a = m.sample_latents(2, prior="gaussian", seeds="0-1")
    points = torch.rand(1, 50, 3) * 2 - 1
    s1, c1 = m.query(m.field_state(z_s[:1], z_a[:1]), points)
    s2, c2 = m.query(m.field_state(z_s[:1], z_a[1:]), points)
    s3, _ = m.query(m.field_state(z_s[1:], z_a[:1]), points)
    assert torch.equal(s1, s2) and not torch.allclose(c1, c2) and not torch.allclose(s1, s3)


def test_prior_samples_are_per_seed_and_go_through_langevin():
    m = tiny()
    z_s, z_a = m.sample_latents(seeds="3-5")
    one_s, one_a = m.sample_latents(seeds="4")
    assert torch.allclose(z_s[1:2], one_s, atol=1e-6) and torch.allclose(z_a[1:2], one_a, atol=1e-6)
    g_s, _ = m.sample_latents(seeds="3-5", prior="gaussian")
    assert not torch.allclose(g_s, z_s)  # the EBM chain moved the Gaussian start
    z0 = torch.randn(4, 8)
    _, trace = m.prior_chain(z0, m.energy_shape, steps=3, record_every=1)
    assert trace.num_steps == 3
    with pytest.raises(StudioError, match="Gaussian prior"):
        tiny("gaussian").sample_latents(1, prior="ebm")
    with pytest.raises(StudioError, match="seeds"):
        m.sample_latents(2, seeds="0-4")


def test_prior_trajectory_is_the_sampling_chain_with_rendered_frames():
    m = tiny()
    steps = 20  # 21 states: more than the 16 rendered by default, so they are subsampled
    z_s, z_a, trace = m.prior_trajectory("3-4", steps=steps, resolution=8)
    same_s, same_a = m.sample_latents(seeds="3-4", steps=steps)
    assert torch.equal(z_s, same_s) and torch.equal(z_a, same_a)  # recording does not change the chain
    assert trace.num_steps == steps and len(trace.frames) == 16
    assert trace.frame_steps[0] == 0 and trace.frame_steps[-1] == steps and trace.frame_steps == sorted(set(trace.frame_steps))
    assert all(f.shape == (2, 3, 8, 8) and f.min() >= -1 and f.max() <= 1 for f in trace.frames)
    # The last frame is the sampled object, rendered from the fixed pose (mapped from [0, 1] to [-1, 1]).
    view = m.render(z_s, z_a, 30.0, 25.0, 8)["rgb"]
    torch.testing.assert_close(trace.frames[-1], view * 2 - 1)
    # Energy and |grad| are those of the joint chain on (z_s, z_a): sums of the two parts' chains.
    # (Each part's start and noise come from one generator per seed, in its own stream.)
    gs, ga = ([torch.Generator().manual_seed(s ^ stream) for s in (3, 4)] for stream in (0, 0x5A5A5A5A))
    z0s = torch.stack([torch.randn(8, generator=g) for g in gs])
    z0a = torch.stack([torch.randn(6, generator=g) for g in ga])
    _, ts = m.prior_chain(z0s, m.energy_shape, steps, gs)
    _, ta = m.prior_chain(z0a, m.energy_appearance, steps, ga)
    torch.testing.assert_close(trace.energy_matrix(), ts.energy_matrix() + ta.energy_matrix())
    torch.testing.assert_close(trace.grad_norm_matrix(), (ts.grad_norm_matrix() ** 2 + ta.grad_norm_matrix() ** 2).sqrt())
    assert trace.grad_sum.shape == (2, 8 + 6)
    # Few steps: every state is rendered; record_every thins the candidates (the last state is always kept).
    _, _, short = m.prior_trajectory(0, steps=5, resolution=8)
    assert short.frame_steps == [0, 1, 2, 3, 4, 5]
    _, _, sparse = m.prior_trajectory(0, steps=5, record_every=2, resolution=8)
    assert sparse.frame_steps == [0, 2, 4, 5]
    _, _, capped = m.prior_trajectory(0, steps=5, record_every=2, max_frames=3, resolution=8)
    assert capped.frame_steps == [0, 4, 5] and len(capped.energies) == 5  # frames are capped, the chart is not
    with pytest.raises(StudioError, match="no Langevin chain"):
        tiny("gaussian").prior_trajectory(0)
    with pytest.raises(StudioError, match="no Langevin chain"):
        m.prior_trajectory(0, prior="gaussian")
    for kwargs, message in [({"max_frames": 1}, "max_frames"), ({"record_every": 0}, "record_every"),
                            ({"resolution": 4}, "resolution"), ({"steps": -1}, "steps")]:
        with pytest.raises(StudioError, match=message):
            m.prior_trajectory(0, **kwargs)
    with pytest.raises(StudioError, match="more than 16 seeds"):
        m.prior_trajectory("0-16")


def test_render_outputs_notes_and_bad_input():
    m = tiny()
    z_s, z_a = m.sample_latents(2, prior="gaussian", seeds=0)
    out = m.render(z_s, z_a, azimuth=[0, 90], elevation=20, resolution=16)
    assert out["rgb"].shape == (2, 3, 16, 16) and out["depth"].shape == (2, 16, 16) and out["notes"] == []
    assert out["rgb"].min() >= 0 and out["rgb"].max() <= 1 and (out["opacity"] <= 1 + 1e-5).all()
    low = m.render(z_s, z_a, elevation=-30, resolution=8)
    assert "clamped to 10" in low["notes"][0]
    assert torch.allclose(low["rgb"], m.render(z_s, z_a, elevation=ELEVATION_RANGE[0], resolution=8)["rgb"])
    with pytest.raises(StudioError, match="above the cap"):
        m.render(z_s, z_a, resolution=1024)
    frames = m.orbit(z_s[:1], z_a[:1], frames=3, resolution=8)
    assert frames.shape == (3, 1, 3, 8, 8)


def test_infer_accepts_any_image_and_refinement_lowers_the_posterior_energy():
    m = tiny()
    rgba = torch.randint(0, 256, (1, 4, 40, 40), dtype=torch.uint8)
    z_s, z_a = m.infer(rgba, azimuth=30, elevation=20)
    assert z_s.shape == (1, 8) and z_a.shape == (1, 6)
    grey = torch.rand(2, 1, 100, 100)
    r_s, r_a, trace = m.infer(grey, azimuth=[0, 45], elevation=[15, 99], refine_steps=4, step_size=1e-4, return_trace=True)
    energies = trace.energy_matrix()[:, 0]
    assert trace.num_steps == 4 and energies[-1] < energies[0]
    with pytest.raises(StudioError, match="images must be"):
        m.infer(torch.rand(2, 5, 8, 8))


def test_render_time_figure_at_a_small_count():
    """The evaluator's seconds_per_view_64 on a tiny model with 2 renders (the <= 0.5 s bar on the shipped
    checkpoint is the slow test below, since a frame's cost depends on how much of the field is empty)."""
    from train.eval_nerf import render_seconds

    seconds = render_seconds(tiny(), repeats=2)
    assert isinstance(seconds, float) and 0 < seconds < 5


def _launch(args: list[str], env_extra: dict) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_extra, "PYTHONPATH": str(REPO), "STUDIO_THREADS": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "train/nerf_lebm.py", *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_training_smoke_run_through_accelerate_resume_and_gaussian_baseline(tmp_path):
    env = {"STUDIO_DATA_DIR": str(tmp_path / "data")}
    sets = {"train.train_objects": 8, "train.val_objects": 2, "train.views": 3, "train.batch_size": 3, "train.rays": 16,
            "train.save_every": 2, "train.log_every": 1, "train.warmup": 1, **{f"model.{k}": v for k, v in TINY.items()}}
    base = ["--config", "train/configs/nerf_lebm_shapes.yaml", *[a for k, v in sets.items() for a in ("--set", f"{k}={v}")],
            "--set", "train.max_minutes=0"]
    run, out = tmp_path / "run", tmp_path / "nerf-lebm"
    first = _launch([*base, "--set", "train.steps=2", "--run-dir", str(run), "--export-dir", str(out)], env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert json.loads((run / "run.json").read_text())["step"] == 2
    second = _launch([*base, "--set", "train.steps=3", "--run-dir", str(run), "--export-dir", str(out), "--resume"], env)
    assert second.returncode == 0, second.stderr[-3000:]
    model = studio.load(out)
    assert model.checkpoint.kind == "nerf_lebm" and model.checkpoint.extra["training"]["steps"] == 3
    assert model.config.prior == "ebm" and "e_neg" in model.checkpoint.extra["train_history"][-1]
    z_s, z_a = model.sample_latents(1, seeds=0)
    assert model.render(z_s, z_a, resolution=8)["rgb"].shape == (1, 3, 8, 8)
    vae_out = tmp_path / "nerf-vae"
    vae = _launch([*base, "--set", "train.steps=1", "--prior", "gaussian", "--run-dir", str(tmp_path / "run-vae"),
                   "--export-dir", str(vae_out)], env)
    assert vae.returncode == 0, vae.stderr[-3000:]
    assert studio.load(vae_out).config.prior == "gaussian" and "NeRF-VAE" in (vae_out / "README.md").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["nerf-lebm-shapes", "nerf-vae-shapes"])
def test_shipped_checkpoints_load_by_name_and_render(name):
    from studio.registry import local_names

    if name not in local_names():
        pytest.skip(f"{name} is not in checkpoints/")
    m = studio.load(name)
    z_s, z_a = m.sample_latents(2, prior="gaussian" if m.config.prior == "gaussian" else "ebm", seeds="0-1")
    out = m.render(z_s, z_a, azimuth=30, elevation=20, resolution=64)
    assert out["rgb"].shape == (2, 3, 64, 64) and (out["opacity"] > 0.5).any()
    times = []
    for k in range(3):
        start = time.perf_counter()
        m.render(z_s[:1], z_a[:1], azimuth=30 + 40 * k, elevation=20, resolution=64)
        times.append(time.perf_counter() - start)
    assert min(times) <= 0.5, times
