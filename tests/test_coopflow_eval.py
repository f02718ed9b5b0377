"""CoopFlow's evaluation pieces and its sampler chooser on a tiny seeded model: the class entropy on hand-made
histograms, FD along one chain equal to separate chains, and the chooser's validation-only scan and --write."""
import json
import math

import pytest
import torch

import studio
from studio.coopflow import CoopFlow, CoopFlowConfig
from conftest import write_fake_fashion_mnist
from studio.hub import ModelCard, save_checkpoint
from train.eval_coopflow import card_extra, chain_states, class_entropy, fd_table_steps, histogram_entropy


def _tiny() -> CoopFlow:
    torch.manual_seed(0)
    model = CoopFlow(CoopFlowConfig(image_size=8, flow_levels=2, flow_steps=1, flow_hidden=8, ebm_width=2, ebm_head=4,
                                    langevin_steps=4))
    with torch.no_grad():  # an energy strong enough that the chain visibly moves
        for p in model.ebm.parameters():
            p.mul_(30.0)
    return model.eval()


@pytest.mark.parametrize("counts, expected", [
    ([10] * 10, math.log(10)),  # all classes evenly: ln 10 = 2.303
    ([7, 0, 0, 0, 0, 0, 0, 0, 0, 0], 0.0),  # one class: a collapsed sampler
    ([5, 5, 0, 0, 0, 0, 0, 0, 0, 0], math.log(2)),
    ([1, 3], -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))),
])
def test_histogram_entropy_in_nats(counts, expected):
    assert abs(histogram_entropy(counts) - expected) < 1e-12


@pytest.mark.parametrize("counts", [[0, 0], [-1, 2], [[1, 2]]])
def test_histogram_entropy_refuses_what_is_no_histogram(counts):
    with pytest.raises(ValueError, match="histogram"):
        histogram_entropy(counts)


class _Judge:
    """Predicts class i % 10 for image i, or always class 3."""

    def __init__(self, collapsed: bool):
        self.collapsed = collapsed

    def predict(self, x):
        return torch.full((len(x),), 3) if self.collapsed else torch.arange(len(x)) % 10


def test_class_entropy_reads_the_judges_predictions():
    x = torch.zeros(40, 1, 8, 8)
    assert abs(class_entropy(_Judge(False), x) - math.log(10)) < 1e-12
    assert class_entropy(_Judge(True), x) == 0.0


def test_one_chain_gives_every_T_exactly_as_separate_chains():
    model = _tiny()
    seeds = [5, 6, 7]
    states = chain_states(model, seeds, [0, 2, 4, 8], batch=2, step_size=0.05, noise=0.3)
    for t in (0, 2, 4, 8):
        out = model.sample("5-7", steps=t, step_size=0.05, noise=0.3)
        torch.testing.assert_close(states[t], out.refined)
    assert not torch.equal(states[0], states[8])
    assert fd_table_steps(20, 20) == [0, 10, 20, 40] and fd_table_steps(15, 30) == [0, 7, 15, 30]


def test_card_extra_shows_the_fd_table_and_the_class_entropy():
    m = {"coopflow_fd_flow": 20.0, "coopflow_fd_refined": 9.0, "coopflow_fd_refined_T0": 20.0, "coopflow_fd_refined_T10": 12.0,
         "coopflow_fd_refined_T20": 9.0, "coopflow_fd_refined_T40": 15.0, "coopflow_fd_refined_train_step": 10.0,
         "coopflow_class_entropy": 2.1, "coopflow_class_entropy_flow": 1.9, "samples": 2000, "langevin_steps": 20,
         "sample_steps": 20, "step_size": 0.04, "noise": 0.0, "train_step_size": 0.03, "fd_floor": 0.176,
         "coopflow_flow_test_bpd": 3.1}
    text = card_extra(m)
    assert "FD 20.0 -> 9.0 after T = 20 Langevin steps (delta 0.04, no noise); the Langevin flow improved" in text
    assert "| T = 0 (flow) | T = 10 | T = 20 (trained, default) | T = 40 |" in text and "| 20.0 | 12.0 | 9.0 | 15.0 |\n\n- " in text
    assert "entropy of the refined samples (evaluator-fmnist): 2.1 nats (flow proposals: 1.9)" in text


@pytest.fixture
def val_data(tmp_path, monkeypatch):
    """1,000 random training images (the validation split is a tenth of a small set) and a test split that must not be read."""
    d = write_fake_fashion_mnist(tmp_path / "fm", train=1000, test=50)
    monkeypatch.setenv("FASHION_MNIST_DIR", str(d))
    import studio.data.fashion_mnist as fm

    real, splits = fm.load_fashion_mnist, []

    def recording(split="train", *args, **kwargs):
        splits.append(split)
        return real(split, *args, **kwargs)

    monkeypatch.setattr(fm, "load_fashion_mnist", recording)
    return splits


def test_chooser_scans_validation_only_and_writes_the_defaults_into_the_checkpoint(tmp_path, val_data, capsys):
    from train import coopflow_choose_sampler as chooser

    model = _tiny()
    folder = tmp_path / "coopflow-tiny"
    save_checkpoint(folder, "coopflow", model.config, model.state_dict(), ModelCard(summary="tiny coopflow"),
                    extra={"sampler_defaults": {"steps": 4, "step_size": 0.04, "noise": 0.0}, "phases": {"coop": 1}})
    (folder / "README.md").write_text((folder / "README.md").read_text() + "\n## Metrics\n\nold numbers\n")
    before = studio.load(folder).state_dict()
    out = tmp_path / "scan.json"
    chooser.main([str(folder), "--samples", "20", "--reference", "100", "--steps-grid", "1,4,8", "--delta-grid", "0.02,0.08",
                  "--noise-grid", "0", "--json", str(out), "--write"])
    assert val_data == ["val"]  # never the test split
    scan = json.loads(out.read_text())
    assert scan["validation_images"] == 100 and scan["trained_steps"] == 4 and len(scan["rows"]) == 6
    assert {(r["steps"], r["step_size"]) for r in scan["rows"]} == {(t, d) for t in (1, 4, 8) for d in (0.02, 0.08)}
    best = min(r["fd_val"] for r in scan["rows"])
    chosen = scan["chosen"]
    row = next(r for r in scan["rows"] if (r["steps"], r["step_size"], r["noise"]) == tuple(chosen.values()))
    assert row["fd_val"] <= best * 1.02 and all(r["steps"] >= row["steps"] for r in scan["rows"] if r["fd_val"] <= best * 1.02)
    printed = capsys.readouterr().out
    assert "| 0 (flow only) |" in printed and "| 8 (past the trained T) |" in printed and "**chosen**" in printed
    loaded = studio.load(folder)
    assert loaded.sampler_defaults() == chosen and loaded.trained_steps == 4  # the config keeps the trained T
    assert loaded.checkpoint.extra["phases"] == {"coop": 1} and loaded.checkpoint.extra["sampler_scan"]["chosen"] == chosen
    assert all(torch.equal(before[k], v) for k, v in loaded.state_dict().items())
    card = (folder / "README.md").read_text()
    assert card.index("## Sampler defaults") < card.index("## Metrics") and "old numbers" in card
    assert f"**T = {chosen['steps']}, delta = {chosen['step_size']:g}, noise = 0**" in card
    default = loaded.sample("0-1")
    assert default.trace.num_steps == chosen["steps"]
