"""The EGC tab end to end through gradio_client, on a tiny random EGC checkpoint and the shipped evaluator."""
import shutil
from pathlib import Path

import pytest
import torch

from studio.egc import EGC, EGCConfig
from studio.hub import ModelCard, checkpoints_dir, save_checkpoint

from conftest import serve_app_client


def save_tiny_egc(root: Path) -> EGC:
    torch.manual_seed(0)
    model = EGC(EGCConfig(widths=[4, 8], feat_dim=4, emb_dim=16, num_timesteps=100, sample_steps=3))
    save_checkpoint(root / "egc-fmnist", model.kind, model.config, model.state_dict(), ModelCard(summary="tiny egc"))
    return model


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpts")
    shutil.copytree(checkpoints_dir() / "evaluator-fmnist", root / "evaluator-fmnist")
    save_tiny_egc(root)
    yield from serve_app_client(root)


def test_egc_classify_example_gives_top5(client):
    label, seen, note = client.predict(None, "fmnist-test-0002-trouser", api_name="/egc_classify")
    assert len(label["confidences"]) == 5 and Path(seen).exists()
    assert abs(sum(c["confidence"] for c in label["confidences"]) - 1) < 0.5  # top-5 of 10 classes
    assert "True class: Trouser" in note


def test_egc_generate_reports_seeds_and_the_shared_parameter_count(client):
    grid, plot, summary = client.predict("Bag", 2.0, 2, 3, 2, api_name="/egc_generate")
    assert Path(grid).exists() and plot is not None
    params = EGC(EGCConfig(widths=[4, 8], feat_dim=4, emb_dim=16, num_timesteps=100)).num_parameters()
    assert "Seeds used: 3-4" in summary and "2 DDIM steps" in summary and f"{params:,} parameters" in summary


def test_egc_fgsm_compares_both_classifiers(client):
    adv_egc, top_egc, adv_judge, top_judge, text = client.predict(None, "fmnist-test-0018-bag", 0.1, api_name="/egc_fgsm")
    assert Path(adv_egc).exists() and Path(adv_judge).exists()
    assert len(top_egc["confidences"]) == 5 and len(top_judge["confidences"]) == 5
    assert "Attacked class: Bag" in text and "EGC on its perturbed image" in text


@pytest.mark.parametrize("args, message", [
    (("Bag", 2.0, 0, 0, 2), "less than minimum|DDIM steps"),
    (("Cat", 1.0, 2, 0, 2), "not in the list of choices|Unknown class"),
])
def test_egc_bad_input(client, args, message):
    with pytest.raises(Exception, match=message):
        client.predict(*args, api_name="/egc_generate")
