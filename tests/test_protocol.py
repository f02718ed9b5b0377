"""The model protocol (studio.protocol) on tiny seeded models of every method: what each declares, one result type,
the shared parameter meanings and their conversions to each paper's parameterisation, one seed rule, the callback and
the image-space energies."""
import math

import pytest
import torch

from studio.cdrl import CDRL, CDRLConfig, DRL, DRLConfig
from studio.cfebm import CFEBM, CFEBMConfig
from studio.coopflow import CoopFlow, CoopFlowConfig
from studio.egc import EGC, EGCConfig
from studio.errors import SamplingError
from studio.langevin import Trace
from studio.nerf_lebm import NeRFLEBM, NeRFLEBMConfig
from studio.protocol import TASKS, SampleOutput, StudioModel, TaskSpec, offers, seeds_for_images
from studio.saliency import disagreement_map, image_energy_gradient, pixel_saliency

from test_app_nerf import TINY as TINY_NERF
from test_app_saliency import tiny_letit, tiny_translation


def _seeded(cls, config, seed=0):
    torch.manual_seed(seed)
    return cls(config).eval()


def cdrl():
    return _seeded(CDRL, CDRLConfig(ebm_width=4, init_width=4, temb_dim=16, langevin_steps=2, num_levels=3))


def cfebm():
    return _seeded(CFEBM, CFEBMConfig(width=4, resolution=8, steps={"8": 3}, final_steps=2))


def egc():
    return _seeded(EGC, EGCConfig(image_size=8, widths=[4, 8], feat_dim=4, emb_dim=16, num_timesteps=20, sample_steps=3))


def coopflow():
    model = _seeded(CoopFlow, CoopFlowConfig(flow_steps=1, flow_hidden=8, ebm_width=2, ebm_head=4, langevin_steps=3))
    with torch.no_grad():  # an energy that visibly moves the chain
        for p in model.ebm.parameters():
            p.mul_(30.0)
    return model


def test_sample_output_is_the_pair_it_replaces():
    x, trace = torch.zeros(2, 1, 4, 4), Trace()
    out = SampleOutput(x, trace, {"proposals": x + 1})
    images, t = out
    assert images is x and t is trace and out[0] is x and out[1] is trace and out[:1] == (x,) and len(out) == 2
    trace.grad_sum = torch.arange(32.0).view(2, 1, 4, 4)
    torch.testing.assert_close(out.saliency(), trace.saliency())
    own = torch.rand(2, 4, 4)
    assert SampleOutput(x, trace, {"saliency": own}).saliency() is own


def test_what_each_method_declares():
    tasks = lambda m: {n: (s.task, s.inputs, s.saliency, s.levels) for n, s in m.tasks().items()}  # noqa: E731
    image, both = frozenset({"image"}), frozenset({"image", "mask"})
    assert tasks(cdrl()) == {"generate": ("generate", frozenset(), True, 3), "inpaint": ("inpaint", both, True, 3),
                             "compose": ("compose", frozenset({"concepts"}), False, 3)}
    assert "init_only" in cdrl().tasks()["generate"].params
    assert "init_only" not in _seeded(DRL, DRLConfig(ebm_width=4, temb_dim=16, langevin_steps=2)).tasks()["generate"].params
    assert tasks(cfebm()) == {"generate": ("generate", frozenset(), True, 1), "inpaint": ("inpaint", both, True, 1),
                              "denoise": ("denoise", image, False, 1)}
    translate = tiny_translation().tasks()["translate"]
    assert translate.domains == ("twitter", "google") and translate.label == "translate (twitter -> google)"
    assert list(tiny_letit().tasks()) == ["translate", "translate g2t"] and list(tiny_letit(("g2t",)).tasks()) == ["translate g2t"]
    assert tiny_letit(()).tasks() == {} and tiny_letit(()).image_energy_spec(tiny_letit(()).config) is None
    assert list(egc().tasks()) == list(coopflow().tasks()) == ["generate"]
    assert _seeded(NeRFLEBM, NeRFLEBMConfig(**TINY_NERF)).tasks()["generate"].chain
    assert not _seeded(NeRFLEBM, NeRFLEBMConfig(prior="gaussian", **TINY_NERF)).tasks()["generate"].chain
    for model in (cdrl(), cfebm(), egc(), coopflow(), tiny_letit(), tiny_translation()):
        assert all(s.task in TASKS for s in model.tasks().values())
        assert offers(type(model), model.config)[1] is not None  # every image method has an image-space energy
    assert offers(NeRFLEBM, NeRFLEBMConfig(**TINY_NERF))[1] is None and offers(torch.nn.Linear, None) == ([], None)
    with pytest.raises(ValueError, match="not one of"):
        TaskSpec("paint", "paint")


@pytest.mark.parametrize("make", [cdrl, cfebm, egc, coopflow], ids=["cdrl", "cfebm", "egc", "coopflow"])
def test_run_generate_is_the_sampler_and_the_callback_hears_every_step(make):
    model = make()
    steps = []
    out = model.run("generate", seeds="0-1", record_every=1, callback=lambda info: steps.append(info["x"].shape))
    assert isinstance(out, SampleOutput) and out.images.shape[0] == 2 and len(steps) == out.trace.num_steps > 0
    images, _ = model.generate(seeds="0-1")
    torch.testing.assert_close(out.images, images, rtol=0, atol=0)
    with pytest.raises(SamplingError, match="takes .*; got colour"):
        model.run("generate", colour=1)
    with pytest.raises(SamplingError, match="not 'paint'"):
        model.run("paint")


def test_coopflow_step_size_is_the_engines_and_noise_the_fraction_of_delta():
    model = coopflow()
    spec = model.tasks()["generate"]
    assert spec.params["step_size"] == pytest.approx(model.config.step_size ** 2 / 2)
    out = model.run("generate", seeds="0-1", step_size=0.02, noise=0.5)
    native = model.sample("0-1", step_size=math.sqrt(0.04), noise=0.5)
    torch.testing.assert_close(out.images, native.refined, rtol=0, atol=1e-6)
    torch.testing.assert_close(out.extras["proposals"], native.flow)
    assert "flow's proposal" in out.notes[0] and "3 Langevin refinement steps" in out.notes[0]


def test_letit_noise_is_the_fraction_of_proper_langevin():
    model = tiny_letit()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    out = model.run("translate g2t", image=x, seeds="4", step_size=0.08, noise=0.5, record_every=2)
    native = model.translate(x, "g2t", seeds="4-5", step_size=0.08, noise=0.5 * math.sqrt(0.16), record_every=2)
    torch.testing.assert_close(out.images, native.outputs)
    # The Trace's frames are images (decoded), the latent chain is kept, and the saliency is the decoded difference.
    assert out.trace.frames[0].shape == (2, 3, 16, 16) and out.extras["latent_trace"].frames[0].shape[1:] == (2, 8, 8)
    torch.testing.assert_close(out.saliency(), pixel_saliency(native.outputs - native.reconstructions))
    spec = model.tasks()["translate"]
    assert spec.params["noise"] == pytest.approx(0.1 / math.sqrt(2 * 0.05))  # the stored std 0.1 at step 0.05


def test_cfebm_noise_is_eta0_and_cdrl_noise_a_switch():
    model = cfebm()
    assert model.tasks()["generate"].params["noise"] == pytest.approx(math.sqrt(0.02 / 2))
    out = model.run("generate", seeds="0-1", noise=0.3)
    torch.testing.assert_close(out.images, model.generate(seeds="0-1", eta0=2 * 0.3**2)[0])
    m = cdrl()
    torch.testing.assert_close(m.run("generate", seeds="0", noise=0)[0], m.generate(seeds="0", noise=False)[0], rtol=0, atol=0)
    torch.testing.assert_close(m.run("generate", seeds="0", noise=True)[0], m.generate(seeds="0")[0], rtol=0, atol=0)
    with pytest.raises(SamplingError, match="1 \\(on\\) or 0 \\(off\\)"):
        m.run("generate", noise=0.5)
    e = egc()
    torch.testing.assert_close(e.run("generate", seeds="0", noise=1.0)[0], e.generate(seeds="0", eta=1.0)[0], rtol=0, atol=0)


def test_one_seed_rule_for_images():
    assert seeds_for_images([7], 3) == [7, 8, 9] and seeds_for_images([1, 2], 1) == [1, 2]
    with pytest.raises(SamplingError, match="3 images for 2 seeds"):
        seeds_for_images([1, 2], 3)
    with pytest.raises(SamplingError, match="largest seed"):
        seeds_for_images([2**63 - 2], 3)
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    model = tiny_translation()
    together = model.translate(x, seeds="5")[0]  # CF-EBM's translate refused one seed for several images before
    alone = torch.cat([model.translate(x[i : i + 1], seeds=str(5 + i))[0] for i in range(3)])
    torch.testing.assert_close(together, alone)
    letit = tiny_letit()
    torch.testing.assert_close(letit.run("translate", image=x, seeds="5").images, letit.translate(x, seeds="5-7").outputs)
    known = torch.ones(8, 8)
    known[2:6, 2:6] = 0
    small = cfebm()
    out = small.run("inpaint", image=torch.zeros(2, 1, 8, 8), mask=known, seeds=3)
    assert (out.images[:, :, known.bool()] == 0).all() and not torch.equal(out.images[0], out.images[1])
    with pytest.raises(SamplingError, match="needs a mask"):
        small.run("inpaint", image=torch.zeros(1, 8, 8))


def test_run_of_every_other_task():
    m = cdrl()
    out = m.run("compose", concepts=[("Trouser", 1), ("Dress", -1)], seeds="0-1", steps=1)
    torch.testing.assert_close(out.images, m.compose([("Trouser", 1), ("Dress", -1)], seeds="0-1", steps=1)[0])
    known = torch.ones(32, 32)
    known[8:24, 8:24] = 0
    image = torch.rand(1, 32, 32) * 2 - 1
    out = m.run("inpaint", image=image, mask=known, seeds="0-1", classes="Bag", guidance=1.0, steps=1)
    assert torch.equal(out.images[:, :, known.bool()], image.expand(2, 1, 32, 32)[:, :, known.bool()])
    noisy = torch.rand(1, 1, 8, 8) * 2 - 1
    torch.testing.assert_close(cfebm().run("denoise", image=noisy, seeds="2")[0], cfebm().denoise(noisy, seeds="2")[0])
    nerf = _seeded(NeRFLEBM, NeRFLEBMConfig(**TINY_NERF))
    out = nerf.run("generate", seeds="1", record_every=1, resolution=16, max_frames=2)
    assert out.images.shape == (1, 3, 16, 16) and len(out.trace.frames) == 2 and out.trace.num_steps == 3
    z_s, z_a = nerf.sample_latents(seeds="1")
    torch.testing.assert_close(out.extras["z_s"], z_s) and torch.testing.assert_close(out.extras["z_a"], z_a)


@pytest.mark.parametrize("make", [cdrl, cfebm, egc, coopflow, tiny_letit, tiny_translation],
                         ids=["cdrl", "cfebm", "egc", "coopflow", "letit", "cfebm-t2g"])
def test_image_energy_gradient_and_disagreement(make):
    model = make()
    c = model.config
    size = getattr(c, "image_size", None) or c.resolution
    x = torch.rand(c.channels, size, size) * 2 - 1
    with torch.no_grad():  # a caller's no_grad does not stop the gradient with respect to the image
        energy, grad = image_energy_gradient(model, x)
    h = 1e-3 * grad / grad.norm()
    with torch.no_grad():
        here, lower = (float(model.image_energy(y[None])[0]) for y in (x, x - h))
    assert grad.shape == x.shape and math.isfinite(energy) and energy == pytest.approx(here, rel=1e-4)
    assert lower < energy  # a small step down the gradient lowers E
    raw, shown, _ = disagreement_map(model, x)
    torch.testing.assert_close(raw, grad.pow(2).sum(0).sqrt())
    assert shown.min() == 0 and shown.max() == 1 and all(p.grad is None for p in model.parameters())


def test_a_kind_outside_the_protocol_offers_nothing_and_defaults_hold():
    class Plain(StudioModel):
        pass

    assert Plain.task_specs(None) == [] and Plain.image_energy_spec(None) is None and Plain.display_name() == "Plain"
