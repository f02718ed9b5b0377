"""Composition (AND / NOT) on CDRL: the energy against the formula, reductions to plain sampling, NOT on a 2-D toy, bad input."""
import math

import pytest
import torch

from studio import langevin
from studio.cdrl import CDRL, CDRLConfig
from studio.compose import composition
from studio.data import fmnist_attributes as fa
from studio.errors import SamplingError

from test_cdrl import tiny


def tiny_attributes() -> CDRL:
    names = list(fa.DEFAULT_ATTRIBUTES)
    torch.manual_seed(0)
    cfg = CDRLConfig(image_size=8, ebm_width=4, init_width=4, temb_dim=16, num_classes=2 * len(names),
                     class_names=fa.class_names(names), attributes=names, conditional_initializer=False,
                     attribute_thresholds={"bright": 0.5, "high-contrast": 0.2})
    model = CDRL(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gain") or "unet.out" in name or "label" in name:
                p.normal_(0, 0.1)
    return model.eval().requires_grad_(False)


def test_composed_energy_equals_the_hand_summed_formula():
    m = tiny()
    y = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0, 2, 5])
    f = {lab: m.fhat(y, t, torch.full((3,), lab)) for lab in range(4)}  # one network call per label, summed by hand
    w = 1.5
    # Thesis Eq. 5.12 for M = 2 concepts: (w + 1) sum_i f(c_i) - (M w + M - 1) f(null).
    comp = composition(m.config, ["a", "c"], guidance=w)
    torch.testing.assert_close(comp.fhat(m, y, t), (w + 1) * (f[1] + f[3]) - (2 * w + 1) * f[0], rtol=1e-5, atol=1e-4)
    # With weights and a NOT: f(null) + (w + 1) sum_i lambda_i [f(c_i) - f(null)].
    comp = composition(m.config, [("a", 2.0), ("b", -0.5)], guidance=w)
    expected = f[0] + (w + 1) * (2.0 * (f[1] - f[0]) - 0.5 * (f[2] - f[0]))
    torch.testing.assert_close(comp.fhat(m, y, t), expected, rtol=1e-5, atol=1e-4)
    assert comp.describe() == "F = 5 f(x; a) - 1.25 f(x; b) - 2.75 f(x; null)"
    # The image-level hook: -F_0 / s_0^2 of level-0 data alpha_1 abar_0 x.
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(2)) * 2 - 1
    scale = m.alpha_eff[0] * m.abar[0]
    zero = torch.zeros(3, dtype=torch.long)
    f0 = {lab: m.fhat(scale * x, zero, torch.full((3,), lab)) for lab in (0, 1, 2)}
    hand = -(f0[0] + (w + 1) * (2.0 * (f0[1] - f0[0]) - 0.5 * (f0[2] - f0[0]))) / m.step_sq[0]
    torch.testing.assert_close(m.composed_energy(x, [("a", 2.0), ("b", -0.5)], guidance=w), hand, rtol=1e-5, atol=1e-2)
    torch.testing.assert_close(m.composed_energy(x, []), m.image_energy(x))


def test_the_sampler_runs_on_the_composed_energy():
    """The Trace's first energy is -F_top(proposal) / s_top^2 (no quadratic term at the top level)."""
    m = tiny()
    _, trace = m.compose([("a", 1.0), ("c", -1.0)], guidance=0.5, seeds="4-5", steps=2, record_every=1)
    proposal = trace.frames[0]
    top = torch.full((2,), m.config.num_levels - 1)
    f = {lab: m.fhat(proposal, top, torch.full((2,), lab)) for lab in (0, 1, 3)}
    F = f[0] + 1.5 * ((f[1] - f[0]) - (f[3] - f[0]))
    torch.testing.assert_close(trace.energies[0], -F / m.step_sq[-1], rtol=1e-4, atol=1e-3)
    assert trace.num_steps == 12 and trace.segments[0][0] == "level 5"


def test_one_concept_is_plain_guided_sampling_and_none_is_unconditional():
    m = tiny()
    a, ta = m.generate("b", seeds="0-3", guidance=1.5, steps=3, record_every=1)
    b, tb = m.compose(["b"], guidance=1.5, seeds="0-3", steps=3, record_every=1)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    torch.testing.assert_close(ta.energy_matrix(), tb.energy_matrix(), rtol=1e-6, atol=1e-5)
    u, _ = m.generate(None, seeds="2-3", steps=2)
    torch.testing.assert_close(m.compose([], seeds="2-3", steps=2, guidance=3.0)[0], u, rtol=0, atol=0)


def test_composition_is_per_sample_and_streams():
    m = tiny()
    spec = [("a", 1.0), ("b", 1.0), ("c", -0.5)]
    x, _ = m.compose(spec, guidance=1.0, seeds="0-2", steps=2)
    x1, _ = m.compose(spec, guidance=1.0, seeds=[1], steps=2)
    torch.testing.assert_close(x[1:2], x1, rtol=0, atol=1e-5)
    labels = [u.label for u in m.compose_stream(spec, guidance=1.0, seeds="0-1", steps=1)]
    assert labels == ["level 5 proposal", "level 5", "level 4", "level 3", "level 2", "level 1", "done"]


def test_composition_inpaints_keeping_known_pixels():
    m = tiny()
    image = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(3)) * 2 - 1
    known = torch.ones(8, 8)
    known[2:6, 2:6] = 0
    x, _ = m.compose([("a", 1.0), ("b", -1.0)], guidance=1.0, seeds="0-1", steps=1, image=image, mask=known)
    keep = known.bool().expand(2, 1, 8, 8)
    assert torch.equal(x[keep], image.expand(2, 1, 8, 8)[keep]) and not torch.equal(x[0], x[1])


def test_network_evaluations_are_counted_on_the_networks():
    m = tiny()
    rows = {"ebm": 0, "init": 0}

    def count(key):
        return lambda _mod, inp, _out: rows.__setitem__(key, rows[key] + inp[0].shape[0])

    hooks = [m.ebm.head.register_forward_hook(count("ebm")), m.initializer.unet.register_forward_hook(count("init"))]
    try:
        m.compose([("a", 1.0), ("b", -1.0)], guidance=1.0, seeds="0-1", steps=2)
    finally:
        for h in hooks:
            h.remove()
    comp = composition(m.config, [("a", 1.0), ("b", -1.0)], 1.0)
    assert (rows["ebm"] + rows["init"]) / 2 == comp.network_evaluations(m, 2)  # 6 x (3 + 3 x 2) + 3


def test_not_on_a_2d_toy_moves_mass_out_of_the_negated_mode():
    """Two classes, 'left' N((-1, 0), 0.5^2 I) and 'right' N((1, 0), 0.5^2 I); the unconditional is their even
    mixture. Langevin chains on exp(F), F from ``composition``, against the exact mass of exp(F) on a grid:
    NOT left empties the left half-plane, which holds half the mass unconditionally."""
    cfg = CDRLConfig(num_classes=2, class_names=["left", "right"])
    means, std = torch.tensor([[-1.0, 0.0], [1.0, 0.0]]), 0.5

    def log_n(x, mu):
        return -(x - mu).pow(2).sum(-1) / (2 * std**2)

    logf = {1: lambda x: log_n(x, means[0]), 2: lambda x: log_n(x, means[1]),
            0: lambda x: torch.logaddexp(log_n(x, means[0]), log_n(x, means[1])) - math.log(2)}
    g = torch.linspace(-6, 6, 481)
    grid = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1)

    def left_mass(concepts, guidance):
        comp = composition(cfg, concepts, guidance)
        f = comp.combine([logf[lab](grid) for lab in comp.labels])
        p = (f - f.max()).exp()
        exact = float(p[grid[..., 0] < 0].sum() / p.sum())
        energy = lambda x: -comp.combine([logf[lab](x) for lab in comp.labels])  # noqa: E731
        x0 = torch.randn(400, 2, generator=torch.Generator().manual_seed(0)) * 2
        # One generator for the whole batch: 400 per-sample generators would make this 2-D test slow.
        x, _ = langevin(energy, x0, steps=1000, step_size=0.01, noise_std=math.sqrt(0.02), generator=torch.Generator().manual_seed(1))
        return exact, float((x[:, 0] < 0).float().mean())

    exact, chains = left_mass([], 0.0)
    assert exact == pytest.approx(0.5, abs=0.01) and chains == pytest.approx(0.5, abs=0.06)
    for guidance in (0.0, 1.0):
        exact, chains = left_mass([("left", -1.0)], guidance)
        assert exact < 0.01 and chains < 0.02
    exact, chains = left_mass([("right", 1.0), ("left", -0.5)], 0.0)  # AND right, softly NOT left
    assert exact < 0.01 and chains < 0.02


def test_attribute_model_composes_attribute_values_with_an_unconditional_initializer():
    m = tiny_attributes()
    x = torch.randn(2, 1, 8, 8)
    t = torch.tensor([1, 3])
    torch.testing.assert_close(m.propose(x, t, torch.tensor([2, 5])), m.propose(x, t, torch.zeros(2, dtype=torch.long)))
    comp = composition(m.config, {"top": True, "bright": None, "high-contrast": False}, 3.0)
    assert [c.name for c in comp.concepts] == ["top=True", "high-contrast=False"] and comp.labels == [1, 6, 0]
    assert comp.coefficients == [4.0, 4.0, -7.0]  # (w + 1) each, -(M w + M - 1) for null
    out, trace = m.compose({"top": True, "high-contrast": False}, guidance=3.0, seeds="0-1", steps=1)
    assert out.shape == (2, 1, 8, 8) and trace.num_steps == 6
    u, _ = m.generate(None, seeds="0-1", steps=1)
    torch.testing.assert_close(m.compose({"top": None, "bright": None}, seeds="0-1", steps=1)[0], u, rtol=0, atol=0)


@pytest.mark.parametrize("concepts, guidance, match", [
    (["zebra"], 1.0, "Unknown concept 'zebra'. Choose from: a, b, c"),
    ([7], 1.0, "neither a class name nor an index"),
    ([("a", 9.0)], 1.0, "Weight of 'a' must be between -5 and 5"),
    ([("a", 0)], 1.0, "Weight of 'a' is 0"),
    ([("a", float("nan"))], 1.0, "Weight of 'a'"),
    ([("a", 1), ("a", -1)], 1.0, "Contradictory: 'a' is asked both AND and NOT"),
    ([("a", 1), ("a", 2)], 1.0, "listed twice"),
    ([("a", -1), ("b", -1), ("c", -1)], 1.0, "NOT of every class leaves nothing to sample"),
    (["a"], -1.0, "guidance w must be between 0"),
    ({"top": True}, 1.0, "needs an attribute model"),
    ([("a", 1, 2)], 1.0, "name or a \\(name, weight\\) pair"),
    ("null", 1.0, "unconditional model is part of every composition"),
    (3.5, 1.0, "Concepts must be a list"),
])
def test_bad_concepts_are_clear_errors(concepts, guidance, match):
    with pytest.raises(SamplingError, match=match):
        tiny().compose(concepts, guidance=guidance, seeds="0", steps=1)


@pytest.mark.parametrize("concepts, match", [
    ([("top=True", 1), ("top=False", 1)], "Contradictory: attribute 'top' is asked both as top=True and as top=False"),
    ({"colour": True}, "Unknown attribute 'colour'"),
    ({"top": "yes"}, "must be True, False or None"),
])
def test_bad_attribute_settings_are_clear_errors(concepts, match):
    with pytest.raises(SamplingError, match=match):
        tiny_attributes().compose(concepts, seeds="0", steps=1)


def test_attribute_judging_and_training_labels():
    names = list(fa.DEFAULT_ATTRIBUTES)
    img = torch.full((3, 1, 8, 8), -1.0)
    img[0, :, 2:6, 2:6] = 1.0  # bright, flat
    img[1, :, 2:6, 2:6] = -0.4  # dim, flat
    img[2, :, 2:6, 2:4], img[2, :, 2:6, 4:6] = 1.0, -0.2  # half white, half grey: bright (0.7) and high contrast (0.3)
    table = fa.judge(names, img, torch.tensor([0, 5, 2]), {"bright": 0.5, "high-contrast": 0.2})
    assert table.tolist() == [[True, True, False], [False, False, False], [True, True, True]]
    assert torch.equal(fa.judge(names, img.flip(-1), torch.tensor([0, 5, 2]), {"bright": 0.5, "high-contrast": 0.2}), table)
    labels = fa.random_labels(table, torch.Generator().manual_seed(0))
    # Each image's label is one of its own attribute values: class 2i (True) or 2i + 1 (False) of attribute i.
    for row, lab in zip(table.tolist(), labels.tolist()):
        assert lab == fa.label_of(lab // 2, row[lab // 2])
    stats = fa.statistics(names, table)
    assert stats["base_rates"]["top"] == pytest.approx(2 / 3, abs=1e-4) and stats["min_pair_coverage"] == 0.0
    with pytest.raises(Exception, match="cover only 0.0%"):
        fa.check_coverage(names, stats)
