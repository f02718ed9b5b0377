"""The Translate tab end to end through gradio_client, on tiny random LETIT and CF-EBM checkpoints built by the test."""
import shutil
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from gradio_client import handle_file
from PIL import Image

from studio.cfebm import CFEBM, CFEBMConfig
from studio.hub import ModelCard, checkpoints_dir, save_checkpoint
from studio.letit import LETIT, LETITConfig
from studio.ui import common, translate_tab as tt

from conftest import serve_app_client

SAMPLER = {"steps": 4, "step_size": 0.05, "noise": 0.1}
EXAMPLE = "emoji-test-000-0023-fe0f-20e3"


def tiny_letit(directions=("t2g", "g2t")) -> LETIT:
    """16 px images, a 2x8x8 latent; random weights (the tab only needs the public API to run)."""
    torch.manual_seed(0)
    cfg = LETITConfig(image_size=16, ae_widths=[4, 8], ae_blocks=[0, 1], latent_channels=2, ebm_width=4,
                      directions={d: dict(SAMPLER) for d in directions})
    return LETIT(cfg).eval()


def tiny_pixel() -> CFEBM:
    torch.manual_seed(1)
    cfg = CFEBMConfig(channels=3, width=4, base_resolution=8, resolution=16, steps={"16": 3},
                      source_domain="twitter", target_domain="google")
    return CFEBM(cfg).eval()


def save_tiny_translators(root: Path, letit_directions=("t2g", "g2t"), pixel: bool = True) -> None:
    if letit_directions is not None:
        m = tiny_letit(letit_directions)
        save_checkpoint(root / tt.LETIT_NAME, "letit", m.config, m.state_dict(), ModelCard(summary="tiny LETIT"))
    if pixel:
        m = tiny_pixel()
        save_checkpoint(root / tt.CFEBM_NAME, "cfebm", m.config, m.state_dict(), ModelCard(summary="tiny CF-EBM t2g"))


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpts")
    shutil.copytree(checkpoints_dir() / "toy-ring", root / "toy-ring")
    save_tiny_translators(root)
    yield from serve_app_client(root)


def _png(tmp_path, arr, name):
    path = tmp_path / name
    Image.fromarray(arr).save(path)
    return str(path)


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _strip_size(frames: int) -> tuple[int, int]:
    """One row of up to STRIP_COLUMNS tiles, each captioned below (pad 4, caption 14 px)."""
    cols, rows = min(frames, tt.STRIP_COLUMNS), -(-frames // tt.STRIP_COLUMNS)
    return cols * (tt.STRIP_TILE + 4) + 4, rows * (tt.STRIP_TILE + 14 + 4) + 4


def test_letit_held_out_example_both_directions(client):
    for direction, target in ((tt.T2G, "google"), (tt.G2T, "twitter")):
        x, recon, out, truth, strip, chart, shift_map, energy, note = client.predict(
            EXAMPLE, None, direction, tt.LETIT, 4, 0.05, 0.1, 3, api_name="/translate")
        assert all(Image.open(p).size == (128, 128) for p in (x, recon, out, truth, shift_map))
        # steps 0..4: five decoded frames of 64 px (2 px padding) under a 14 px label row
        assert Image.open(strip).size == _strip_size(5)
        assert f"PSNR to the true {target} drawing" in note and "seed 3" in note and "Latent shift" in note
        assert "Autoencoder reconstruction vs input" in note and "Warning" not in note
        assert chart is not None and energy is not None
    # The held-out input of g2t is the Google drawing, whose ground truth is the Twitter one (and vice versa).
    assert np.array_equal(_pixels(x), _pixels(client.predict(EXAMPLE, None, tt.T2G, tt.LETIT, 4, 0.05, 0.1, 3,
                                                            api_name="/translate")[3]))


def test_letit_projection_option_and_the_reencode_check(client):
    """The 9th input projects the latent chain onto the decoder's manifold; the note reports the re-encode check
    of the output beside the input's and the true drawing's (and omitted, the projection takes its default, off)."""
    plain = client.predict(EXAMPLE, None, tt.T2G, tt.LETIT, 4, 0.05, 0.0, 3, api_name="/translate")
    default = client.predict(EXAMPLE, None, tt.T2G, tt.LETIT, 4, 0.05, 0.0, 3, 0, api_name="/translate")
    projected = client.predict(EXAMPLE, None, tt.T2G, tt.LETIT, 4, 0.05, 0.0, 3, 2, api_name="/translate")
    assert np.array_equal(_pixels(plain[2]), _pixels(default[2]))
    assert not np.array_equal(_pixels(plain[2]), _pixels(projected[2]))
    assert "projected onto the decoder's manifold" not in plain[-1]
    assert "projected onto the decoder's manifold (z <- Enc(Dec(z))) every 2 steps and at the end" in projected[-1]
    for note in (plain[-1], projected[-1]):
        assert "Re-encode check" in note and "your twitter input" in note and "the true google drawing" in note
    output_db = lambda note: float(note.split("Re-encode check")[1].split("output **")[1].split(" dB")[0])
    assert output_db(projected[-1]) > output_db(plain[-1])  # a projected output is (nearly) a fixed point
    *_, note = client.predict(EXAMPLE, None, tt.T2G, tt.PIXEL, 2, 1.0, 0.0, 0, 3, api_name="/translate")
    assert "has no latent to project, so 'Project every' (3) was not used" in note and "Re-encode" not in note
    with pytest.raises(Exception, match=r"'Project every \(steps\)' must be between 0 and 200; got 201"):
        client.predict(EXAMPLE, None, tt.T2G, tt.LETIT, 4, 0.05, 0.0, 0, 201, api_name="/translate")
    for bad in (-1, 2.5, "two"):
        with pytest.raises(gr.Error, match=r"Project every \(steps\) must be a whole number between 0 and 200"):
            tt.translate(EXAMPLE, None, tt.T2G, tt.LETIT, 4, 0.05, 0.0, 0, bad)


def test_switching_method_keeps_the_users_projection_for_letit(partial):
    save_tiny_translators(partial)
    touched = {"steps": 80, "project_every": 5}
    current = {"steps": 80, "step_size": 0.05, "noise": 0.1, "project_every": 5}
    values, notes = tt.settings_for(tt.PIXEL, tt.T2G, current, touched)
    assert values["steps"] == 80 and values["project_every"] == 0  # CF-EBM has no latent: off, and the note says so
    assert any(n.startswith("Project every: 5 -> 0") and "kept for when it applies again" in n for n in notes)
    back, _ = tt.settings_for(tt.LETIT, tt.T2G, values, touched)
    assert back["steps"] == 80 and back["project_every"] == 5 and back["step_size"] == SAMPLER["step_size"]
    untouched, notes = tt.settings_for(tt.LETIT, tt.G2T, {**current, "project_every": 0}, {})
    assert untouched["project_every"] == 0 and not any("Project" in n for n in notes)


def test_seeded_runs_repeat_and_differ(client):
    a = client.predict(EXAMPLE, None, tt.T2G, tt.LETIT, 3, 0.05, 0.5, 7, api_name="/translate")
    b = client.predict(EXAMPLE, None, tt.T2G, tt.LETIT, 3, 0.05, 0.5, 7, api_name="/translate")
    c = client.predict(EXAMPLE, None, tt.T2G, tt.LETIT, 3, 0.05, 0.5, 8, api_name="/translate")
    assert np.array_equal(_pixels(a[2]), _pixels(b[2]))
    assert not np.array_equal(_pixels(a[2]), _pixels(c[2]))


def test_upload_of_any_size_and_mode(client, tmp_path):
    rgba = np.zeros((50, 40, 4), np.uint8)
    rgba[10:40, 10:30] = (200, 100, 50, 255)  # the rest is transparent
    x, recon, out, truth, *_, note = client.predict(EXAMPLE, handle_file(_png(tmp_path, rgba, "u.png")), tt.G2T, tt.LETIT,
                                                    2, 0.05, 0.0, 0, api_name="/translate")
    assert truth is None and recon is not None and out is not None
    assert "your upload" in note and "composited on white" in note and "centre-cropped" in note
    assert "resized from 40x40 to 16x16" in note and "no ground truth" in note
    assert tuple(_pixels(x)[0, 0]) == (255, 255, 255)  # transparent corner -> white
    grey = _png(tmp_path, np.full((20, 20), 90, np.uint8), "grey.png")
    *_, note = client.predict(EXAMPLE, handle_file(grey), tt.T2G, tt.LETIT, 2, 0.05, 0.0, 0, api_name="/translate")
    assert "greyscale image was converted to RGB" in note


def test_cfebm_pixel_baseline(client):
    x, recon, out, truth, strip, chart, shift_map, energy, note = client.predict(
        EXAMPLE, None, tt.T2G, tt.PIXEL, 5, 0.05, 0.0, 0, api_name="/translate")
    assert recon is None and Image.open(out).size == (128, 128) and truth is not None
    assert Image.open(strip).size == _strip_size(6)  # every step recorded, steps 0..5 shown
    assert "Pixel shift" in note and "step size is fixed at its trained value 1" in note
    assert "Warning: 5 steps exceed the 3" in note


@pytest.mark.parametrize("args, message", [
    ((EXAMPLE, None, "sideways", tt.LETIT, 4, 0.05, 0.1, 0), "not in the list of choices"),
    ((EXAMPLE, None, tt.T2G, "CycleGAN", 4, 0.05, 0.1, 0), "not in the list of choices"),
    ((EXAMPLE, None, tt.G2T, tt.PIXEL, 4, 0.05, 0.1, 0), "trained for twitter->google only"),
    ((EXAMPLE, None, tt.T2G, tt.LETIT, 0, 0.05, 0.1, 0), "'Langevin steps' must be between 1 and 200; got 0"),
    ((EXAMPLE, None, tt.T2G, tt.LETIT, 201, 0.05, 0.1, 0), "'Langevin steps' must be between 1 and 200; got 201"),
    ((EXAMPLE, None, tt.T2G, tt.LETIT, 2.5, 0.05, 0.1, 0), "whole number"),
    ((None, None, tt.T2G, tt.LETIT, 4, 0.05, 0.1, 0), "Pick a held-out example or upload an image"),
    (("emoji-test-999-nope", None, tt.T2G, tt.LETIT, 4, 0.05, 0.1, 0), "not in the list of choices"),
    ((EXAMPLE, None, tt.T2G, tt.LETIT, 4, 0.05, 0.1, -1), r"Seed must be a whole number between 0 and 2\*\*63 - 1; got -1"),
])
def test_bad_input(client, args, message):
    with pytest.raises(Exception, match=message):
        client.predict(*args, api_name="/translate")


def test_unreadable_upload_fails_and_the_app_keeps_working(client, tmp_path):
    # Gradio's Image component rejects an undecodable file before the tab runs (its generic error).
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(Exception):
        client.predict(EXAMPLE, handle_file(str(bad)), tt.T2G, tt.LETIT, 2, 0.05, 0.1, 0, api_name="/translate")
    assert client.predict(EXAMPLE, None, tt.T2G, tt.LETIT, 2, 0.05, 0.1, 0, api_name="/translate")[2] is not None


@pytest.fixture
def partial(tmp_path, monkeypatch):
    """Point the tab at a checkpoints folder the test fills (no app served)."""
    monkeypatch.setenv("STUDIO_CHECKPOINTS", str(tmp_path))
    common.cached_model.cache_clear()
    yield tmp_path
    common.cached_model.cache_clear()


def test_only_trained_methods_and_directions_are_offered(partial):
    assert not tt.available() and tt.offered() == {}
    save_tiny_translators(partial, letit_directions=(), pixel=False)  # an autoencoder without EBMs
    assert not tt.available()
    save_tiny_translators(partial, letit_directions=("t2g",), pixel=False)
    assert tt.offered() == {tt.LETIT: [tt.T2G]} and tt.directions() == [tt.T2G]
    with pytest.raises(gr.Error, match="g2t latent EBM of letit-emoji has not been trained yet"):
        tt.translate(EXAMPLE, None, tt.G2T, tt.LETIT, 4, 0.05, 0.1, 0)
    with pytest.raises(gr.Error, match="CF-EBM pixel is not available"):
        tt.translate(EXAMPLE, None, tt.T2G, tt.PIXEL, 4, 0.05, 0.1, 0)
    with pytest.raises(gr.Error, match="Unknown direction 'sideways'"):
        tt.translate(EXAMPLE, None, "sideways", tt.LETIT, 4, 0.05, 0.1, 0)
    shutil.rmtree(partial / tt.LETIT_NAME)
    save_tiny_translators(partial, letit_directions=None, pixel=True)
    assert tt.offered() == {tt.PIXEL: [tt.T2G]} and tt.methods_for(tt.G2T) == []
    assert tt.sampler_defaults(tt.PIXEL, tt.T2G) == {"steps": 3, "step_size": 1.0, "noise": 0.0, "project_every": 0}


def test_examples_are_the_shipped_pairs():
    names = tt.example_names()
    assert len(names) == 20 and EXAMPLE in names
    assert all(tt.example_path(n, s).is_file() for n in names for s in ("twitter", "google"))
