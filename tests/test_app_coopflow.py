"""The CoopFlow tab end to end through gradio_client, on a tiny random checkpoint built by the test."""
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
    save_checkpoint(root / "coopflow-fmnist", model.kind, model.config, model.state_dict(), ModelCard(summary="tiny coopflow"))


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
