"""LETIT's on-manifold check (re-encode PSNR) and the manifold projection z <- Enc(Dec(z)) of the latent chain."""
import math

import pytest
import torch

import studio
from studio.errors import SamplingError
from studio.hub import ModelCard, save_checkpoint
from studio.letit import LETIT, LETITConfig
from studio.metrics import psnr
from test_letit import SAMPLER, emoji_data, tiny  # noqa: F401 (emoji_data is a fixture)


def constant_decoder(model: LETIT, colour: tuple[float, float, float]) -> LETIT:
    """Zero every decoder weight and set the output bias: Dec(z) is the flat ``colour`` image for any z."""
    for p in model.decoder.parameters():
        p.data.zero_()
    model.decoder.out.bias.data.copy_(torch.tensor(colour))
    return model


def test_reencode_psnr_equals_the_hand_computed_value():
    model = constant_decoder(tiny(), (0.2, -0.4, 0.0))
    images = torch.stack([torch.full((3, 16, 16), 0.5), torch.zeros(3, 16, 16)])
    # Dec(Enc(x)) is the flat (0.2, -0.4, 0.0) image, so the per-image MSE is the mean over channels of the squared
    # differences: (0.3^2 + 0.9^2 + 0.5^2) / 3 = 0.38333 and (0.2^2 + 0.4^2 + 0^2) / 3 = 0.066667; the range is 2.
    expected = torch.tensor([10 * math.log10(4 / 0.383333333), 10 * math.log10(4 / 0.0666666667)])
    got = model.reencode_psnr(images)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
    assert abs(float(got[0]) - 10.1848) < 1e-3 and abs(float(got[1]) - 17.7815) < 1e-3
    torch.testing.assert_close(model.reencode_psnr(images, batch=1), got)  # batching changes nothing
    with pytest.raises(SamplingError, match="RGB 16x16"):
        model.reencode_psnr(torch.zeros(2, 3, 8, 8))


def test_projection_changes_the_trajectory_and_leaves_a_near_fixed_point():
    model = tiny()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    plain = model.translate(x, "t2g", steps=6, seeds="3-4", record_every=1)
    projected = model.translate(x, "t2g", steps=6, seeds="3-4", record_every=1, project_every=2)
    assert projected.project_every == 2 and plain.project_every == 0
    # The first segment is the same chain; after the first projection the trajectory differs.
    e_plain, e_proj = plain.energies(), projected.energies()
    assert e_proj.shape == e_plain.shape == (6, 2)
    torch.testing.assert_close(e_proj[:2], e_plain[:2])
    assert not torch.allclose(e_proj[2:], e_plain[2:])
    assert (projected.latents - plain.latents).abs().max() > 0.1
    # Segments and frames: one frame per step (taken after the projections), the last one the output.
    assert [s[1:] for s in projected.trace.segments] == [(0, 2), (2, 4), (4, 6)]
    assert projected.frame_steps == list(range(7)) and projected.trace.frame_labels[2] == "step 2 projected"
    torch.testing.assert_close(projected.trace.frames[-1], projected.latents)
    torch.testing.assert_close(projected.frames[-1], projected.outputs)
    # The latent shift counts the jumps the projections make, so it is at least the recorded path's length.
    path = torch.stack(projected.trace.frames)
    assert (projected.latent_shift >= (path[1:] - path[:-1]).abs().sum(0) - 1e-5).all()
    # The output is a near fixed point of the autoencoder: projecting once more barely moves it.
    again = model.project(projected.latents)
    assert (again - projected.latents).abs().max() < 0.02 * (model.project(plain.latents) - plain.latents).abs().max()
    assert model.reencode_psnr(projected.outputs).min() > model.reencode_psnr(plain.outputs).max() + 20
    # k >= steps: one projection, at the end, of the plain chain's last state.
    end = model.translate(x, "t2g", steps=6, seeds="3-4", project_every=6)
    torch.testing.assert_close(end.energies(), e_plain)
    torch.testing.assert_close(end.latents, model.project(plain.latents))


def test_a_segmented_chain_is_the_same_chain_when_the_projection_does_nothing(monkeypatch):
    """The per-sample generators carry on across segments: with an identity projection the chain, its
    trace and its latent shift equal one long langevin call's, for noise > 0."""
    model = tiny()
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    one = model.translate(x, "g2t", steps=7, noise=0.3, seeds="0-2", record_every=2)
    monkeypatch.setattr(model, "project", lambda z: z)
    split = model.translate(x, "g2t", steps=7, noise=0.3, seeds="0-2", record_every=2, project_every=3)
    torch.testing.assert_close(split.latents, one.latents)
    torch.testing.assert_close(split.energies(), one.energies())
    torch.testing.assert_close(split.latent_shift, one.latent_shift)
    torch.testing.assert_close(split.trace.grad_sum, one.trace.grad_sum)
    assert split.frame_steps == one.frame_steps == [0, 2, 4, 6, 7]
    torch.testing.assert_close(torch.stack(split.trace.frames), torch.stack(one.trace.frames))


def test_projection_default_comes_from_the_config_and_bad_values_are_clear():
    model = tiny()
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    assert model.translate(x, "t2g").project_every == 0
    model.config.project_every = 2
    r = model.translate(x, "t2g", record_every=1)
    assert r.project_every == 2 and r.trace.frame_labels[2] == "step 2 projected"
    assert model.translate(x, "t2g", project_every=0).project_every == 0
    for bad in (-1, 2.5, "two", 1001):
        with pytest.raises(SamplingError, match="project_every"):
            model.translate(x, "t2g", project_every=bad)
    none = model.translate(x, "t2g", steps=0, project_every=3)  # no steps: the start is still projected
    torch.testing.assert_close(none.latents, model.project(none.source_latents))


def test_evaluation_reports_the_reencode_check_beside_the_real_drawings(emoji_data, tmp_path, monkeypatch):  # noqa: F811
    from studio.data.emoji import load_emoji_pairs
    from train import eval_letit

    torch.manual_seed(0)
    cfg = LETITConfig(image_size=64, ae_widths=[4, 8], ae_blocks=[0, 0], latent_channels=2, ebm_width=4,
                      directions={d: dict(SAMPLER) for d in ("t2g", "g2t")})
    save_checkpoint(tmp_path / "tiny", "letit", cfg, LETIT(cfg).state_dict(), ModelCard(summary="tiny LETIT"))
    model = studio.load(tmp_path / "tiny", kind="letit")
    real_load = studio.load

    def no_pixel_baseline(name, *args, **kwargs):  # the shipped CF-EBM baseline is not what this test is about
        if name == "cfebm-emoji-t2g":
            raise studio.CheckpointError("not in this test")
        return real_load(name, *args, **kwargs)

    monkeypatch.setattr(studio, "load", no_pixel_baseline)
    m = eval_letit.evaluate_letit(model, samples=512, seed=0)
    pairs = load_emoji_pairs("test", size=64)
    rms = lambda a, b: float((a - b).pow(2).flatten(1).mean(1).sqrt().mean())
    for d, source, target in (("t2g", pairs.twitter, "google"), ("g2t", pairs.google, "twitter")):
        r = model.translate(source, d, seeds=f"0-{len(source) - 1}")
        out = r.outputs
        assert m[f"{d}_reencode_psnr"] == round(float(psnr(model.reconstruct(out), out).mean()), 2)
        z = r.latents
        assert abs(m[f"{d}_latent_gap"] - rms(model.encode(model.decode(z)).clamp(-6, 6), z)) < 2e-3
        real = pairs.style(target)
        assert m[f"reencode_psnr_real_{target}"] == round(float(psnr(model.reconstruct(real), real).mean()), 2)
        code = model.encode(real)
        assert abs(m[f"latent_gap_real_{target}"] - rms(model.encode(model.decode(code)), code)) < 2e-3
    assert not any(k.endswith("_project_every") for k in m)  # only reported when the projection is on
    text = eval_letit.card_extra(m)
    assert f"Twitter -> Google outputs {m['t2g_reencode_psnr']} dB (real google drawings {m['reencode_psnr_real_google']} dB)" in text
    assert f"Google -> Twitter chain ends {m['g2t_latent_gap']} (codes of real twitter drawings {m['latent_gap_real_twitter']})" in text


def test_the_protocol_task_offers_and_passes_the_projection():
    model = tiny()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    spec = model.task(model.TASK_NAMES["t2g"])
    assert spec.params["project_every"] == model.config.project_every == 0
    via_run = model.run(spec.name, image=x, seeds="3-4", steps=4, project_every=2)
    direct = model.translate(x, "t2g", steps=4, seeds="3-4", project_every=2)
    assert via_run.extras["result"].project_every == 2
    torch.testing.assert_close(via_run.images, direct.outputs)
    plain = model.run(spec.name, image=x, seeds="3-4", steps=4)
    assert plain.extras["result"].project_every == 0 and not torch.allclose(plain.images, via_run.images)
    with pytest.raises(SamplingError, match="project_every"):
        model.run(spec.name, image=x, seeds="3-4", project_every=-1)
