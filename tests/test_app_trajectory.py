"""The Trajectory tab for kinds found through their checkpoints' config.json: NeRF-LEBM prior chains (the
latents rendered at each recorded frame), CoopFlow's Langevin refinement of a flow proposal and EGC's DDIM
steps, end to end through gradio_client on tiny random checkpoints. A Gaussian-prior NeRF (no chain), a toy
and an evaluator must not be offered; a checkpoint of a known kind under an unregistered name must be."""
import base64
import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import plotly.io
import pytest
import torch
from PIL import Image

from studio.hub import ModelCard, checkpoints_dir, save_checkpoint
from studio.nerf_lebm import TRAJECTORY_FRAMES as NERF_FRAMES, TRAJECTORY_POSE as NERF_POSE, TRAJECTORY_RES as NERF_RES
from studio.nerf_lebm import NeRFLEBM, NeRFLEBMConfig
from studio.registry import REGISTRY
from studio.ui import trajectory_tab as tt
from studio.viz import to_uint8

from conftest import serve_app_client
from test_app_coopflow import TINY_DEFAULTS as TINY_COOPFLOW_DEFAULTS
from test_app_coopflow import save_tiny_coopflow
from test_app_egc import save_tiny_egc
from test_app_nerf import TINY as TINY_NERF

NERF_STEPS = 20  # 21 chain states: more than the tab renders (NERF_FRAMES), so the frames are subsampled
UNREGISTERED = "coopflow-small"


def save_tiny_nerfs(root: Path) -> None:
    for name, prior in (("nerf-lebm-shapes", "ebm"), ("nerf-vae-shapes", "gaussian")):
        torch.manual_seed(0)
        model = NeRFLEBM(NeRFLEBMConfig(prior=prior, **{**TINY_NERF, "prior_steps": NERF_STEPS}))
        save_checkpoint(root / name, model.kind, model.config, model.state_dict(), ModelCard(summary=f"tiny {name}"))


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpts")
    for name in ("toy-ring", "evaluator-fmnist"):
        shutil.copytree(checkpoints_dir() / name, root / name)
    save_tiny_nerfs(root)
    save_tiny_coopflow(root)
    save_tiny_egc(root)
    shutil.copytree(root / "coopflow-fmnist", root / UNREGISTERED)  # known kind, a name the registry has never seen
    yield from serve_app_client(root)


def _zip_frames(path) -> list[np.ndarray]:
    with zipfile.ZipFile(path) as zf:
        return [np.asarray(Image.open(io.BytesIO(zf.read(n))).convert("RGB")) for n in zf.namelist()]


def _plot(chart):
    """The plotly figure of a gr.Plot output as gradio_client returns it (its JSON)."""
    return plotly.io.from_json(chart["plot"])


def _array(value) -> np.ndarray:
    """A plotly array: a list, or (plotly >= 6) {"dtype", "bdata"} with the raw values in base64."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
    return np.asarray(value)


def _mean_energy(chart) -> np.ndarray:
    return _array(next(t for t in _plot(chart).data if t.name == "mean energy").y)


def _marker_x(chart) -> float:
    """Where energy_figure's scrub marker (the one black vertical line) stands."""
    (shape,) = [s for s in _plot(chart).layout.shapes if s.line.color == "black"]
    assert shape.x0 == shape.x1
    return shape.x0


def test_models_are_offered_by_the_kind_in_their_config(client):
    assert UNREGISTERED not in REGISTRY
    assert tt.trajectory_models() == ["coopflow-fmnist", UNREGISTERED, "egc-fmnist", "nerf-lebm-shapes"]
    for name in tt.trajectory_models():
        assert tt._tasks(name)["choices"] == [("generate", "generate")]
    # A Gaussian prior samples z ~ N(0, I) directly (no chain); toys and evaluators have no chain task.
    for name in ("nerf-vae-shapes", "toy-ring", "evaluator-fmnist"):
        with pytest.raises(Exception, match="not in the list of choices"):
            client.predict(name, "generate", 0, api_name="/trajectory")
        with pytest.raises(Exception, match="has no trajectory view"):
            tt.record(name, "generate", 0)
    with pytest.raises(Exception, match="supports generate, not 'inpaint'"):
        client.predict("egc-fmnist", "inpaint", 0, api_name="/trajectory")


def test_nerf_prior_chain_renders_subsampled_frames_and_charts_the_latent_energy(client):
    from studio.ui.common import cached_model

    gif, slider, frame, chart, caption, zipped, note = client.predict("nerf-lebm-shapes", "generate", 5,
                                                                      api_name="/trajectory")
    model = cached_model("nerf-lebm-shapes")
    _, _, trace = model.prior_trajectory("5", max_frames=NERF_FRAMES, resolution=NERF_RES,
                                         azimuth=NERF_POSE[0], elevation=NERF_POSE[1])
    n = NERF_FRAMES
    assert f"{NERF_STEPS} Langevin steps" in note and f"{n} of its {NERF_STEPS + 1} states" in note and "seed 5" in note
    assert Image.open(gif).n_frames == n
    frames = _zip_frames(zipped)
    assert len(frames) == n and frames[0].shape == (NERF_RES, NERF_RES, 3)
    # The last frame is the sampled object (the prior's latents for seed 5) rendered from the tab's pose.
    z_s, z_a = model.sample_latents(seeds="5")
    view = model.render(z_s, z_a, *NERF_POSE, NERF_RES)["rgb"]
    assert np.abs(frames[-1].astype(int) - to_uint8(view * 2 - 1)[0].astype(int)).max() <= 1
    assert not (frames[0] == frames[-1]).all()  # the chain moved the object
    assert caption == f"frame {n - 1}: step {NERF_STEPS}"
    # The chart is the Trace's joint latent energy per step (every step, not only the rendered ones).
    np.testing.assert_allclose(_mean_energy(chart), trace.energy_matrix().mean(1).numpy(), rtol=1e-5)
    assert _marker_x(chart) == NERF_STEPS - 1  # the last step (the marker is clamped to the charted range)
    # Scrubbing shows a rendered frame and moves the marker to the step it shows.
    frame, chart, caption = client.predict(3, api_name="/trajectory_frame")
    step = trace.frame_steps[3]
    assert 0 < step < NERF_STEPS and caption == f"frame 3: step {step}" and _marker_x(chart) == step
    assert (np.asarray(Image.open(frame).convert("RGB"))[:: 192 // NERF_RES, :: 192 // NERF_RES] == frames[3]).all()


@pytest.mark.parametrize("name", ["coopflow-fmnist", UNREGISTERED])
def test_coopflow_refinement_chain(client, name):
    t = TINY_COOPFLOW_DEFAULTS["steps"]  # the chain the checkpoint's sampler defaults ask for
    gif, slider, frame, chart, caption, zipped, note = client.predict(name, "generate", 2, api_name="/trajectory")
    assert "flow's proposal" in note and f"{t} Langevin refinement steps" in note
    frames = _zip_frames(zipped)
    assert len(frames) == t + 1 and Image.open(gif).n_frames == t + 1  # the proposal, then one frame per step
    assert caption == f"frame {t}: step {t}"
    from studio.ui.common import cached_model

    samples = cached_model(name).sample("2")
    assert (frames[0] == to_uint8(samples.flow)[0]).all() and (frames[-1] == to_uint8(samples.refined)[0]).all()
    assert not (frames[0] == frames[-1]).all()


def test_egc_ddim_chain(client):
    gif, slider, frame, chart, caption, zipped, note = client.predict("egc-fmnist", "generate", 1, api_name="/trajectory")
    assert "3 DDIM steps" in note and "seed 1" in note
    frames = _zip_frames(zipped)
    assert len(frames) == 4 and caption == "frame 3: t=0 (step 3)"
    from studio.ui.common import cached_model

    images, trace = cached_model("egc-fmnist").generate(seeds="1", record_every=1)
    assert (frames[-1] == to_uint8(images)[0]).all()
    np.testing.assert_allclose(_mean_energy(chart), trace.energy_matrix().mean(1).numpy(), rtol=1e-5)
