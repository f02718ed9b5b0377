"""CDRL/DRL: schedule against the paper's table, seeded sampler slices, guidance, inpainting, losses."""
import pytest
import torch

from studio.cdrl import CDRL, DRL, CDRLConfig, DRLConfig, log_snr_schedule
from studio.errors import SamplingError


def tiny(cls=CDRL, cfg_cls=CDRLConfig, **kw) -> CDRL:
    torch.manual_seed(0)
    cfg = cfg_cls(image_size=8, ebm_width=4, init_width=4, temb_dim=16, num_classes=3, class_names=["a", "b", "c"], **kw)
    model = cls(cfg)
    # Random non-zero gains/outputs so the tiny model is not an identity map.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gain") or "unet.out" in name:
                p.normal_(0, 0.1)
    return model.eval().requires_grad_(False)


def test_schedule_matches_the_table_in_the_notes():
    s = log_snr_schedule()
    table = {  # t: (lambda_t, abar_t, sbar_t, alpha_{t+1}, sigma_{t+1}, s_t^2)
        0: (9.800, 0.99997, 0.00745, 0.9677, 0.2522, 2.56e-5),
        1: (2.689, 0.9677, 0.2523, 0.9056, 0.4241, 2.45e-3),
        2: (1.197, 0.8763, 0.4817, 0.8348, 0.5505, 7.88e-3),
        3: (0.141, 0.7316, 0.6818, 0.7412, 0.6713, 1.66e-2),
        4: (-0.876, 0.5422, 0.8402, 0.5898, 0.8076, 2.96e-2),
        5: (-2.172, 0.3198, 0.9475, 0.2434, 0.9699, 4.81e-2),
    }
    for t, (lam, abar, sbar, alpha, sigma, s2) in table.items():
        assert float(s.log_snr[t]) == pytest.approx(lam, abs=1e-3)
        assert float(s.abar[t]) == pytest.approx(abar, abs=1e-4)
        assert float(s.sbar[t]) == pytest.approx(sbar, abs=1e-4)
        assert float(s.alpha[t]) == pytest.approx(alpha, abs=1e-4)
        assert float(s.sigma[t]) == pytest.approx(sigma, abs=1e-4)
        assert float(s.step_sq[t]) == pytest.approx(s2, rel=0.01)
    assert float(s.log_snr[6]) == pytest.approx(-5.1) and float(s.abar[6]) == pytest.approx(0.0778, abs=1e-4)


def test_seeded_sample_slice_and_batch_independence():
    model = tiny()
    x, trace = model.generate("b", seeds="0-2", guidance=1.0, steps=3, record_every=1)
    assert x.shape == (3, 1, 8, 8) and x.abs().max() <= 1
    x1, _ = model.generate("b", seeds=[1], guidance=1.0, steps=3)
    torch.testing.assert_close(x[1:2], x1, rtol=0, atol=1e-6)
    again, _ = model.generate("b", seeds="0-2", guidance=1.0, steps=3)
    torch.testing.assert_close(x, again, rtol=0, atol=0)
    assert not torch.allclose(x[0], x[2])
    # 6 levels x (proposal + 3 Langevin frames + start frame) and 6 x 3 steps of energies.
    assert trace.num_steps == 18 and len(trace.segments) == 6 and trace.segments[0][0] == "level 5"
    assert trace.frame_labels.count("level 0 proposal") == 1


def test_output_slice_is_stable():
    # An untrained tiny model saturates the final images, so compare unclamped trace values instead.
    _, trace = tiny().generate(None, seeds="7", steps=2, record_every=1)
    torch.testing.assert_close(trace.energy_matrix()[:4, 0], torch.tensor([9.8042, 9.9555, 25.1533, 32.2695]), atol=2e-3, rtol=1e-4)
    torch.testing.assert_close(trace.frames[1][0, 0, 0, :4], torch.tensor([-0.6206, 0.6355, 0.5174, -0.5564]), atol=2e-4, rtol=0)


def test_guidance_zero_equals_conditional_model():
    model = tiny()
    y = torch.randn(4, 1, 8, 8)
    t = torch.tensor([0, 1, 2, 5])
    lab = torch.tensor([1, 2, 3, 1])
    torch.testing.assert_close(model.guided_fhat(y, t, lab, 0.0), model.fhat(y, t, lab))
    torch.testing.assert_close(model.guided_propose(y, t, lab, 0.0), model.propose(y, t, lab))
    # w > 0 really mixes in the null class: (w+1) f_c - w f_null.
    w = 2.0
    expected = (w + 1) * model.fhat(y, t, lab) - w * model.fhat(y, t, torch.zeros_like(lab))
    torch.testing.assert_close(model.guided_fhat(y, t, lab, w), expected, rtol=1e-5, atol=1e-5)
    a, _ = model.generate("a", seeds="3", guidance=0.0, steps=2)
    b, _ = model.generate("a", seeds="3", guidance=0.0, steps=2)
    torch.testing.assert_close(a, b)


def test_inpainting_keeps_known_pixels_and_varies_the_rest():
    model = tiny()
    image = torch.rand(1, 8, 8) * 2 - 1
    mask = torch.ones(8, 8)
    mask[2:6, 2:6] = 0
    x, _ = model.inpaint(image, mask, seeds="0-3", steps=2)
    known = mask.bool().expand(4, 1, 8, 8)
    assert torch.equal(x[known], image.expand(4, 1, 8, 8)[known])
    hole = ~known
    assert (x[0][hole[0]] - x[1][hole[1]]).abs().max() > 1e-3


@pytest.mark.parametrize("kwargs, match", [
    (dict(classes="zebra"), "Unknown class"),
    (dict(classes=7), "out of range"),
    (dict(guidance=-1.0), "guidance"),
    (dict(steps=0), "steps"),
    (dict(seeds="x"), "seed"),
    (dict(image=torch.zeros(1, 8, 8)), "both an image and a mask"),
    (dict(image=torch.zeros(1, 5, 5), mask=torch.ones(5, 5)), "shape"),
    (dict(image=torch.zeros(1, 8, 8), mask=torch.full((8, 8), 0.5)), "Mask must be 0/1"),
])
def test_bad_input(kwargs, match):
    with pytest.raises(SamplingError, match=match):
        tiny().generate(**{"seeds": "0", **kwargs})


def test_image_energy_scores_a_clean_image_as_level_0_data():
    m = tiny()
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    # Level 0's data are y = alpha_1 (abar_0 x + sbar_0 eps) (the training positives); a clean image has eps = 0.
    scale = float(m.schedule.alpha[0] * m.schedule.abar[0])
    assert scale == pytest.approx(0.9677 * 0.99997, abs=1e-4)
    torch.testing.assert_close(m.image_energy(x), m.energy(scale * x, 0))
    assert not torch.allclose(m.image_energy(x), m.energy(x, 0))  # the scaling matters
    labels = torch.tensor([1, 2, 0])
    torch.testing.assert_close(m.image_energy(x, labels), m.energy(scale * x, 0, labels))
    xr = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(m.image_energy(xr).sum(), xr)  # differentiable in x (saliency, disagreement)
    assert grad.shape == x.shape and grad.abs().sum() > 0
    for bad in (x[0], "image"):
        with pytest.raises(SamplingError, match=r"image_energy expects images \[N, C, H, W\]"):
            m.image_energy(bad)


def test_drl_has_no_initializer_and_counts_evaluations():
    drl = tiny(DRL, DRLConfig)
    assert drl.initializer is None and drl.config.langevin_steps == 30
    x, trace = drl.generate(None, seeds="0-1", steps=2)
    assert x.shape == (2, 1, 8, 8) and trace.num_steps == 12
    with pytest.raises(SamplingError, match="no initializer"):
        drl.generate(None, seeds="0", init_only=True)
    cdrl = tiny()
    assert cdrl.network_evaluations(15) == 6 * 16 + 1
    assert drl.network_evaluations(30) == 6 * 30 + 1
    assert cdrl.network_evaluations(15, w=1.0) == 2 * (6 * 16 + 1)


def test_init_only_skips_langevin():
    x, trace = tiny().generate("c", seeds="0-1", init_only=True, record_every=1)
    assert trace.num_steps == 0 and len(trace.frames) == 6


def test_training_losses_have_gradients_for_both_networks():
    model = tiny().train().requires_grad_(True)
    x0 = torch.rand(6, 1, 8, 8) * 2 - 1
    out = model.training_losses(x0, torch.tensor([0, 1, 2, 0, 1, 2]), generator=torch.Generator().manual_seed(0))
    (out["ebm_loss"] + out["init_loss"]).backward()
    assert all(p.grad is not None for p in model.ebm.parameters() if p.requires_grad)
    assert model.initializer.unet.out.weight.grad.abs().sum() > 0
    assert torch.isfinite(out["ebm_loss"]) and out["init_loss"] > 0


def test_generate_works_under_no_grad():
    model = tiny()
    with torch.no_grad():
        x, _ = model.generate("a", seeds="0", steps=2)
    y, _ = model.generate("a", seeds="0", steps=2)
    torch.testing.assert_close(x, y)


def test_initializer_can_regress_on_data():
    model = tiny().train().requires_grad_(True)
    x0 = torch.rand(6, 1, 8, 8) * 2 - 1
    out = model.training_losses(x0, torch.tensor([0, 1, 2, 0, 1, 2]), generator=torch.Generator().manual_seed(0), init_target="data")
    out["init_loss"].backward()
    assert model.initializer.unet.out.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        model.training_losses(x0, torch.zeros(6, dtype=torch.long), init_target="bogus")
