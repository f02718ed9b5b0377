"""Faults a demanding user met (issue 26), checked through gradio_client on tiny random checkpoints:
readable energy charts, one wording per check, notes that say only what happened, and an upload that wins
over a stale example index. The browser-only behaviours (linked controls, quiet passive events, progress,
layout) are in test_browser_journeys.py, on the same checkpoints."""
import shutil
from pathlib import Path

import numpy as np
import plotly.io
import pytest
import torch
from gradio_client import handle_file
from PIL import Image

from studio.cdrl import CDRL, CDRLConfig
from studio.hub import ModelCard, checkpoints_dir, save_checkpoint

from conftest import serve_app_client
from test_app_cfebm import save_tiny_cfebms
from test_app_coopflow import save_tiny_coopflow
from test_app_nerf import save_tiny_nerfs
from test_app_translate import save_tiny_translators

SEED_WORDING = r"must be a whole number between 0 and 2\*\*63 - 1; got "
EXAMPLES = Path(__file__).resolve().parents[1] / "assets" / "examples"


def save_tiny_everything(root: Path) -> None:
    """toy-ring plus tiny CDRL, CF-EBM (and its ablation), NeRF-LEBM / NeRF-VAE, LETIT / pixel translators, CoopFlow."""
    shutil.copytree(checkpoints_dir() / "toy-ring", root / "toy-ring")
    torch.manual_seed(0)
    cdrl = CDRL(CDRLConfig(ebm_width=4, init_width=4, temb_dim=16, langevin_steps=2))
    save_checkpoint(root / "cdrl-fmnist", "cdrl", cdrl.config, cdrl.state_dict(), ModelCard(summary="tiny cdrl"))
    save_tiny_cfebms(root)
    save_tiny_nerfs(root)
    save_tiny_translators(root)
    save_tiny_coopflow(root)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpts")
    save_tiny_everything(root)
    yield from serve_app_client(root)


def _png(tmp_path, arr, name) -> str:
    path = tmp_path / name
    Image.fromarray(arr).save(path)
    return str(path)


def test_cdrl_energy_chart_has_one_panel_per_level(client):
    """Item 5: level 0's energies (~1e6 on the real model) flattened every other level on one shared axis."""
    *_, energy, summary = client.predict("Trouser", 1.0, 2, 0, 2, True, True, False, False, api_name="/cdrl_generate")
    fig = plotly.io.from_json(energy["plot"])
    assert "one panel per level, each on its own energy scale" in fig.layout.title.text
    assert [a.text for a in fig.layout.annotations] == [f"level {t}" for t in range(5, -1, -1)]
    means = [t for t in fig.data if t.name == "mean energy"]
    assert len(means) == 6 and len({m.yaxis for m in means}) == 6  # each level on its own axis


def test_saliency_and_trajectory_charts_split_levels_too(client):
    """The same chart in the Saliency and Trajectory tabs (CDRL generation runs through every level)."""
    *_, chart, _ = client.predict("cdrl-fmnist", "generate", 0, None, "centre square", 0, 0.5, api_name="/saliency")
    chart = chart.get("value", chart)  # the tab sends a visibility update with the figure
    assert "one panel per level" in plotly.io.from_json(chart["plot"]).layout.title.text
    _, _, _, chart, _, _, _ = client.predict("cdrl-fmnist", "generate", 0, api_name="/trajectory")  # state is not sent
    assert "one panel per level" in plotly.io.from_json(chart["plot"]).layout.title.text


@pytest.mark.parametrize("api, args, seed_at, field", [
    ("/cdrl_generate", ("Trouser", 1.0, 2, 0, 2, True, True, False, False), 3, "First seed"),
    ("/cfebm_generate", ("cfebm-fmnist", "single-scale", 2, 0.02, 0, 1, True), 4, "First seed"),
    ("/coopflow_sample", (2, 0.04, 0, 2, 0.0), 2, "First seed"),
    ("/playground", ("Ring", 0.02, 0.2, 10, 4, 0), 5, "First seed"),
    ("/translate", ("emoji-test-000-0023-fe0f-20e3", None, "twitter->google", "LETIT", 2, 0.05, 0.0, 0), 7, "Seed"),
    ("/saliency", ("cdrl-fmnist", "generate", 0, None, "centre square", 0, 0.5), 5, "Seed"),
    ("/trajectory", ("cdrl-fmnist", "generate", 0), 2, "Seed"),
    ("/nerf_sample", ("nerf-lebm-shapes", "EBM prior", 0, 30, 20, "RGB", 32), 2, "Seed"),
])
@pytest.mark.parametrize("bad, shown", [(-1, "-1"), (None, r"nothing \(the field is empty or not a number\)")])
def test_seed_errors_read_the_same_in_every_tab(client, api, args, seed_at, field, bad, shown):
    """Item 9: one wording per check, naming the field and its range; an empty or unreadable box (the browser sends
    None for "abc") is named as such, not "got None"."""
    call = list(args)
    call[seed_at] = bad
    with pytest.raises(Exception, match=f"{field} {SEED_WORDING}{shown}"):
        client.predict(*call, api_name=api)


def test_slider_range_errors_name_the_field(client):
    """Item 9: Gradio's own check said "Value 80 is greater than maximum value 40.0" without the field."""
    with pytest.raises(Exception, match=r"'Elevation \(degrees, training range 10..40\)' must be between 10 and 40; got 80"):
        client.predict("nerf-lebm-shapes", "EBM prior", 0, 30, 80, "RGB", 32, api_name="/nerf_sample")


def _editor_example(tmp_path, name: str, canvas: int = 256) -> dict:
    """The Inpaint tab's canvas as the browser sends it: a held-out example enlarged (nearest) to the canvas."""
    arr = np.asarray(Image.open(EXAMPLES / f"{name}.png").convert("RGB").resize((canvas, canvas), Image.NEAREST))
    path = _png(tmp_path, arr, "canvas.png")
    return {"background": handle_file(path), "layers": [], "composite": handle_file(path)}


def test_inpaint_note_says_resized_only_when_resized(client, tmp_path):
    """Item 10: a held-out example shown enlarged on the canvas was reported as "resized from 256x256"."""
    editor = _editor_example(tmp_path, "fmnist-test-0002-trouser")
    gallery, note, *_ = client.predict("CF-EBM (cfebm-fmnist)", editor, "centre square", "(unconditional)", 1.0, 2, 2, 0,
                                       api_name="/inpaint")
    assert "resized" not in note and "Preset mask: centre square" in note
    upload = _png(tmp_path, np.full((40, 40, 3), 120, np.uint8), "upload.png")
    gallery, note, *_ = client.predict("CF-EBM (cfebm-fmnist)", {"background": handle_file(upload), "layers": [],
                                                                 "composite": handle_file(upload)},
                                       "centre square", "(unconditional)", 1.0, 2, 2, 0, api_name="/inpaint")
    assert "resized from 40x40 to 32x32" in note  # a real resize is still reported


def test_saliency_upload_is_used_whatever_the_example_index(client, tmp_path):
    """Item 10: with an upload, the example index (99999, past the shipped examples) is not used, so not checked."""
    upload = _png(tmp_path, np.full((20, 20, 3), 200, np.uint8), "up.png")
    *_, note = client.predict("cdrl-fmnist", "inpaint", 99999, handle_file(upload), "centre square", 0, 0.5, api_name="/saliency")
    assert "your upload" in note and "index is not used while an image is uploaded" in note
    *_, note = client.predict("cfebm-fmnist", 99999, handle_file(upload), 0.5, api_name="/disagreement")
    assert "your upload" in note
