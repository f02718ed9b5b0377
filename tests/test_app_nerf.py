"""The "3D (NeRF-LEBM)" tab end to end through gradio_client, on tiny random checkpoints built by the test."""
import shutil

import numpy as np
import pytest
import torch
from gradio_client import handle_file
from PIL import Image

from studio.hub import ModelCard, checkpoints_dir, save_checkpoint
from studio.nerf_lebm import NeRFLEBM, NeRFLEBMConfig
from studio.ui import nerf_tab

from conftest import serve_app_client

TINY = dict(shape_dim=8, appearance_dim=6, plane_res=8, plane_channels=4, decoder_width=8, hidden=16,
            appearance_features=8, encoder_width=8, ebm_width=16, samples=8, train_samples=6, prior_steps=3,
            density_bias=1.0, refine_steps=2, refine_step_size=1e-4)


def save_tiny_nerfs(root) -> None:
    for name, prior, seed in (("nerf-lebm-shapes", "ebm", 0), ("nerf-vae-shapes", "gaussian", 1)):
        torch.manual_seed(seed)
        model = NeRFLEBM(NeRFLEBMConfig(prior=prior, **TINY))
        save_checkpoint(root / name, "nerf_lebm", model.config, model.state_dict(), ModelCard(summary=f"tiny {name}"))


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpts")
    shutil.copytree(checkpoints_dir() / "toy-ring", root / "toy-ring")
    save_tiny_nerfs(root)
    yield from serve_app_client(root)


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def test_tab_appears_only_with_its_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_CHECKPOINTS", str(tmp_path))
    assert not nerf_tab.available()
    save_tiny_nerfs(tmp_path)
    assert nerf_tab.available() and nerf_tab.model_names() == ["nerf-lebm-shapes", "nerf-vae-shapes"]


def test_sample_resample_and_render(client):
    image, note = client.predict("nerf-lebm-shapes", "EBM prior", 3, 30, 20, "RGB", 64, api_name="/nerf_sample")
    assert Image.open(image).size == (256, 256) and "Shape seed 3, appearance seed 3" in note
    before = _pixels(image)
    image2, note2 = client.predict("nerf-lebm-shapes", "EBM prior", 30, 20, "RGB", 64, api_name="/nerf_resample_shape")
    assert "New shape (seed 4); the appearance latent is unchanged" in note2 and "appearance seed 3" in note2
    image3, note3 = client.predict("nerf-lebm-shapes", "EBM prior", 30, 20, "RGB", 64, api_name="/nerf_resample_appearance")
    assert "shape seed 4, appearance seed 4" in note3.lower()
    assert not np.array_equal(before, _pixels(image3))
    depth, note4 = client.predict("nerf-lebm-shapes", 0, 40, "Depth", 32, api_name="/nerf_render")
    assert "elevation 40, 32 px" in note4 and Image.open(depth).size == (256, 256)
    # The slider itself refuses poses out of range, naming the field and its range.
    with pytest.raises(Exception, match=r"'Elevation \(degrees, training range 10..40\)' must be between 10 and 40; got 50"):
        client.predict("nerf-lebm-shapes", 0, 50, "Depth", 32, api_name="/nerf_render")


def test_orbit_grid_and_bad_input(client):
    client.predict("nerf-vae-shapes", "Gaussian prior", 0, 0, 20, "RGB", 32, api_name="/nerf_sample")
    gif, note = client.predict("nerf-vae-shapes", 20, 4, "RGB", 32, api_name="/nerf_orbit")
    assert Image.open(gif).n_frames == 4 and "4 frames" in note
    grid, gnote = client.predict("nerf-lebm-shapes", "EBM prior", 5, 2, 30, 20, api_name="/nerf_grid")
    assert Image.open(grid).size[0] > 2 * 64 and "shape seeds 5..6" in gnote
    with pytest.raises(Exception, match="Gaussian prior"):
        client.predict("nerf-vae-shapes", "EBM prior", 0, 0, 20, "RGB", 32, api_name="/nerf_sample")
    with pytest.raises(Exception, match="not in the list of choices"):  # gradio refuses it before the model
        client.predict("nerf-lebm-shapes", "EBM prior", 0, 0, 20, "RGB", 512, api_name="/nerf_sample")


def test_infer_from_an_upload_of_any_size_and_mode(client, tmp_path):
    path = tmp_path / "odd.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (90, 120, 4), dtype=np.uint8), "RGBA").save(path)
    shown, _, note = client.predict(
        "nerf-lebm-shapes", None, handle_file(str(path)), 45, 25, 2, 10, 20, "RGB", 64, api_name="/nerf_infer")
    assert Image.open(shown).size == (256, 256) and "uploaded image" in note and "2 refinement steps" in note
    example = nerf_tab.example_names()[1]
    _, _, note2 = client.predict("nerf-lebm-shapes", example, None, 45, 99, 0, 10, 20, "RGB", 64, api_name="/nerf_infer")
    assert example in note2 and "clamped to 40" in note2
    with pytest.raises(Exception, match="Upload"):
        client.predict("nerf-lebm-shapes", None, None, 0, 20, 0, 10, 20, "RGB", 64, api_name="/nerf_infer")


def test_example_views_are_held_out_shapes3d_renders():
    arr, az, el = nerf_tab.example_view(nerf_tab.example_names()[0])
    assert arr.shape == (64, 64, 3) and -180 <= az < 180 and 10 <= el <= 40
    assert (arr < 250).any()  # something is drawn on the white background


def test_resolution_above_the_cap_is_refused_with_a_message():
    with pytest.raises(Exception, match="not offered"):
        nerf_tab.render_view("nerf-lebm-shapes", {"z_s": [[0.0] * 8], "z_a": [[0.0] * 6]}, 0, 20, "RGB", 512)
