"""The device policy, and a check that nothing in the studio hard-codes a device, on a machine without a GPU.

How the check works (``tests/fake_device.py``): models are moved to a stand-in accelerator built from
PyTorch's extension points, a tensor subclass that reports another device (``meta``) while computing
with a CPU tensor inside, under a ``TorchDispatchMode`` that enforces what a CUDA device enforces:
an op may not mix the model's tensors with host tensors (other than scalars and index tensors), a
host generator may not draw a device tensor, and ``.numpy()`` on a device tensor fails. Every
device-to-host copy is counted. Each model's sampler, ``translate``, ``render``, ``classify``, and
every UI handler that runs a model then run on it; a hard-coded device (``torch.zeros(n)`` without
``device=``, a stray ``.to("cpu")`` or ``.cpu()`` mid-chain, a generator on the wrong device) fails
here exactly as it would on a GPU.

Chosen over the two simpler options: running on the CPU proves nothing (every tensor is already on
the CPU), and a ``TorchFunctionMode`` that refused any tensor created off the model's device would
also refuse what the studio does on purpose and a GPU allows: noise drawn from CPU generators and
moved (the seeding policy of ``studio.device``), CPU index tensors and scalars. The ``meta`` device
alone has no data, so chains (finite checks, data-dependent indexing) cannot run on it.

Besides the device rules, the samplers' device-to-host copies must not grow with the number of
steps (images come back once per request, not per step), and handlers return host data only (what
ZeroGPU can pickle back from its worker).
"""
from __future__ import annotations


import pytest
import torch

import studio
from studio.device import available_devices, resolve_device
from studio.errors import StudioError

from fake_device import DeviceLeak, device_tensors, fake_accelerator
from test_bad_inputs import save_tiny_app_checkpoints

# -- the policy ----------------------------------------------------------------------------------------


def test_default_device_order(monkeypatch):
    monkeypatch.delenv("STUDIO_DEVICE", raising=False)
    assert resolve_device() == torch.device("cpu")  # no GPU on these machines
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr("studio.device.full_float32_precision", lambda: None)
    assert resolve_device() == torch.device("cuda")  # CUDA first when there is one
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    monkeypatch.setenv("STUDIO_DEVICE", "cpu")
    assert resolve_device() == torch.device("cpu")  # the variable wins over the default
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("env, arg, message", [
    ("cuda", None, "STUDIO_DEVICE='cuda', but CUDA is not available on this machine. Available here: cpu"),
    (None, "cuda", "device='cuda', but CUDA is not available"),
    (None, "gpu", "device='gpu' is not a device name. Available here: cpu"),
    ("tpu0", None, "STUDIO_DEVICE='tpu0' is not a device name"),
    (None, "meta", "the studio runs on cpu, cuda, mps"),
    (None, 3, "must be a device name"),
])
def test_unavailable_devices_are_clear_errors(monkeypatch, env, arg, message):
    monkeypatch.delenv("STUDIO_DEVICE", raising=False)
    if env:
        monkeypatch.setenv("STUDIO_DEVICE", env)
    with pytest.raises(StudioError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve_device(arg)


def test_cuda_index_beyond_the_gpus_there_are(monkeypatch):
    """``cuda:7`` on a one-GPU machine (simulated: only the counts are read before the index check)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert available_devices() == ["cpu", "cuda:0"]
    with pytest.raises(StudioError, match=r"device='cuda:7', but this machine has 1 GPU\. Available here: cpu, cuda:0\."):
        resolve_device("cuda:7")


def test_load_checks_the_device_before_reading_anything(monkeypatch, tmp_path):
    monkeypatch.setenv("STUDIO_DEVICE", "cuda")
    with pytest.raises(StudioError, match="CUDA is not available"):
        studio.load(tmp_path / "does-not-exist")  # the device error comes first
    monkeypatch.delenv("STUDIO_DEVICE")
    model = studio.load("toy-ring")
    assert next(model.parameters()).device == torch.device("cpu")


def test_the_header_tells_the_truth(monkeypatch):
    from studio.ui.common import device_notice

    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert device_notice().startswith("Running on CPU")
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert "ZeroGPU" in device_notice()


# -- the harness can fail ------------------------------------------------------------------------------


def test_the_stand_in_device_catches_what_a_gpu_would():
    """A host tensor meeting the model's tensors, a host generator drawing a device tensor, and a host
    copy inside a chain (``.to("cpu")`` then back into the model) all fail; moving data is fine."""
    from studio.langevin import fast_paths, langevin, make_generators

    torch.manual_seed(0)
    net = torch.nn.Linear(3, 1).requires_grad_(False)
    # The one-copy-per-chain contract is the fast path's; say so explicitly (in a full-suite run an earlier test
    # left the straightforward path switched on, which copies per step: a test-isolation leak still to find).
    with fake_accelerator() as acc, fast_paths(True):
        acc.to_device(net)
        x0 = torch.zeros(2, 3).to(net.weight.device)
        x, _ = langevin(lambda x: net(x)[:, 0], x0, steps=3, step_size=0.1, noise_std=0.1, generator=make_generators("0-1"))
        # One copy each of the energies, the gradient norms and the summed gradient, at the end of the chain.
        assert x.device == net.weight.device and acc.host_copies == [(3, 2), (3, 2), (2, 3)]
        with pytest.raises(DeviceLeak, match="host tensor of shape"):
            net(torch.zeros(2, 3))
        with pytest.raises(DeviceLeak, match="generator"):
            torch.randn(2, 3, generator=torch.Generator().manual_seed(0), device=net.weight.device)
        with pytest.raises(DeviceLeak, match="host tensor"):
            langevin(lambda x: net(x.to("cpu"))[:, 0], x0, steps=2, step_size=0.1, noise_std=0.0)
        with pytest.raises((TypeError, RuntimeError)):
            x.numpy()  # a GPU tensor must come to the host first
        assert x.cpu().device.type == "cpu" and acc.host_copies[-1] == (2, 3)


def test_list_indices_read_the_right_values_on_the_stand_in():
    """``x[..., [0, 2]]`` builds its index below the dispatcher; it once read garbage (NaN grid coordinates
    that crashed grid_sampler's backward). It must equal the host result, and so must list assignment."""
    host = torch.arange(24.0).reshape(2, 4, 3)
    with fake_accelerator() as acc:
        net = acc.to_device(torch.nn.Linear(1, 1))
        x = host.to(net.weight.device)
        assert torch.equal(x[..., [0, 2]].cpu(), host[..., [0, 2]])
        assert torch.equal(x[[1, 0]].cpu(), host[[1, 0]])
        x[:, [0, 3]] = 0.0
        expected = host.clone()
        expected[:, [0, 3]] = 0.0
        assert torch.equal(x.cpu(), expected)


# -- every sampler -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Tiny random checkpoints of every kind the app has a tab for, plus the shipped toys and evaluator."""
    root = tmp_path_factory.mktemp("ckpts")
    save_tiny_app_checkpoints(root)
    return root


def _on_device(acc, root, name):
    return acc.to_device(studio.load(root / name, device="cpu"))


def _host(tree) -> None:
    assert device_tensors(tree) == [], f"device tensors returned: {device_tensors(tree)}"


def _same_copies(acc_factory, run) -> None:
    """``run(steps)`` makes as many device-to-host copies with 2 steps as with 4: nothing (image, energy or
    gradient norm) is copied per step. (Scalar reads, such as the finite check, are not copies.)"""
    counts = []
    for steps in (2, 4):
        with acc_factory() as acc:
            run(acc, steps)
            counts.append(len(acc.host_copies))
    assert counts[0] == counts[1], f"device-to-host copies grow with the steps: {counts}"


IMG32 = torch.zeros(1, 1, 32, 32)


def test_cdrl_sampler(root):
    with fake_accelerator() as acc:
        cdrl, drl = _on_device(acc, root, "cdrl-fmnist"), _on_device(acc, root, "drl-fmnist")
        x, trace = cdrl.generate("Trouser", seeds="0-1", guidance=1.0, steps=2, record_every=1)
        assert x.device == cdrl.device and trace.frames[0].device.type == "cpu"
        mask = torch.ones(32, 32)
        mask[8:24, 8:24] = 0
        y, _ = cdrl.inpaint(IMG32, mask, seeds="0-1", steps=2)
        z, _ = drl.generate(None, seeds="0", steps=2)
        assert y.device == z.device == cdrl.device
        cdrl.image_energy(IMG32.to(cdrl.device))
        x = x.cpu()
    _same_copies(fake_accelerator, lambda acc, k: _on_device(acc, root, "cdrl-fmnist").generate("Bag", seeds="0-1", steps=k))
    # The same images as on the CPU: the noise comes from the same CPU generators, whatever the device.
    cpu, _ = studio.load(root / "cdrl-fmnist", device="cpu").generate("Trouser", seeds="0-1", guidance=1.0, steps=2, record_every=1)
    assert torch.allclose(cpu, x, atol=1e-5)


def test_cfebm_samplers(root):
    with fake_accelerator() as acc:
        m = _on_device(acc, root, "cfebm-fmnist")
        m.generate(seeds="0-1", steps=2, record_every=1)
        m.generate(seeds="0-1", steps=2, multiscale=True)
        m.denoise(IMG32, seeds="0", steps=2)
        m.inpaint(IMG32, torch.ones(32, 32).index_fill_(0, torch.arange(8, 24), 0), seeds="0-1", steps=2)
        m.ood_score(IMG32.repeat(3, 1, 1, 1))
        t2g = _on_device(acc, root, "cfebm-emoji-t2g")
        size = t2g.config.resolution
        y, trace = t2g.translate(torch.zeros(1, 3, size, size), seeds="0-1", steps=2, record_every=1)
        assert y.device == t2g.net.beta.device and trace.saliency().device.type == "cpu"
    _same_copies(fake_accelerator, lambda acc, k: _on_device(acc, root, "cfebm-fmnist").generate(seeds="0-1", steps=k))


def test_letit_translate(root):
    with fake_accelerator() as acc:
        m = _on_device(acc, root, "letit-emoji")
        r = m.translate(torch.zeros(2, 3, m.config.image_size, m.config.image_size), "t2g", steps=2, record_every=1)
        _host(r)  # a TranslationResult is on the host
        assert len(r.frames) == 3
        m.reconstruct(torch.zeros(1, 3, m.config.image_size, m.config.image_size))
    size = m.config.image_size
    _same_copies(fake_accelerator, lambda acc, k: _on_device(acc, root, "letit-emoji").translate(
        torch.zeros(1, 3, size, size), "g2t", steps=k))


def test_egc_classify_and_generate(root):
    with fake_accelerator() as acc:
        m = _on_device(acc, root, "egc-fmnist")
        x, trace = m.generate("Trouser", seeds="0-1", steps=3, record_every=1)
        assert trace.frames[0].device.type == "cpu" and trace.energies[0].device.type == "cpu"
        probs = m.classify(IMG32.repeat(2, 1, 1, 1))
        assert probs.device == m.device
        m.topk(IMG32)
        m.fgsm_accuracy(IMG32, torch.tensor([1]), 0.1)
        m.predict(IMG32)
    _same_copies(fake_accelerator, lambda acc, k: _on_device(acc, root, "egc-fmnist").generate(None, seeds="0-1", steps=k + 1))


def test_coopflow_sample(root):
    with fake_accelerator() as acc:
        m = _on_device(acc, root, "coopflow-fmnist")
        out = m.sample(seeds="0-1", steps=2, record_every=1)
        assert out.refined.device == out.flow.device == m.device
        m.nll_bits_per_dim(IMG32)
    _same_copies(fake_accelerator, lambda acc, k: _on_device(acc, root, "coopflow-fmnist").sample(seeds="0-1", steps=k))


def test_nerf_render_sample_infer(root):
    with fake_accelerator() as acc:
        m = _on_device(acc, root, "nerf-lebm-shapes")
        z_s, z_a = m.sample_latents(2, seeds="0", steps=2)
        assert z_s.device == m.device
        out = m.render(z_s, z_a, azimuth=30, elevation=20, resolution=16)
        assert out["rgb"].device == m.device
        m.orbit(z_s[:1], z_a[:1], frames=2, resolution=8)
        m.resample(z_s, z_a, "shape", seeds="5")
        z_s2, z_a2, trace = m.prior_trajectory(seeds="0", steps=2, resolution=8)
        _host(trace)
        m.infer(torch.rand(1, 3, 64, 64), azimuth=10, elevation=20, refine_steps=1)
        _on_device(acc, root, "nerf-vae-shapes").sample_latents(1, prior="gaussian")
    _same_copies(fake_accelerator, lambda acc, k: _on_device(acc, root, "nerf-lebm-shapes").sample_latents(1, seeds="0", steps=k))


def test_toys_and_evaluator(root):
    with fake_accelerator() as acc:
        ring = _on_device(acc, root, "toy-ring")
        x, _ = ring.sample(seeds="0-3", steps=3, record_every=1)
        assert x.device == ring.radius.device
        _host(ring.density_grid(n=8))
        ev = _on_device(acc, root, "evaluator-fmnist")
        ev.predict(IMG32.to(next(ev.parameters()).device))
    _same_copies(fake_accelerator, lambda acc, k: _on_device(acc, root, "toy-gaussian-mixture").sample(seeds="0-3", steps=k, record_every=0))


# -- every UI handler that runs a model ----------------------------------------------------------------


@pytest.fixture
def app_on_device(root, monkeypatch):
    """The tabs' models (``cached_model``) loaded onto the stand-in device; yields the accelerator."""
    from studio.ui import cfebm_tab, common

    real_load = studio.load
    with fake_accelerator() as acc:
        monkeypatch.setattr(studio, "load", lambda ref, kind=None, device=None: acc.to_device(real_load(ref, kind=kind, device="cpu")))
        monkeypatch.setenv("STUDIO_CHECKPOINTS", str(root))
        common.cached_model.cache_clear()
        cfebm_tab.reference_energies.cache_clear()
        try:
            yield acc
        finally:
            common.cached_model.cache_clear()
            cfebm_tab.reference_energies.cache_clear()


def _call(handler, *args):
    """A handler's result (a generator handler run to its end), which must hold host data only."""
    out = handler(*args)
    if hasattr(out, "__next__"):
        items = list(out)
        assert items, f"{handler.__name__} yielded nothing"
        for item in items:
            _host(item)
        return items[-1]
    _host(out)
    return out


def test_every_model_handler_runs_on_the_models_device(app_on_device):
    from studio.ui import (cdrl_tab, cfebm_tab, compose_tab, coopflow_tab, egc_tab, inpaint_tab, nerf_tab, playground,
                           saliency_tab, trajectory_tab, translate_tab)

    _call(cdrl_tab.generate, "Trouser", 1.0, 2, 0, 2, True, True, False, True)
    _call(cfebm_tab.generate, "cfebm-fmnist", cfebm_tab.MULTI, 2, 0.02, 0, 2)
    _call(cfebm_tab.denoise, "cfebm-fmnist", "fmnist-test-0002-trouser", None, 0.3, 0)
    example = inpaint_tab.example_names()[0]
    _call(cfebm_tab.inpaint, "cfebm-fmnist", inpaint_tab.load_example(example), "centre square", 2, 2, 0)
    _call(cfebm_tab.ood, "cfebm-fmnist", cfebm_tab.UNIFORM, None, 4, 0)
    for label in inpaint_tab.available_models():
        gallery, note, traces, _ = _call(inpaint_tab.inpaint_editor, label, inpaint_tab.load_example(example), "centre square",
                                         "Bag", 1.0, 2, 2, 0)
        _call(trajectory_tab.open_chain, traces, 0)
    for name, task in [("cdrl-fmnist", "generate"), ("cdrl-fmnist", "inpaint"), ("drl-fmnist", "generate"),
                       ("cfebm-fmnist", "generate"), ("cfebm-fmnist", "inpaint"), ("cfebm-emoji-t2g", "translate"),
                       ("letit-emoji", "translate"), ("letit-emoji", "translate g2t"), ("coopflow-fmnist", "generate"),
                       ("egc-fmnist", "generate"), ("nerf-lebm-shapes", "generate")]:
        _call(trajectory_tab.run, name, task, 0)
    for name, task in [("cfebm-fmnist", "inpaint"), ("cfebm-fmnist", "generate"), ("cfebm-emoji-t2g", "translate"),
                       ("cdrl-fmnist", "inpaint"), ("letit-emoji", "translate")]:
        _call(saliency_tab.saliency, name, task, 0, None, "centre square", 0, 0.6)
    for name in ("cdrl-fmnist", "letit-emoji", "cfebm-fmnist"):
        _call(saliency_tab.disagreement, name, 0, None, 0.6)
    emoji = translate_tab.example_names()[0]
    _call(translate_tab.translate, emoji, None, translate_tab.T2G, translate_tab.LETIT, 2, 0.05, 0.1, 0)
    _call(translate_tab.translate, emoji, None, translate_tab.T2G, translate_tab.PIXEL, 2, 0.05, 0.1, 0)
    _call(coopflow_tab.sample, 2, 0.02, 0, 2, 0.0)
    _call(coopflow_tab.interpolate, 0, 1, 3, 2, 0.02, 0.0)
    _call(egc_tab.classify, None, "fmnist-test-0002-trouser")
    _call(egc_tab.generate, "Trouser", 1.0, 3, 0, 2)
    _call(egc_tab.attack, None, "fmnist-test-0018-bag", 0.1)
    nerf = "nerf-lebm-shapes"
    state, *_ = _call(nerf_tab.sample_object, nerf, nerf_tab.EBM, 0, 30, 20, "RGB", 32)
    _call(nerf_tab.render_view, nerf, state, 30, 20, "RGB", 32)
    _call(nerf_tab.preview_view, nerf, state, 30, 20, "RGB")
    _call(nerf_tab.resample_shape, nerf, nerf_tab.EBM, state, 30, 20, "RGB", 32)
    _call(nerf_tab.resample_appearance, nerf, nerf_tab.EBM, state, 30, 20, "RGB", 32)
    _call(nerf_tab.orbit, nerf, state, 20, 4, "RGB", 32)
    _call(nerf_tab.swap_grid, nerf, nerf_tab.EBM, 0, 2, 30, 20)
    _call(nerf_tab.follow_view, nerf, state, 40, 20, "RGB", 32)
    _call(nerf_tab.prior_changed, nerf, nerf_tab.GAUSSIAN, state, 30, 20, "RGB", 32)
    _call(nerf_tab.model_changed, "nerf-vae-shapes", state, 30, 20, "RGB", 32)
    _call(nerf_tab.infer_object, nerf, nerf_tab.example_names()[0], None, 0, 20, 1, 30, 20, "RGB", 32)
    _call(playground.run_playground, "Ring", 0.02, 0.2, 5, 4, 0)
    for energy in ("Ring", "Mixture of 8 Gaussians", "Double well"):
        _call(playground.compare_samplers, energy, 0.02, 10, 0.1, 2, 4, 0)
    names = studio.load("cdrl-fmnist").config.class_names
    _, _, _, traces, _ = _call(compose_tab.compose_classes, "AND", *["off"] * (len(names) - 1), *[1.0] * len(names), 1.0, 0, 2)
    _call(compose_tab.open_chain, traces, 1)
    assert app_on_device.host_copies  # the handlers did run on the stand-in device


def test_every_model_handler_has_a_gpu_duration():
    """ZeroGPU: each handler that runs a model is wrapped by ``spaces.GPU`` (a no-op here) with a duration sized from
    its caps; the heaviest request (64 CDRL samples at K = 50 with the DRL comparison) asks for the most."""
    from studio.ui import (cdrl_tab, cfebm_tab, compose_tab, coopflow_tab, egc_tab, gpu, inpaint_tab, nerf_tab, playground,
                           saliency_tab, trajectory_tab, translate_tab)

    handlers = [cdrl_tab.generate, cfebm_tab.generate, cfebm_tab.denoise, cfebm_tab.inpaint, cfebm_tab.ood,
                inpaint_tab.inpaint_editor, inpaint_tab.inpaint_image, trajectory_tab.run, saliency_tab.saliency,
                saliency_tab.disagreement, translate_tab.translate, coopflow_tab.sample, coopflow_tab.interpolate,
                egc_tab.classify, egc_tab.generate, egc_tab.attack, nerf_tab.sample_object, nerf_tab.render_view,
                nerf_tab.preview_view, nerf_tab.follow_view,
                nerf_tab.prior_changed, nerf_tab.model_changed, nerf_tab.resample, nerf_tab.orbit, nerf_tab.swap_grid,
                nerf_tab.infer_object, playground.run_playground, playground.compare_samplers, compose_tab.compose_attributes,
                compose_tab.compose_classes]
    missing = [f"{h.__module__}.{h.__name__}" for h in handlers if getattr(h, "gpu_duration", None) is None]
    assert not missing, f"handlers without spaces.GPU: {missing}"
    durations = {f"{h.__module__}.{h.__name__}": h.gpu_duration for h in handlers}
    assert all(gpu.MIN_SECONDS <= d <= gpu.limits.REQUEST_TIMEOUT_SECONDS for d in durations.values()), durations
    assert max(durations.values()) >= cdrl_tab.generate.gpu_duration > nerf_tab.preview_view.gpu_duration == gpu.MIN_SECONDS
    # 64 x (50 + 30 / 2) sample-steps at 7.7 ms, the GIF (4.9 s) and 10 s to attach: 47 s.
    assert cdrl_tab.generate.gpu_duration == 47


def test_spaces_gpu_is_a_no_op_off_zerogpu(monkeypatch):
    """Off ZeroGPU the decorator leaves the handler itself (no worker process, no scheduling)."""
    from studio.ui.gpu import on_gpu

    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)

    def handler(x):
        return x + 1

    assert on_gpu(3.0)(handler) is handler and handler(1) == 2 and handler.gpu_duration == 15
