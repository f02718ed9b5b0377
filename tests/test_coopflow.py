"""CoopFlow: exact flow inverse and log-determinant (against autograd), the Langevin mapping, per-seed
samples, and a training smoke run through accelerate (the shipped-checkpoint bar is in test_coopflow_shipped.py)."""
import json
import math

import pytest
import torch

import studio
from studio.coopflow import CoopFlow, CoopFlowConfig
from studio.errors import SamplingError

from test_training import _launch, fmnist_dir  # noqa: F401  (fixture)


def _tiny(**kw) -> CoopFlow:
    torch.manual_seed(0)
    cfg = dict(image_size=8, flow_levels=2, flow_steps=2, flow_hidden=8, ebm_width=2, ebm_head=4, langevin_steps=3)
    model = CoopFlow(CoopFlowConfig(**{**cfg, **kw}))
    model.train()
    with torch.no_grad():  # data-dependent ActNorm init, then perturb every weight so no layer is the identity
        model.flow_loss(torch.rand(16, 1, 8, 8) * 2 - 1)
        for p in model.flow.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval().double()


def test_flow_inverse_is_exact_and_logdet_matches_autograd_jacobian():
    model = _tiny()
    s = torch.randn(1, 1, 8, 8, dtype=torch.float64)
    z, logdet = model.flow.encode(s)
    assert z.shape == (1, 64)
    torch.testing.assert_close(model.flow.decode(z), s, atol=1e-10, rtol=0)
    jac = torch.autograd.functional.jacobian(lambda v: model.flow.encode(v.view(1, 1, 8, 8))[0].flatten(), s.flatten())
    assert abs(float(torch.linalg.slogdet(jac)[1]) - float(logdet.detach())) < 1e-8


def test_log_prob_includes_the_logit_dequantisation_map():
    """log q(y) = log N(z) + log|det dz/dy| for the whole map y -> logit -> flow -> z."""
    model = _tiny()
    y = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    z = lambda v: model.flow.encode(model._to_logit(v.view(1, 1, 8, 8))[0])[0].flatten()  # noqa: E731
    jac = torch.autograd.functional.jacobian(z, y.flatten())
    zz = z(y.flatten())
    expected = -0.5 * (zz.pow(2).sum() + 64 * math.log(2 * math.pi)) + torch.linalg.slogdet(jac)[1]
    assert abs(float(model.log_prob_y(y)) - float(expected)) < 1e-8


def test_dequantisation_maps_pixels_to_their_bins_and_decode_inverts_it():
    model = _tiny()
    k = torch.arange(256, dtype=torch.float64)
    x = 2 * k / 255 - 1
    y = model.dequantize(x, torch.full_like(x, 0.5))
    torch.testing.assert_close(y, (k + 0.5) / 256)
    s = model._to_logit(y.view(4, 1, 8, 8))[0]
    z = model.flow.encode(s)[0]
    torch.testing.assert_close(model.decode(z).flatten(), x, atol=1e-9, rtol=0)  # the exact round trip


def test_refined_samples_map_back_to_the_flows_own_point_and_only_clamped_pixels_get_noise():
    """The flow's MLE target for its (refined) samples: inside (-1, 1) the inverse of decode (u = 1/2), so an unmoved
    proposal encodes back to its own latent; at the clamp bounds a fresh draw in the end cell, as for data."""
    model = _tiny()
    z = 0.3 * torch.randn(6, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x = model.decode(z)
    inside = ((x > -1) & (x < 1)).flatten(1).all(1)
    assert inside.any()
    y = model.sample_dequantize(x, torch.Generator().manual_seed(2))
    back = model.flow.encode(model._to_logit(y)[0])[0]
    torch.testing.assert_close(back[inside], z[inside], atol=1e-8, rtol=0)  # no noise: the exact latent
    edges = torch.tensor([-1.0, 1.0, 0.25], dtype=torch.float64).view(1, 1, 1, 3).expand(4, 1, 8, 3).reshape(4, 1, 8, 3)
    x2 = torch.cat([edges, torch.zeros(4, 1, 8, 5, dtype=torch.float64)], 3)
    a, b = (model.sample_dequantize(x2, torch.Generator().manual_seed(s)) for s in (3, 4))
    assert (a[..., 0] < 1 / 256).all() and (a[..., 1] >= 255 / 256).all()  # the end cells, like data pixels 0 and 255
    assert not torch.equal(a[..., :2], b[..., :2])  # drawn afresh
    torch.testing.assert_close(a[..., 2:], b[..., 2:])  # inside: deterministic
    torch.testing.assert_close(a[..., 2:], model.dequantize(x2, torch.full_like(x2, 0.5))[..., 2:])
    expected = float((-model.log_prob_y(a) / (64 * math.log(2)) + 8.0).mean())  # bits/dim of exactly that target
    assert float(model.sample_loss(x2, torch.Generator().manual_seed(3))) == pytest.approx(expected, rel=1e-12)


def test_refine_is_the_papers_noise_free_langevin_step():
    model = _tiny().float()
    x0 = torch.rand(3, 1, 8, 8) * 2 - 1
    out, trace = model.refine(x0, steps=1, step_size=0.5)
    xr = x0.clone().requires_grad_(True)
    (grad_f,) = torch.autograd.grad(model.ebm(xr).sum(), xr)
    torch.testing.assert_close(out, (x0 + 0.5**2 / 2 * grad_f).clamp(-1, 1))
    assert trace.num_steps == 1 and all(p.requires_grad for p in model.ebm.parameters())  # flags restored
    with pytest.raises(SamplingError, match="step size"):
        model.refine(x0, steps=1, step_size=0.0)


def test_update_clip_bounds_each_pixels_drift_per_step_as_the_authors_code():
    """update_clip = c: every Langevin drift entry is clipped to [-c, c], so T steps move a pixel by at most T * c,
    and a step whose drift is within the clip is the plain step."""
    model = _tiny().float()
    with torch.no_grad():  # a steep energy: the unclipped drift is far above the clip
        for p in model.ebm.parameters():
            p.mul_(30.0)
    x0 = torch.rand(3, 1, 8, 8) * 1.6 - 0.8
    free, _ = model.refine(x0, steps=2, step_size=0.5)
    model.config.update_clip = 0.01
    clipped, _ = model.refine(x0, steps=2, step_size=0.5)
    assert (free - x0).abs().max() > 0.1
    assert (clipped - x0).abs().max() <= 2 * 0.01 + 1e-6
    assert ((clipped - x0).abs() > 0.019).float().mean() > 0.5  # most pixels hit the clip in both steps
    model.config.update_clip = 100.0
    torch.testing.assert_close(model.refine(x0, steps=2, step_size=0.5)[0], free)


def test_sample_returns_flow_and_refined_and_depends_only_on_its_seed():
    model = _tiny().float()
    a = model.sample("3-5", steps=2, record_every=1)
    b = model.sample("5", steps=2)
    assert a.flow.shape == a.refined.shape == (3, 1, 8, 8) and a.seeds == [3, 4, 5]
    torch.testing.assert_close(a.flow[2:], b.flow)
    torch.testing.assert_close(a.refined[2:], b.refined)
    assert a.trace.frame_labels[0] == "flow proposal" and a.trace.num_steps == 2
    torch.testing.assert_close(a.trace.frames[0], a.flow)
    with pytest.raises(SamplingError, match="temperature"):
        model.sample("0", temperature=0)


TINY = ["--set", "model.flow_steps=1", "--set", "model.flow_hidden=8", "--set", "model.ebm_width=2", "--set", "model.ebm_head=4",
        "--set", "model.langevin_steps=2", "--set", "train.batch_size=4", "--set", "train.save_every=2", "--set", "train.threads=1",
        "--set", "train.pretrain_steps=1", "--set", "train.warmup_steps=1"]


def test_training_smoke_run_all_phases_resume_and_export(tmp_path, fmnist_dir):  # noqa: F811
    env = {"FASHION_MNIST_DIR": str(fmnist_dir)}
    run_dir, out = tmp_path / "run", tmp_path / "ckpt"
    base = ["--config", "train/configs/coopflow_fmnist.yaml", *TINY, "--run-dir", str(run_dir), "--export-dir", str(out)]
    first = _launch("train/coopflow.py", [*base, "--set", "train.steps=2"], env)
    assert first.returncode == 0, first.stderr[-3000:]
    second = _launch("train/coopflow.py", [*base, "--set", "train.steps=4", "--resume"], env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert json.loads((run_dir / "run.json").read_text())["step"] == 4
    model = studio.load(out)
    assert model.checkpoint.kind == "coopflow" and model.checkpoint.extra["phases"] == {"pretrain": 1, "warmup": 1, "coop": 2}
    out = model.sample("0-1")
    assert out.flow.shape == out.refined.shape == (2, 1, 32, 32)


# -- interpolation, sampler defaults, non-finite chains (issue 20) ----------------------------------------------


def test_interpolation_is_a_straight_line_whose_ends_are_the_plain_samples():
    model = _tiny().float()
    out = model.interpolate(3, 11, 5, steps=2, record_every=1)
    a, b = model.sample("3", steps=2), model.sample("11", steps=2)
    assert out.flow.shape == out.refined.shape == (5, 1, 8, 8) and out.seeds == (3, 11)
    assert out.alphas == [0.0, 0.25, 0.5, 0.75, 1.0]
    torch.testing.assert_close(out.flow[0], a.flow[0])  # the same latents (batched convs round differently)
    torch.testing.assert_close(out.flow[-1], b.flow[0])
    torch.testing.assert_close(out.refined[0], a.refined[0])
    torch.testing.assert_close(out.refined[-1], b.refined[0])
    # The middle frame decodes the midpoint of the two latents.
    from studio.langevin import make_generators

    z = 0.5 * model.latents(make_generators("3")) + 0.5 * model.latents(make_generators("11"))
    torch.testing.assert_close(out.flow[2:3], model.decode(z))
    assert out.trace.frame_labels[0] == "flow proposal" and out.trace.num_steps == 2
    assert not torch.equal(out.flow[1], out.flow[2])
    # With noise, every frame's chain gets seed_a's noise: frame 0 is still exactly sample(seed_a).
    noisy = model.interpolate(3, 11, 3, steps=2, noise=0.5)
    torch.testing.assert_close(noisy.refined[0], model.sample("3", steps=2, noise=0.5).refined[0])


@pytest.mark.parametrize("kwargs, message", [
    (dict(seed_a=2**63), r"seed_a must be a whole number between 0 and 2\*\*63 - 1; got 9223372036854775808"),
    (dict(seed_b=-1), r"seed_b must be a whole number between 0 and 2\*\*63 - 1; got -1"),
    (dict(seed_a=2.5), "seed_a must be a whole number"),
    (dict(seed_b="x"), "seed_b must be a whole number"),
    (dict(n=1), r"Interpolation frames n must be a whole number between 2 and 256; got 1"),
    (dict(n=257), "Interpolation frames n must be a whole number between 2 and 256"),
    (dict(n=None), r"got nothing \(the field is empty"),
    (dict(temperature=0), "temperature must be in"),
    (dict(steps=-1), "Langevin steps must be a whole number between 0 and 1000"),
    (dict(step_size=float("nan")), "Langevin step size delta"),
])
def test_interpolation_bad_inputs(kwargs, message):
    args = {"seed_a": 0, "seed_b": 1, "n": 3, **kwargs}
    with pytest.raises(SamplingError, match=message):
        _tiny().float().interpolate(args.pop("seed_a"), args.pop("seed_b"), **args)


def test_a_chain_that_turns_non_finite_is_reported_never_returned():
    model = _tiny().float()
    with torch.no_grad():
        model.ebm.head.bias.fill_(float("nan"))  # every energy is NaN
    for call in (lambda: model.sample("0-1", steps=2), lambda: model.interpolate(0, 1, 3, steps=2)):
        with pytest.raises(SamplingError, match="non-finite"):
            call()
    start = torch.zeros(2, 1, 8, 8)
    start[0, 0, 0, 0] = float("nan")
    with pytest.raises(SamplingError, match="NaN or infinite"):  # T = 0 would hand the start straight back
        model.refine(start, steps=0)


def test_sampling_defaults_come_from_the_checkpoint_and_the_trained_T_stays_known(tmp_path):
    from studio.errors import CheckpointError
    from studio.hub import ModelCard, save_checkpoint

    model = _tiny().float()
    assert model.trained_steps == 3 and model.sampler_defaults() == {"steps": 3, "step_size": 0.04, "noise": 0.0}
    save_checkpoint(tmp_path / "c", "coopflow", model.config, model.state_dict(), ModelCard(summary="tiny"),
                    extra={"sampler_defaults": {"steps": 1, "step_size": 0.5, "noise": 0.1}})
    loaded = studio.load(tmp_path / "c")
    assert loaded.trained_steps == 3 and loaded.sampler_defaults() == {"steps": 1, "step_size": 0.5, "noise": 0.1}
    default, explicit = loaded.sample("4-5"), loaded.sample("4-5", steps=1, step_size=0.5, noise=0.1)
    assert default.trace.num_steps == 1
    torch.testing.assert_close(default.refined, explicit.refined)
    assert not torch.equal(default.refined, loaded.sample("4-5", steps=3, step_size=0.04, noise=0.0).refined)
    loaded.checkpoint.extra["sampler_defaults"] = {"steps": "many"}
    with pytest.raises(CheckpointError, match="sampler_defaults: steps must be a whole number"):
        loaded.sample("0")


def test_pairing_takes_the_flow_from_one_checkpoint_and_the_ebm_and_history_from_the_other(tmp_path):
    from studio.errors import CheckpointError
    from studio.hub import ModelCard, save_checkpoint
    from train.coopflow_pair import pair

    flow_src, ebm_src = _tiny().float(), _tiny().float()
    with torch.no_grad():  # make the two differ everywhere
        for p in ebm_src.parameters():
            p.add_(1.0)
    save_checkpoint(tmp_path / "f", "coopflow", flow_src.config, flow_src.state_dict(), ModelCard(summary="flow"))
    save_checkpoint(tmp_path / "e", "coopflow", ebm_src.config, ebm_src.state_dict(), ModelCard(summary="ebm"),
                    extra={"training": {"command": "coop run", "wall_time_minutes": 5.0},
                           "earlier_training": [{"command": "pretrain", "wall_time_minutes": 2.0}]})
    paired = studio.load(pair(str(tmp_path / "f"), str(tmp_path / "e"), tmp_path / "p"))
    for k, v in paired.state_dict().items():
        torch.testing.assert_close(v, (flow_src if k.startswith("flow.") else ebm_src).state_dict()[k], msg=k)
    extra = paired.checkpoint.extra
    assert extra["earlier_training"] == [{"command": "pretrain", "wall_time_minutes": 2.0}]
    assert extra["training"]["command"] == "coop run" and f"flow was replaced by the flow of {tmp_path / 'f'} " in extra["training"]["note"]
    other = _tiny(flow_hidden=4).float()
    save_checkpoint(tmp_path / "o", "coopflow", other.config, other.state_dict(), ModelCard(summary="other"))
    with pytest.raises(CheckpointError, match="differ in flow_hidden"):
        pair(str(tmp_path / "o"), str(tmp_path / "e"), tmp_path / "bad")
