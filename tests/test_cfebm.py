"""CF-EBM: growth preserves the energy, samplers' shapes, restoration, the training loss."""
import pytest
import torch
import torch.nn.functional as F

from studio.cfebm import CFEBM, CFEBMConfig, noise_schedule
from studio.errors import SamplingError


def tiny(**kw) -> CFEBM:
    torch.manual_seed(0)
    cfg = CFEBMConfig(width=4, steps={"8": 3, "16": 3, "32": 3}, scale_steps=2, **kw)
    return CFEBM(cfg).eval().requires_grad_(False)


def test_expand_at_beta_zero_equals_old_model_on_pooled_input():
    m8 = tiny()
    m16 = m8.expand()
    assert m16.config.resolution == 16 and m16.config.fading and float(m16.net.beta) == 0.0
    x = torch.rand(5, 1, 16, 16) * 2 - 1
    torch.testing.assert_close(m16.energy(x), m8.energy(F.avg_pool2d(x, 2)), atol=1e-5, rtol=1e-5)
    # The finished 8 px stage is frozen into `coarse` and still equals the old model.
    y = torch.rand(3, 1, 8, 8) * 2 - 1
    torch.testing.assert_close(m16.coarse["8"](y), m8.energy(y))
    # A second growth works the same way once the fade is dropped.
    m16.net.beta.fill_(1.0)
    m16b = m16.drop_fade()
    torch.testing.assert_close(m16b.energy(x), m16.energy(x))
    m32 = m16b.expand()
    z = torch.rand(2, 1, 32, 32) * 2 - 1
    torch.testing.assert_close(m32.energy(z), m16b.energy(F.avg_pool2d(z, 2)), atol=1e-5, rtol=1e-5)
    assert sorted(m32.coarse) == ["16", "8"]


def test_beta_blends_between_branches():
    m = tiny().expand()
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    m.net.beta.fill_(0.0)
    e0 = m.energy(x)
    m.net.beta.fill_(1.0)
    e1 = m.energy(x)
    assert not torch.allclose(e0, e1)


def test_single_and_multiscale_sampler_shapes_and_seeds():
    m = tiny().expand()
    m.net.beta.fill_(1.0)
    m = m.drop_fade()
    x, trace = m.generate("0-2", record_every=1, final_steps=0)  # the trained chain alone (no clean ending)
    assert x.shape == (3, 1, 16, 16) and trace.num_steps == 3 and x.abs().max() <= 1
    x1, _ = m.generate("1", final_steps=0)
    torch.testing.assert_close(x[1:2], x1)
    xm, tm = m.generate("0-1", multiscale=True, record_every=1, final_steps=0)
    assert xm.shape == (2, 1, 16, 16) and tm.num_steps == 4 and [s[0] for s in tm.segments] == ["8px", "16px"]


def test_inpaint_keeps_known_pixels_and_denoise_runs():
    m = tiny()
    img = torch.rand(1, 8, 8) * 2 - 1
    mask = torch.ones(8, 8)
    mask[2:6, 2:6] = 0
    x, _ = m.inpaint(img, mask, seeds="0-2")
    known = mask.bool()
    assert torch.equal(x[:, 0][:, known], img[0][known].expand(3, -1))
    y, _ = m.denoise(img, seeds="0-1")
    assert y.shape == (2, 1, 8, 8)
    with pytest.raises(SamplingError, match="Mask must be 0/1"):
        m.inpaint(img, torch.ones(4, 4))
    with pytest.raises(SamplingError, match="NaN"):
        m.denoise(torch.full((1, 8, 8), float("nan")))
    with pytest.raises(SamplingError, match="shape"):
        m.denoise(torch.zeros(3, 8, 8))


def test_noise_schedule_decays_to_zero():
    f = noise_schedule(0.02, 10)
    assert f(0) == pytest.approx((0.02 - 0.02 / 11) ** 0.5) and f(9) == pytest.approx((0.02 - 0.01) ** 0.5)
    assert f(10) == 0.0


def test_training_loss_gradients_and_smooth_sampling():
    m = tiny().expand().train().requires_grad_(True)
    data = torch.rand(4, 1, 16, 16) * 2 - 1
    out = m.training_loss(data, beta=0.5, generator=torch.Generator().manual_seed(0))
    out["loss"].backward()
    assert int(out["coarse_steps"]) == 2  # round(3 * (1 - 0.5))
    assert m.net.from_rgb.weight.grad is not None and m.net.fade.weight.grad is not None
    assert all(p.grad is None for p in m.coarse.parameters())  # frozen stages are not trained
    assert float(m.net.beta) == 0.5


def test_ood_score_is_negative_energy():
    m = tiny()
    x = torch.rand(3, 1, 8, 8)
    torch.testing.assert_close(m.ood_score(x), -m.energy(x))
