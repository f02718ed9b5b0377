"""The CoopFlow tab end to end through gradio_client, on a tiny random checkpoint built by the test (trained with
T = 3; its sampler defaults, as train/coopflow_choose_sampler.py writes them: T = 3, delta = 0.05, no noise)."""
import shutil
from pathlib import Path

import pytest
import torch

from studio.coopflow import CoopFlow, CoopFlowConfig
from studio.hub import ModelCard, checkpoints_dir, save_checkpoint

from conftest import serve_app_client


def save_tiny_coopflow(root: Path) -> None:
    torch.manual_seed(0)
    model = CoopFlow(CoopFlowConfig(flow_steps=1, flow_hidden=8, ebm_width=2, ebm_head=4, langevin_steps=3))
    with torch.no_grad():  # a non-trivial energy, so the Langevin steps visibly move the samples
        for p in model.ebm.parameters():
            p.mul_(30.0)
    save_checkpoint(root / "coopflow-fmnist", model.kind, model.config, model.state_dict(), ModelCard(summary="tiny coopflow"),
                    extra={"sampler_defaults": TINY_DEFAULTS})


TINY_DEFAULTS = {"steps": 3, "step_size": 0.05, "noise": 0.0}  # T: what it was trained with


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpts")
    shutil.copytree(checkpoints_dir() / "toy-ring", root / "toy-ring")
    save_tiny_coopflow(root)
    yield from serve_app_client(root)


def _grey(path):
    from PIL import Image

    return torch.tensor(list(Image.open(path).convert("L").getdata()), dtype=torch.float32)


def test_coopflow_flow_and_refined_side_by_side(client):
    flow, refined, plot, summary = client.predict(5, 0.05, 3, 4, 0.0, api_name="/coopflow_sample")
    assert Path(flow).exists() and Path(refined).exists() and plot is not None
    assert "Seeds used: 3-6" in summary and "T = 5 Langevin steps, delta = 0.05" in summary and "Mean energy" in summary
    assert not torch.equal(_grey(flow), _grey(refined))


def test_coopflow_zero_steps_shows_the_flow_alone(client):
    flow, refined, _, summary = client.predict(0, 0.04, 0, 2, 0.0, api_name="/coopflow_sample")
    assert torch.equal(_grey(flow), _grey(refined)) and "Mean |refined - flow| per pixel: 0.000" in summary


@pytest.mark.parametrize("args, message", [
    ((500, 0.04, 0, 4, 0.0), "'Langevin steps T' must be between 0 and 200; got 500"),
    ((5, 0.04, -1, 4, 0.0), r"First seed must be a whole number between 0 and 2\*\*63 - 1; got -1"),
    ((5, 0.2, 0, 4, 0.0), "'Step size delta' must be between 0.005 and 0.1; got 0.2"),
])
def test_coopflow_bad_input(client, args, message):
    with pytest.raises(Exception, match=message):
        client.predict(*args, api_name="/coopflow_sample")


def test_coopflow_warns_when_T_is_past_the_trained_T(client):
    """Short-run EBMs are not convergent samplers: T beyond the trained T = 3 is run, with a warning first in the summary
    (and a gr.Warning toast in the browser); T up to 3 is not warned about."""
    *_, summary = client.predict(5, 0.05, 0, 2, 0.0, api_name="/coopflow_sample")
    assert summary.startswith("Warning: T = 5 is past the T = 3 the EBM was trained with.") and "Seeds used: 0-1" in summary
    assert "Trained with T = 3, delta = 0.03. Sampler defaults: T = 3, delta = 0.05, noise = 0." in summary
    *_, summary = client.predict(3, 0.05, 0, 2, 0.0, api_name="/coopflow_sample")
    assert "Warning" not in summary


def _tiles(path, count: int, size: int = 32, pad: int = 2, scale: int = 3) -> list[torch.Tensor]:
    """The ``count`` images of a one-row image_grid, back at their own size."""
    grey = _grey(path)
    from PIL import Image

    w, h = Image.open(path).size
    assert (w, h) == ((count * (size + pad) + pad) * scale, (size + 2 * pad) * scale)
    img = grey.view(h, w)[::scale, ::scale]
    return [img[pad : pad + size, pad + i * (size + pad) : pad + i * (size + pad) + size] for i in range(count)]


def test_coopflow_interpolation_rows_end_at_the_two_seeds_samples(client):
    flow, refined, summary = client.predict(3, 9, 4, 2, 0.05, 0.0, api_name="/coopflow_interpolate")
    assert "Line from seed 3 to seed 9 in 4 frames" in summary and "T = 2 Langevin steps, delta = 0.05" in summary
    assert "Warning" not in summary
    flow_tiles, refined_tiles = _tiles(flow, 4), _tiles(refined, 4)
    for tiles, which in ((flow_tiles, 0), (refined_tiles, 1)):
        for i, seed in ((0, 3), (3, 9)):
            single = client.predict(2, 0.05, seed, 1, 0.0, api_name="/coopflow_sample")[which]
            # the same latent; a batch of 4 vs 1 can round a pixel to the next grey level
            assert (tiles[i] - _tiles(single, 1)[0]).abs().max() <= 1
    assert not torch.equal(flow_tiles[0], flow_tiles[1]) and not torch.equal(flow_tiles[1], flow_tiles[2])
    assert any(not torch.equal(f, r) for f, r in zip(flow_tiles, refined_tiles))
    *_, summary = client.predict(3, 9, 2, 6, 0.05, 0.0, api_name="/coopflow_interpolate")
    assert summary.startswith("Warning: T = 6 is past the T = 3")


@pytest.mark.parametrize("args, message", [
    ((2**63, 1, 4, 2, 0.05, 0.0), r"Seed A must be a whole number between 0 and 2\*\*63 - 1; got 9223372036854775808"),
    ((0, -1, 4, 2, 0.05, 0.0), r"Seed B must be a whole number between 0 and 2\*\*63 - 1; got -1"),
    ((0, None, 4, 2, 0.05, 0.0), r"Seed B must be a whole number .*got nothing \(the field is empty or not a number\)"),
    ((0, 1, 1, 2, 0.05, 0.0), "'Frames' must be between 2 and 16; got 1"),
    ((0, 1, 17, 2, 0.05, 0.0), "'Frames' must be between 2 and 16; got 17"),
    ((0, 1, 4, 201, 0.05, 0.0), "'Langevin steps T' must be between 0 and 200; got 201"),
    ((0, 1, 4, 2, 0.5, 0.0), "'Step size delta' must be between 0.005 and 0.1; got 0.5"),
])
def test_coopflow_interpolation_bad_input(client, args, message):
    with pytest.raises(Exception, match=message):
        client.predict(*args, api_name="/coopflow_interpolate")
