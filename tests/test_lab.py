"""studio.lab and studio.pointsets: presets and point checks, the objectives against closed forms, the
stream (first update before any training, replay at a fixed seed, stop on request, the compute budget, a
diverging run that keeps its last good landscape), and the checkpoint that studio.load reads back."""
import math

import pytest
import torch

import studio
from studio import lab
from studio.lab import EnergyMLP, EnergyMLPConfig, LabConfig, LabError, fraction_near, train, train_stream
from studio.lab_io import export_checkpoint
from studio.pointsets import CANVAS, MAX_POINTS, PRESETS, PointSetError, check_points, moon_arcs, preset

FAST = dict(steps=30, update_every=10, batch_size=32, grid_size=16, width=16)


class Quadratic(torch.nn.Module):
    """E(x) = |x - centre|^2 / (2 s^2): the exact energy of N(centre, s^2 I)."""

    def __init__(self, s, centre=(0.0, 0.0)):
        super().__init__()
        self.s, self.centre = s, torch.tensor(centre)

    def forward(self, x):
        return (x - self.centre).pow(2).sum(1) / (2 * self.s**2)


# -- point sets --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_are_seeded_and_on_the_canvas(name):
    a, b, c = preset(name, 300, seed=1), preset(name, 300, seed=1), preset(name, 300, seed=2)
    assert a.shape == (300, 2) and torch.equal(a, b) and not torch.equal(a, c)
    assert bool((a.abs() <= CANVAS).all())
    assert torch.equal(check_points(a), a)


def test_two_moons_preset_lies_on_its_arcs():
    """Noise-free moons sit exactly on the two half circles, half on each."""
    pts = preset("two moons", 400, seed=0, noise=0.0)
    dist = []
    for (cx, cy), r, side in moon_arcs():
        d = pts - torch.tensor([cx, cy])
        on_side = side * d[:, 1] >= -1e-5
        dist.append(torch.where(on_side, (d.norm(dim=1) - r).abs(), torch.full((len(pts),), math.inf)))
    nearest = torch.stack(dist, 1).min(1)
    assert float(nearest.values.max()) < 1e-5
    assert int((nearest.indices == 0).sum()) == 200


@pytest.mark.parametrize("points, message", [
    ([[0.0, 0.0]], "1 point given; place at least 2"),
    (torch.empty(0, 2), "0 points given; place at least 2"),
    ([], "no points given"),
    (torch.zeros(MAX_POINTS + 1, 2), "5,001 points given; at most 5,000"),
    ([[0.0, 0.0], [float("nan"), 1.0]], "point 2 is .*finite numbers"),
    ([[0.0, 0.0], [1.0, float("inf")]], "point 2 is .*finite numbers"),
    ([[0.0, 0.0], [4.5, 1.0], [9.0, 0.0]], r"point 2 \(4.5, 1\) is outside the canvas.*\[-4, 4\] \(2 points are outside\)"),
    ([[0.0, 0.0, 1.0], [1.0, 1.0, 1.0]], r"shape \[N, 2\]; got shape \(2, 3\)"),
    ("0, 0\n1, 1", "must be a list of \\(x, y\\) pairs"),
    (None, "must be a list of \\(x, y\\) pairs"),
    ([["a", "b"], [1, 2]], "must be a list of \\(x, y\\) pairs"),
])
def test_bad_point_sets_are_named(points, message):
    with pytest.raises(PointSetError, match=message):
        check_points(points)


def test_unknown_preset_lists_the_presets():
    with pytest.raises(PointSetError, match="Unknown preset 'heart'. Choose one of: two moons, rings"):
        preset("heart")


# -- config ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("change, message", [
    ({"objective": "gan"}, "Unknown objective 'gan'. Choose one of: cd, pcd, dsm, ssm"),
    ({"sampler": "gibbs"}, "Unknown sampler 'gibbs'"),
    ({"steps": 2001}, "steps must be .*between 1 and 2000"),
    ({"steps": 0}, "steps must be .*between 1 and 2000"),
    ({"step_size": 0.5}, "step_size must be .*between 1e-05 and 0.1"),
    ({"step_size": float("nan")}, "step_size must be .*between"),
    ({"hmc_step_size": 0.0}, "hmc_step_size must be .*between 0.001 and 1"),
    ({"leapfrog_steps": 51}, "leapfrog_steps must be .*between 1 and 50"),
    ({"leapfrog_steps": 2.5}, "leapfrog_steps must be a whole number"),
    ({"max_seconds": 11}, "max_seconds must be .*between 0.01 and 10"),
    ({"learning_rate": -1}, "learning_rate must be .*between"),
])
def test_bad_settings_are_named(change, message):
    with pytest.raises(LabError, match=message):
        LabConfig(**change).checked()


# -- objectives against closed forms ----------------------------------------------------------------


def test_denoising_score_matching_is_zero_at_the_exact_noised_score():
    """Data at one point c, noise sigma: the noised density is N(c, sigma^2), whose energy
    |x - c|^2 / (2 sigma^2) has exactly the kernel's score, so the DSM loss is 0 for every draw."""
    sigma, data = 0.3, torch.full((64, 2), 0.7)
    loss = lab._dsm_loss(Quadratic(sigma, (0.7, 0.7)), data, sigma, torch.Generator().manual_seed(0))
    assert float(loss.detach()) == pytest.approx(0.0, abs=1e-10)
    assert float(lab._dsm_loss(Quadratic(2 * sigma, (0.7, 0.7)), data, sigma, torch.Generator().manual_seed(0)).detach()) > 0.1


def test_sliced_score_matching_matches_its_closed_form_and_is_least_at_the_truth():
    """For data ~ N(0, t^2 I) in 2-D and E = |x|^2 / (2 s^2): E[-v^T H v + |grad E|^2 / 2] = -2/s^2 + t^2/s^4,
    smallest at s = t."""
    t = 0.8
    data = t * torch.randn(20000, 2, generator=torch.Generator().manual_seed(1))
    losses = {}
    for s in (0.5 * t, t, 2 * t):
        losses[s] = float(lab._ssm_loss(Quadratic(s), data, torch.Generator().manual_seed(2)).detach())
        assert losses[s] == pytest.approx(-2 / s**2 + t**2 / s**4, rel=0.03)
    assert losses[t] < min(losses[0.5 * t], losses[2 * t])


def test_contrastive_divergence_loss_is_the_energy_gap_plus_its_regulariser():
    model = Quadratic(1.0)
    data, neg = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])  # energies 0.5 and 2
    assert float(lab._cd_loss(model, data, neg, 0.0)) == pytest.approx(-1.5)
    assert float(lab._cd_loss(model, data, neg, 0.1)) == pytest.approx(-1.5 + 0.1 * (0.25 + 4))


def test_energy_mlp_wall_and_landscape():
    model = EnergyMLP(EnergyMLPConfig(width=8))
    model.reset_parameters(torch.Generator().manual_seed(0))
    inside, outside = torch.tensor([[3.9, 0.0]]), torch.tensor([[5.0, 0.0]])
    assert float((model(outside) - model.net(outside).squeeze(-1)).detach()) == pytest.approx(10.0)  # wall * (5 - 4)^2
    assert float((model(inside) - model.net(inside).squeeze(-1)).detach()) == 0.0
    axis, energy = model.landscape(11)
    assert axis[0] == -CANVAS and axis[-1] == CANVAS and energy.shape == (11, 11)
    assert float(energy[2, 7]) == pytest.approx(float(model(torch.tensor([[axis[7], axis[2]]])).detach()), abs=1e-5)


# -- the stream ----------------------------------------------------------------------------------------


def test_stream_starts_before_training_then_updates_every_n_steps():
    points = preset("rings", 200, seed=0)
    updates = list(train_stream(points, LabConfig(objective="pcd", **FAST)))
    assert [u.step for u in updates] == [0, 10, 20, 30]
    assert updates[0].losses == [] and len(updates[-1].losses) == 30
    assert [u.done for u in updates] == [False, False, False, True] and updates[-1].message == ""
    assert updates[-1].model is not None and all(u.model is None for u in updates[:-1])
    assert updates[1].negatives.shape == (32, 2) and updates[1].energy.shape == (16, 16)
    assert not torch.equal(updates[0].energy, updates[-1].energy)


@pytest.mark.parametrize("objective, sampler", [("cd", "langevin"), ("pcd", "hmc"), ("dsm", "langevin"), ("ssm", "hmc")])
def test_a_run_replays_exactly_at_its_seed(objective, sampler):
    points = preset("spiral", 150, seed=0)
    cfg = LabConfig(objective=objective, sampler=sampler, seed=3, **FAST)
    a, b = train(points, cfg), train(points, cfg)
    assert a.losses == b.losses and torch.equal(a.energy, b.energy) and torch.equal(a.negatives, b.negatives)
    c = train(points, LabConfig(objective=objective, sampler=sampler, seed=4, **FAST))
    assert c.losses != a.losses


def test_stop_on_request_keeps_what_was_learned():
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 12

    last = list(train_stream(preset("two moons", 100), LabConfig(objective="dsm", **FAST), should_stop=stop))[-1]
    assert last.done and last.step == 12 and len(last.losses) == 12
    assert last.message == "Stopped on request after 12 steps." and last.model is not None


def test_the_compute_budget_ends_a_run():
    last = train(preset("two moons", 100), LabConfig(objective="pcd", **{**FAST, "steps": 2000}, max_seconds=0.05))
    assert 0 < last.step < 2000 and "compute budget of 0.05 s per run is spent" in last.message
    assert last.seconds > 0.05 and last.model is not None


def test_a_diverging_run_stops_and_keeps_the_last_good_landscape(monkeypatch):
    real, calls = lab._dsm_loss, []

    def breaks_at_step_17(*args):
        calls.append(1)
        loss = real(*args)
        return loss * float("nan") if len(calls) == 17 else loss

    monkeypatch.setattr(lab, "_dsm_loss", breaks_at_step_17)
    updates = list(train_stream(preset("two moons", 100), LabConfig(objective="dsm", **FAST)))
    last = updates[-1]
    assert last.diverged and last.done and "Training diverged at step 17" in last.message
    assert "kept the landscape of step 10" in last.message and last.step == 10
    assert torch.equal(last.energy, updates[-2].energy)  # the landscape of step 10, not a broken one
    assert len(last.losses) == 16 and all(math.isfinite(v) for v in last.losses)
    _, energy = last.model.landscape(16)
    torch.testing.assert_close(energy, updates[-2].energy)  # and the model is the step-10 one


def test_training_moves_the_basin_onto_the_data():
    """A tight blob at (1.5, -1): after a short run every objective's lowest energy on the grid is near it."""
    blob = torch.tensor([1.5, -1.0]) + 0.1 * torch.randn(200, 2, generator=torch.Generator().manual_seed(0))
    for objective in ("pcd", "dsm"):
        last = train(blob, LabConfig(objective=objective, steps=300, update_every=300, grid_size=41, width=16, batch_size=64))
        i = int(last.energy.argmin())
        where = torch.tensor([last.axis[i % 41], last.axis[i // 41]])
        assert float((where - torch.tensor([1.5, -1.0])).norm()) < 0.5, (objective, where)


def test_checkpoint_round_trip_through_studio_load(tmp_path):
    last = train(preset("letter E", 120), LabConfig(objective="dsm", **FAST))
    path = export_checkpoint(last, tmp_path / "lab-energy")
    loaded = studio.load(path)
    assert isinstance(loaded, EnergyMLP) and loaded.checkpoint.kind == "lab-mlp"
    assert loaded.checkpoint.extra["lab"]["steps_trained"] == 30 and loaded.checkpoint.extra["lab"]["config"]["objective"] == "dsm"
    x = torch.randn(7, 2)
    torch.testing.assert_close(loaded(x), last.model(x))
    samples, trace = loaded.sample_hmc(seeds="0-3", steps=3, step_size=0.05, leapfrog_steps=2)
    assert samples.shape == (4, 2) and trace.num_steps == 3
    with pytest.raises(LabError, match="no trained energy to export yet"):
        export_checkpoint(None, tmp_path / "nothing")


def test_fraction_near():
    data = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    samples = torch.tensor([[0.1, 0.0], [1.0, 0.0], [2.0, 0.19], [3.0, 3.0]])
    assert fraction_near(samples, data, 0.2) == 0.5
