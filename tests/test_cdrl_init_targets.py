"""train.cdrl_compare_init_targets: two tiny CDRL checkpoints measured on fixture validation images, the stored
table, and how train.evaluate puts it on the card."""
import json

import pytest
import torch

from studio.cdrl import CDRL, CDRLConfig
from conftest import write_fake_fashion_mnist
from studio.data.fashion_mnist import CLASS_NAMES
from studio.hub import save_checkpoint
from train import cdrl_compare_init_targets as compare
from train.evaluate import init_target_comparison, init_target_markdown


@pytest.fixture
def fixture_fmnist(tmp_path, monkeypatch):
    d = write_fake_fashion_mnist(tmp_path / "fm", train=400, test=20)
    monkeypatch.setenv("FASHION_MNIST_DIR", str(d))
    return d


def tiny_checkpoint(path, seed: int, minutes: float):
    torch.manual_seed(seed)
    cfg = CDRLConfig(ebm_width=4, init_width=4, temb_dim=16, num_classes=10, class_names=list(CLASS_NAMES), langevin_steps=2)
    model = CDRL(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gain") or "unet.out" in name:
                p.normal_(0, 0.1)
    training = {"command": f"accelerate launch train/cdrl.py --seed-{seed}", "wall_time_minutes": minutes, "steps": 10 * seed}
    return save_checkpoint(path, "cdrl", cfg, model.state_dict(), "# tiny", extra={"training": training, "earlier_training": [{}]})


def test_comparison_measures_every_candidate_alike_and_the_card_shows_it(tmp_path, fixture_fmnist, monkeypatch):
    monkeypatch.setattr(compare, "CONDITIONAL_SAMPLES", 20)
    a, b = tiny_checkpoint(tmp_path / "a", 1, 30.0), tiny_checkpoint(tmp_path / "b", 2, 30.1)
    out = tmp_path / "table.json"
    compare.main([f"refined={a}", f"data={b}", "--samples", "20", "--json", str(out), "--write", str(a)])
    table = json.loads(out.read_text())
    assert table["validation_images"] == 40 and table["samples"] == 20 and table["conditional_samples"] == 20
    rows = table["candidates"]
    assert list(rows) == ["refined", "data"]
    assert rows["refined"]["wall_time_minutes"] == 30.0 and rows["data"]["steps"] == 20 and rows["data"]["runs"] == 2
    for row in rows.values():
        assert row["fd_uncond_val"] > 0 and 0 <= row["class_accuracy_w1_val"] <= 1
    assert rows["refined"]["fd_uncond_val"] != rows["data"]["fd_uncond_val"]  # different weights, same seeds
    assert table["lowest_fd_uncond_val"] == min(rows, key=lambda k: rows[k]["fd_uncond_val"])
    # Same seeds: measuring one candidate again gives the same numbers.
    again = tmp_path / "again.json"
    compare.main([f"refined={a}", "--samples", "20", "--json", str(again)])
    assert json.loads(again.read_text())["candidates"]["refined"]["fd_uncond_val"] == rows["refined"]["fd_uncond_val"]

    stored = init_target_comparison(a)["init_target_comparison"]
    assert stored["data"]["fd_uncond_val"] == rows["data"]["fd_uncond_val"]
    text = init_target_markdown({"init_target_comparison": stored})
    assert "| refined | 30.0 min, 10 steps |" in text and "| data | 30.1 min, 20 steps |" in text
    assert init_target_comparison(b) == {}  # nothing written there


def test_candidates_must_be_label_equals_checkpoint(capsys):
    with pytest.raises(SystemExit) as err:
        compare.main(["cdrl-fmnist"])
    assert err.value.code == 2 and "label=checkpoint" in capsys.readouterr().err
