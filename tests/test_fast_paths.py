"""The engine's fast paths agree with the straightforward path, and each one actually does its job."""
import importlib
import inspect

import pytest
import torch
from torch import nn

from studio import runtime
from studio.cdrl import CDRL, CDRLConfig
from studio.cfebm import CFEBM, CFEBMConfig
from studio.errors import SamplingError, StudioError
from studio.langevin import fast_paths, langevin
from tools.bench import naive_cdrl_generate

engine = importlib.import_module("studio.langevin")  # the module (``studio.langevin`` is also the function)


def _frozen(build) -> nn.Module:
    """A tiny seeded model with non-trivial weights, frozen like ``studio.load`` returns it."""
    torch.manual_seed(0)
    model = build()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))  # zero-initialised gains would make the EBM trivial
    return model.eval().requires_grad_(False)


@pytest.fixture
def cdrl():
    return _frozen(lambda: CDRL(CDRLConfig(ebm_width=8, init_width=8, temb_dim=16, langevin_steps=3)))


def _run(model, fast: bool):
    with fast_paths(fast):
        return model.generate("Trouser", seeds="0-3", guidance=1.0, steps=3, record_every=1)


def test_cdrl_fast_path_matches_straightforward_path(cdrl):
    slow_x, slow = _run(cdrl, False)
    assert not getattr(cdrl.ebm, "_studio_channels_last", False)  # the plain path leaves the layout alone
    fast_x, fast = _run(cdrl, True)
    assert cdrl.ebm.inp.parametrizations.weight.original.is_contiguous(memory_format=torch.channels_last)
    assert getattr(cdrl.initializer, "_studio_channels_last", False)  # the initializer follows the same policy
    # Channels-last kernels sum in a different (equally valid) float32 order: after 6 levels x 3 steps a
    # pixel can differ by ~2e-5, depending on the thread count; a real divergence would be orders larger.
    torch.testing.assert_close(fast_x, slow_x, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(fast.energy_matrix(), slow.energy_matrix(), atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(fast.grad_norm_matrix(), slow.grad_norm_matrix(), atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(fast.grad_sum, slow.grad_sum, atol=1e-3, rtol=1e-4)
    assert fast.frame_steps == slow.frame_steps and fast.frame_labels == slow.frame_labels
    for a, b in zip(fast.frames, slow.frames):
        assert a.device.type == "cpu" and a.is_contiguous()
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    assert fast_x.is_contiguous() and fast.grad_sum.is_contiguous()
    assert all(not p.requires_grad and p.grad is None for p in cdrl.parameters())
    # Same seeds, same samples, whichever path ran first.
    torch.testing.assert_close(_run(cdrl, False)[0], fast_x, atol=1e-4, rtol=1e-4)


def test_cfebm_fast_path_with_clamp_and_mask_matches():
    model = _frozen(lambda: CFEBM(CFEBMConfig(width=4, resolution=16, base_resolution=8, coarse_resolutions=[8])))
    image, mask = torch.rand(1, 1, 16, 16) * 2 - 1, (torch.rand(16, 16) > 0.5).float()
    with fast_paths(False):
        slow_x, slow = model.inpaint(image, mask, seeds="0-2", steps=4, record_every=2)
        slow_ms, _ = model.generate(seeds="0-1", multiscale=True, steps=3)
    fast_x, fast = model.inpaint(image, mask, seeds="0-2", steps=4, record_every=2)
    fast_ms, _ = model.generate(seeds="0-1", multiscale=True, steps=3)
    torch.testing.assert_close(fast_x, slow_x, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast.grad_sum, slow.grad_sum, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(fast_ms, slow_ms, atol=1e-5, rtol=1e-5)
    assert torch.equal(fast_x[..., mask.bool()], image.expand(3, -1, -1, -1)[..., mask.bool()])


def _sn_layers(module: nn.Module) -> list[nn.Module]:
    return [m.parametrizations.weight[0] for m in module.modules() if hasattr(m, "parametrizations")]


def test_spectral_norm_is_computed_once_per_chain(cdrl):
    calls = []
    layers = _sn_layers(cdrl.ebm)
    handles = [layer.register_forward_hook(lambda *_: calls.append(1)) for layer in layers]
    y = torch.randn(2, 1, 32, 32)
    t, labels = torch.zeros(2, dtype=torch.long), torch.tensor([1, 2])
    try:
        cdrl.refine(y, y, t, labels, steps=5, w=1.0)
        assert len(calls) == len(layers)  # once per layer for the whole chain
        calls.clear()
        with fast_paths(False):
            cdrl.refine(y, y, t, labels, steps=5, w=1.0)
        assert len(calls) == 5 * len(layers)  # the straightforward path: every step
    finally:
        for h in handles:
            h.remove()


def test_guidance_is_one_batched_call_per_step(cdrl):
    shared, doubled = [], []
    hooks = [cdrl.ebm.inp.register_forward_hook(lambda _m, args, _out: shared.append(args[0].shape[0])),
             cdrl.ebm.head.register_forward_hook(lambda _m, args, _out: doubled.append(args[0].shape[0]))]
    y = torch.randn(3, 1, 32, 32)
    try:
        cdrl.refine(y, y, torch.zeros(3, dtype=torch.long), torch.tensor([1, 2, 3]), steps=4, w=1.0)
        assert doubled == [6] * 4  # cond + null for 3 samples in one call per step
        assert shared == [3] * 4  # the label-free input layer runs once for both halves
        shared.clear(), doubled.clear()
        cdrl.refine(y, y, torch.zeros(3, dtype=torch.long), torch.zeros(3, dtype=torch.long), steps=2, w=1.0)
        assert doubled == [3] * 2  # all unconditional: guidance is a no-op, no doubled batch
    finally:
        for h in hooks:
            h.remove()


def test_naive_baseline_is_the_same_algorithm(cdrl):
    fast_x, _ = cdrl.generate("Trouser", seeds="0-3", guidance=1.0, steps=3)
    naive = naive_cdrl_generate(cdrl, "Trouser", "0-3", 1.0, 3, power_iteration=False)
    torch.testing.assert_close(naive, fast_x, atol=1e-4, rtol=1e-4)
    naive_pi = naive_cdrl_generate(cdrl, "Trouser", "0-3", 1.0, 3)  # power iterations move sigma a little
    assert torch.isfinite(naive_pi).all() and (naive_pi - fast_x).abs().mean() < 0.05
    assert all(p.grad is None and not p.requires_grad for p in cdrl.parameters())  # it ran on a copy


@pytest.mark.parametrize("stride, size", [(1, 8), (2, 9), (2, 10)])
def test_one_channel_conv_input_gradient(stride, size):
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 5, 3, stride=stride, padding=1).requires_grad_(False)
    x = torch.randn(2, 1, size, size, requires_grad=True)
    out = conv(x)
    g = torch.randn_like(out)
    (ref,) = torch.autograd.grad(out, x, g)
    engine.channels_last(conv)
    x2 = x.detach().requires_grad_(True)
    fast_out = conv(x2)
    assert fast_out.is_contiguous(memory_format=torch.channels_last)
    (fast,) = torch.autograd.grad(fast_out, x2, g)
    torch.testing.assert_close(fast_out, out, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-5)


def test_trainable_modules_keep_their_layout_and_parameters():
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.SiLU(), nn.Conv2d(4, 1, 3, padding=1))
    params = list(net.parameters())
    langevin(lambda x: net(x).flatten(1).sum(1), torch.randn(2, 1, 8, 8), steps=2, step_size=0.1, noise_std=0.0,
             modules=[net])
    assert [id(p) for p in net.parameters()] == [id(p) for p in params]  # an optimizer would still hold them
    assert net[0].weight.is_contiguous() and not getattr(net, "_studio_channels_last", False)


def test_deferred_divergence_check_names_the_first_bad_step(monkeypatch):
    monkeypatch.setattr(engine, "_check_every", lambda device, fast: 4)
    seen = []
    energy = lambda x: (x**2).sum(1) * (float("nan") if len(seen) >= 2 else 1.0)  # noqa: E731
    with pytest.raises(SamplingError, match="diverged at step 2: .*samples \\[0, 1\\]"):
        langevin(energy, torch.ones(2, 3), steps=10, step_size=0.1, noise_std=0.0, callback=seen.append)
    assert len(seen) == 3  # noticed at the check after step 3 (before its callback), not after all 10 steps


def test_user_errors_keeps_generators_streaming():
    import gradio as gr

    from studio.ui.common import user_errors

    @user_errors
    def stream(n):
        yield 1
        raise SamplingError("bad")

    assert inspect.isgeneratorfunction(stream)
    gen = stream(1)
    assert next(gen) == 1
    with pytest.raises(gr.Error, match="bad"):
        next(gen)


def test_thread_policy(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("STUDIO_THREADS", raising=False)
    monkeypatch.setattr(runtime, "usable_cores", lambda: 8)
    monkeypatch.setattr(runtime, "busy_cores", lambda: 2)
    before = torch.get_num_threads()
    try:
        assert runtime.default_threads(jobs=2) == 3 and runtime.default_threads() == 6
        monkeypatch.setattr(runtime, "busy_cores", lambda: 9)
        assert runtime.configure_threads(jobs=2) == 1 == torch.get_num_threads()  # a saturated machine: one thread
        assert runtime.configure_threads(dedicated=True) == 8  # a benchmark ignores the (lagging) load average
        monkeypatch.setenv("STUDIO_THREADS", "2")
        assert runtime.configure_threads(jobs=4) == 2
        monkeypatch.setenv("STUDIO_THREADS", "two")
        with pytest.raises(StudioError, match="STUDIO_THREADS"):
            runtime.configure_threads()
        monkeypatch.delenv("STUDIO_THREADS")
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        torch.set_num_threads(1)
        assert runtime.configure_threads() == 1  # an explicit OMP_NUM_THREADS is left as torch applied it
    finally:
        torch.set_num_threads(before)
