"""CF-EBM's sampler options: the clean (noise-free) ending and the multi-scale chain's per-scale steps and blend."""
import pytest
import torch
import torch.nn.functional as F

from studio.cfebm import CFEBM, CFEBMConfig
from studio.errors import SamplingError
from studio.langevin import make_generators


def grown(**kw) -> CFEBM:
    """A tiny CF-EBM grown 8 -> 16 (one frozen coarse stage)."""
    torch.manual_seed(0)
    m = CFEBM(CFEBMConfig(width=4, steps={"8": 3, "16": 3}, scale_steps=2, **kw)).expand()
    m.net.beta.fill_(1.0)
    return m.drop_fade().eval().requires_grad_(False)


def test_clean_ending_is_gradient_descent_from_the_chains_end_and_a_function_of_the_seed():
    m = grown(final_steps=3)
    x, trace = m.generate("0-1", record_every=1)
    assert trace.num_steps == 3 + 3 and [s[0] for s in trace.segments] == ["16px", "clean"]
    # By hand: the noisy chain's last frame, then three steps x <- clamp(x - grad E(x)) with no noise.
    y = trace.frames[3].clone()
    for _ in range(3):
        y.requires_grad_(True)
        (g,) = torch.autograd.grad(m.energy(y).sum(), y)
        y = (y.detach() - m.config.grad_step * g).clamp(-1, 1)
    torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(trace.frames[-1], x)
    # The last frames depend only on the seed: the same seed alone, or in another batch, gives them again.
    again, trace2 = m.generate("1", record_every=1)
    torch.testing.assert_close(again, x[1:])
    for a, b in zip(trace.frames[-3:], trace2.frames[-3:]):
        torch.testing.assert_close(a[1:], b)


def test_final_steps_zero_is_the_trained_sampler_and_the_default_comes_from_the_config():
    m = grown(final_steps=2)
    plain, t0 = m.generate("0-1", final_steps=0)
    assert t0.num_steps == 3 and not t0.segments  # exactly the chain the model was trained with
    clean, t2 = m.generate("0-1")
    assert t2.num_steps == 5 and not torch.allclose(plain, clean)
    with pytest.raises(SamplingError, match="final_steps"):
        m.generate("0", final_steps=-1)


def test_multiscale_chain_records_every_scale_and_takes_per_scale_steps():
    m = grown(final_steps=1)
    x, trace = m.generate("0-2", multiscale=True, record_every=1)
    assert x.shape == (3, 1, 16, 16) and x.abs().max() <= 1
    assert [s[0] for s in trace.segments] == ["8px", "16px", "clean"] and trace.num_steps == 2 + 2 + 1
    assert [f.shape[-1] for f in trace.frames] == [8, 8, 8, 16, 16, 16, 16, 16]  # per-scale frames at their resolution
    # Per-scale steps: 0 at the fine scale means "upsample only", then the clean ending.
    y, t = m.generate("0-2", multiscale=True, steps=[2, 0], final_steps=0)
    coarse, _ = m.generate("0-2", multiscale=True, steps=[2, 0], final_steps=0)
    torch.testing.assert_close(y, coarse)
    assert t.num_steps == 2 and y.shape[-1] == 16
    # The upsampled coarse sample is nearest-neighbour: 2x2 blocks.
    torch.testing.assert_close(y, F.interpolate(F.avg_pool2d(y, 2), scale_factor=2, mode="nearest"))
    with pytest.raises(SamplingError, match="one step count per scale"):
        m.generate("0", multiscale=True, steps=[1, 2, 3])
    with pytest.raises(SamplingError, match="blend"):
        m.generate("0", multiscale=True, blend=1.5)


def test_blend_mixes_fresh_noise_into_the_upsampled_sample():
    m = grown()
    plain, _ = m.generate("0", multiscale=True, steps=[2, 0], final_steps=0, blend=0.0)
    mixed, _ = m.generate("0", multiscale=True, steps=[2, 0], final_steps=0, blend=0.6)
    assert not torch.allclose(plain, mixed)
    # With blend b the start of the fine scale is sqrt(1 - b^2) * up(x) + b * U(-1, 1): its spread grows with b.
    assert float(mixed.std()) != pytest.approx(float(plain.std()), abs=1e-4)


def test_multiscale_fraction_starts_training_chains_where_the_multiscale_sampler_hands_over():
    m = grown(final_steps=0)
    m.net.requires_grad_(True)
    gen = torch.Generator().manual_seed(3)
    x0, coarse_steps = m.initial_chain_state(4, 1.0, gen, multiscale_fraction=0.5)
    assert x0.shape == (4, 1, 16, 16) and coarse_steps == 2  # the 8px stage's default multi-scale steps
    # The first half is the sampler's hand-over for the per-chain seeds drawn from the step's generator ...
    replay = torch.Generator().manual_seed(3)
    torch.rand(4, 1, 16, 16, generator=replay)  # the noise init is drawn first
    seeds = [int(v) for v in torch.randint(0, 2**62, (2,), generator=replay)]
    start, trace = m.multiscale_start(make_generators(seeds), [2, 2])
    torch.testing.assert_close(x0[:2], start)
    assert [s[0] for s in trace.segments] == ["8px"]
    # ... so a multi-scale sample is that start followed by the fine scale's chain, and the fine stage's
    # training negatives meet exactly the states the sampler produces.
    sample, _ = m.generate(",".join(map(str, seeds)), multiscale=True, steps=[2, 0])
    torch.testing.assert_close(sample, start)
    # The other half is the usual U(-1, 1) start; fraction 0 is the original loss.
    assert not torch.allclose(x0[2:], F.interpolate(F.avg_pool2d(x0[2:], 2), scale_factor=2, mode="nearest"))
    out = m.training_loss(torch.rand(4, 1, 16, 16) * 2 - 1, generator=torch.Generator().manual_seed(3), multiscale_fraction=0.5)
    out["loss"].backward()
    assert int(out["coarse_steps"]) == 2 and all(p.grad is None for p in m.coarse.parameters())
