"""The analytic 2-D potentials of studio.toy: energies at known points, closed-form moments against quadrature,
the sampler checks (exact samples pass them, wrong samples fail them, HMC meets them), and checkpoints."""
import math

import pytest
import torch

import studio
from studio.errors import SamplingError
from studio.hub import ModelCard, save_checkpoint
from studio.toy import POTENTIALS, Rosenbrock2D, RosenbrockConfig, SamplerCheck, potential

NAMES = list(POTENTIALS)


def _passed(checks) -> bool:
    return all(c.passed for c in checks)


def test_energies_at_known_points():
    well = potential("toy-double-well")
    e = well(torch.tensor([[1.5, 0.0], [-1.5, 0.0], [0.0, 0.0], [1.5, 0.6]]))
    torch.testing.assert_close(e, torch.tensor([0.0, 0.0, 2.5, 0.5]))  # minima, the barrier, one std along y
    banana = potential("toy-rosenbrock")
    torch.testing.assert_close(banana(torch.tensor([[0.0, 0.0], [1.0, 1.0], [1.0, 0.0]])), torch.tensor([0.0, 1.0, 11.0]))
    lattice = potential("toy-rastrigin")
    torch.testing.assert_close(lattice(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.5, 0.0]])), torch.tensor([0.0, 1.0, 3.25]))
    moons = potential("toy-two-moons")
    on_arcs = torch.tensor([[-1.0, 1.5], [1.0, -1.5]])  # the top of the upper arc, the bottom of the lower one
    assert float(moons(on_arcs).max()) < -math.log(1) + 1e-3 and float(moons(torch.tensor([[3.0, 3.5]]))) > 10
    board = potential("toy-checkerboard")
    e = board(torch.tensor([[-2.25, -2.25], [-0.75, -2.25], [0.0, 5.0]]))  # a black centre, a white centre, off the board
    assert float(e[0]) < 1e-6 and float(e[1]) == pytest.approx(6.0, abs=1e-4) and float(e[2]) > 6.0


def test_rosenbrock_closed_form_moments_match_quadrature():
    banana = Rosenbrock2D(RosenbrockConfig(a=0.3, b=5.0, temperature=0.8))
    quadrature = super(Rosenbrock2D, banana).second_moments()
    torch.testing.assert_close(banana.second_moments(), quadrature, rtol=2e-3, atol=2e-3)


def test_rastrigin_mode_masses_are_a_symmetric_distribution():
    modes, masses = potential("toy-rastrigin").mode_masses()
    assert float(masses.sum()) == pytest.approx(1.0, abs=1e-6)
    centre = int(((modes[:, 0] == 0) & (modes[:, 1] == 0)).nonzero())
    assert int(masses.argmax()) == centre
    flipped = {(int(x), int(y)): float(m) for (x, y), m in zip(modes, masses)}
    assert all(abs(flipped[(x, y)] - flipped[(-x, y)]) < 1e-9 and abs(flipped[(x, y)] - flipped[(y, x)]) < 1e-9 for x, y in flipped)


@pytest.mark.parametrize("name", NAMES)
def test_exact_samples_pass_and_wrong_samples_fail(name):
    model = potential(name)
    assert _passed(model.sampler_checks(model.reference_samples(1000, seed=3)))
    too_wide = model.init_scale * torch.randn(1000, 2, generator=torch.Generator().manual_seed(4)) * 2
    failed = [c.name for c in model.sampler_checks(too_wide) if not c.passed]
    assert failed, f"{name}: samples from the wide start pass every check"


def test_one_sided_samples_miss_a_mode():
    """Mode coverage is checked, not only moments: samples of one well, or one moon, fail."""
    well = potential("toy-double-well")
    right = well.reference_samples(1000, seed=5).abs()
    assert [c.name for c in well.sampler_checks(right) if not c.passed] == ["share in the right well"]
    moons = potential("toy-two-moons")
    ref = moons.reference_samples(2000, seed=6)
    upper = ref[moons.arc_sq_distances(ref).argmin(1) == 0]
    assert "share on the upper moon" in [c.name for c in moons.sampler_checks(upper) if not c.passed]


@pytest.mark.parametrize("name, step, leap", [("toy-double-well", 0.15, 10), ("toy-two-moons", 0.1, 10),
                                               ("toy-checkerboard", 0.1, 10), ("toy-rastrigin", 0.1, 10)])
def test_hmc_meets_the_checks(name, step, leap):
    model = potential(name)
    x, trace = model.sample_hmc(seeds="0-127", steps=60, step_size=step, leapfrog_steps=leap, record_every=0)
    checks = model.sampler_checks(x)
    assert _passed(checks), [str(c) for c in checks]
    assert 0.3 < trace.mean_accept_prob() <= 1.0


def test_sampler_check_reads_as_a_sentence():
    assert str(SamplerCheck("E[x^2]", 0.52, 0.5, 0.05)) == "E[x^2]: 0.52 (want 0.5 +- 0.05) ok"
    assert str(SamplerCheck("covered", 7, 8, 0, at_least=True)) == "covered: 7 (want >= 8) MISSED"


@pytest.mark.parametrize("name", NAMES)
def test_potentials_are_checkpoints_that_studio_load_reads(name, tmp_path):
    model = potential(name)
    save_checkpoint(tmp_path / name, model.kind, model.config, model.state_dict(), ModelCard(summary=name))
    loaded = studio.load(tmp_path / name)
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(loaded(x), model(x))
    assert loaded.checkpoint.kind == name


def test_unknown_potential_lists_the_names():
    with pytest.raises(SamplingError, match="Unknown potential 'volcano'. Choose one of: toy-double-well"):
        potential("volcano")
