"""train/eval_compose.py on tiny random models: every setting is sampled and judged, and the card table lists them."""
import torch

from train import eval_compose as ec

from test_cdrl import tiny
from test_compose import tiny_attributes


def _fast(model):
    model.config.langevin_steps = 1  # one Langevin step per level: these tests check the bookkeeping, not the samples
    return model


def test_attribute_settings_are_every_combination():
    assert [len(ec.attribute_settings(3, k)) for k in (1, 2, 3)] == [6, 12, 8]
    assert {frozenset(s.items()) for s in ec.attribute_settings(3, 3)} == {
        frozenset(zip(range(3), v)) for v in [(a, b, c) for a in (True, False) for b in (True, False) for c in (True, False)]}


def test_attribute_metrics_and_card_table(tmp_path):
    model = _fast(tiny_attributes())
    table = torch.rand(400, 3, generator=torch.Generator().manual_seed(0)) < 0.5
    m = ec.evaluate_compose_attributes(model, per_setting=2, guidance=3.0, train_table=table)
    for key in ("compose_single_accuracy", "compose_pair_accuracy", "compose_triple_accuracy", "compose_uncontrolled_rate"):
        assert 0.0 <= m[key] <= 1.0
    assert len(m["compose_setting_accuracy"]) == 26 and abs(m["compose_uncontrolled_rate_train"] - 0.5) < 0.1
    card = ec.card_extra(model, m)
    assert card.count("\n| ") == 27 and "| yes | - | no |" in card  # header + 26 settings
    grid = ec.write_combination_grid(model, tmp_path / "grid.png", per_setting=2)
    from PIL import Image

    assert Image.open(grid).size[1] > Image.open(grid).size[0]  # 8 rows of 2 samples


def test_not_metrics_on_a_class_model():
    m = ec.compose_not_metrics(_fast(tiny()), per_class=2, with_fd=False)
    assert set(m["compose_not_rates"]) == {"a", "b", "c"} and 0.0 <= m["compose_not_rate"] <= m["compose_not_rate_max"] <= 1.0
    assert m["compose_not_guidance"] == ec.NOT_GUIDANCE and "compose_not_fd" not in m


def test_guidance_scan_prints_single_and_pair_accuracy_per_w_and_writes_grids(tmp_path, monkeypatch, capsys):
    import json

    from train import compose_choose_guidance as cg

    model = _fast(tiny_attributes())
    real_load = cg.studio.load  # the judge (evaluator-fmnist) stays the shipped one
    monkeypatch.setattr(cg.studio, "load", lambda ref: model if ref == "tiny" else real_load(ref))
    cg.main(["tiny", "--grid", "1,2.5", "--per-setting", "2", "--grids", str(tmp_path)])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["guidance"] for r in rows] == [1.0, 2.5]
    assert all(set(r) == {"guidance", "single", "pair"} and 0 <= r["single"] <= 1 and 0 <= r["pair"] <= 1 for r in rows)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["combinations-w1.png", "combinations-w2.5.png"]
    # The scan stops at pairs, and its seeds (1,000,000 up) lie past every seed the evaluation uses (below 100,000).
    scan = ec.evaluate_compose_attributes(model, per_setting=2, seed=cg.SEED_BLOCK, guidance=1.0, max_size=2)
    assert "compose_triple_accuracy" not in scan and "compose_uncontrolled_rate" not in scan
    assert ec._seeds(cg.SEED_BLOCK, 2)[0] == 1_000_000 and ec._seeds(0, ec.PER_SETTING)[-1] < 100_000
