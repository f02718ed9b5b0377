"""LETIT: autoencoder round trip, latent chains, both directions, latent shift, seeds, checkpoints, training stages."""
import json
from pathlib import Path

import pytest
import torch

import studio
from studio.errors import SamplingError
from studio.hub import save_checkpoint
from studio.letit import LETIT, LETITConfig, TranslationResult
from test_data_emoji import _entries, build_tree
from test_training import _launch

SAMPLER = {"steps": 4, "step_size": 0.05, "noise": 0.1}


def tiny(vector: bool = False, directions=("t2g", "g2t")) -> LETIT:
    torch.manual_seed(0)
    cfg = LETITConfig(image_size=16, ae_widths=[4, 8], ae_blocks=[0, 1], latent_channels=2, ebm_width=4,
                      latent_dim=6 if vector else 0, directions={d: dict(SAMPLER) for d in directions})
    return LETIT(cfg).eval().requires_grad_(False)


@pytest.fixture
def emoji_data(tmp_path, monkeypatch):
    """The fake emoji tree of test_data_emoji under a private STUDIO_DATA_DIR (loader cache included)."""
    build_tree(tmp_path / "data" / "emoji", _entries())
    monkeypatch.setenv("STUDIO_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def test_autoencoder_round_trip_on_fixtures(emoji_data):
    from studio.data.emoji import load_emoji_pairs

    pairs = load_emoji_pairs("train", size=16)
    x = torch.cat([pairs.twitter, pairs.google])
    model = tiny()
    z = model.encode(x)
    assert z.shape == (len(x), 2, 8, 8) and model.config.latent_shape == (2, 8, 8)
    rec = model.reconstruct(x)
    assert rec.shape == x.shape and rec.min() >= -1 and rec.max() <= 1
    torch.testing.assert_close(model.decode(z), rec)
    # Normalised latents: after set_latent_stats the codes of these images have per-channel mean 0 and std 1.
    model.set_latent_stats(model.encode_raw(x))
    z = model.encode(x)
    torch.testing.assert_close(z.mean((0, 2, 3)), torch.zeros(2), atol=1e-4, rtol=0)
    torch.testing.assert_close(z.std((0, 2, 3)), torch.ones(2), atol=1e-4, rtol=0)
    torch.testing.assert_close(model.reconstruct(x), rec, atol=1e-5, rtol=1e-4)  # normalisation is invertible
    # A few optimiser steps on the fixtures lower the reconstruction error (the loss the AE stage trains).
    model.requires_grad_(True).train()
    opt = torch.optim.Adam([*model.encoder.parameters(), *model.decoder.parameters()], lr=3e-3)
    first = None
    for _ in range(30):
        out = model.autoencoder_loss(x, 0.05, 1e-3, torch.Generator().manual_seed(0))
        first = float(out["mse"]) if first is None else first
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    assert float(out["mse"]) < 0.7 * first


def test_vector_latent_round_trip():
    model = tiny(vector=True)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert model.encode(x).shape == (2, 6) and model.reconstruct(x).shape == x.shape
    assert model.energy(model.encode(x), "t2g").shape == (2,)


@pytest.mark.parametrize("vector", [False, True])
def test_energy_decreases_along_a_noiseless_chain(vector):
    model = tiny(vector)
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    for direction in ("t2g", "g2t"):
        r = model.translate(x, direction, steps=25, step_size=0.02, noise=0.0, seeds="0-2")
        e = torch.cat([r.energies(), model.energy(r.latents, direction)[None]])  # energies before each step, then the end
        assert e.shape == (26, 3)
        assert (e[1:] <= e[:-1] + 1e-6).all(), "gradient descent on E must not increase it"
        assert (e[-1] < e[0]).all()


def test_both_directions_use_their_own_ebm_and_bad_arguments_are_clear():
    model = tiny()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    t2g = model.translate(x, "t2g", seeds="0-1", noise=0.0)
    g2t = model.translate(x, "g2t", seeds="0-1", noise=0.0)
    assert isinstance(t2g, TranslationResult) and t2g.direction == "t2g" and g2t.direction == "g2t"
    assert t2g.outputs.shape == g2t.outputs.shape == x.shape
    assert not torch.allclose(t2g.latents, g2t.latents)
    torch.testing.assert_close(t2g.reconstructions, g2t.reconstructions)
    z = model.encode(x)
    assert not torch.allclose(model.energy(z, "t2g"), model.energy(z, "g2t"))
    with pytest.raises(SamplingError, match="Unknown direction 'sideways'.*t2g"):
        model.translate(x, "sideways")
    with pytest.raises(SamplingError, match="Unknown direction"):
        model.energy(z, "x2y")
    for steps in (-1, 1001, 2.5, "ten"):
        with pytest.raises(SamplingError, match="steps"):
            model.translate(x, "t2g", steps=steps, seeds="0-1")
    with pytest.raises(SamplingError, match="step_size"):
        model.translate(x, "t2g", step_size=-1.0, seeds="0-1")
    for bad in (torch.rand(2, 1, 16, 16), torch.rand(2, 3, 32, 32), torch.rand(16, 16), torch.rand(2, 4, 16, 16)):
        with pytest.raises(SamplingError, match=r"RGB 16x16 images shaped \[B, 3, 16, 16\]"):
            model.translate(bad, "t2g")
    with pytest.raises(SamplingError, match="NaN"):
        model.reconstruct(torch.full((1, 3, 16, 16), float("nan")))
    with pytest.raises(SamplingError, match="3 seeds"):
        model.translate(x, "t2g", seeds="0-2")
    one_way = tiny(directions=("t2g",))
    with pytest.raises(SamplingError, match="g2t latent EBM of this checkpoint has not been trained"):
        one_way.translate(x, "g2t")


def test_latent_shift_frames_and_trace():
    model = tiny()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    r = model.translate(x, "t2g", steps=6, seeds="3-4", record_every=1)
    assert r.latent_shift.shape == (2, 2, 8, 8) and (r.latent_shift >= 0).all() and r.latent_shift.sum() > 0
    assert r.shift_map().shape == (2, 8, 8) and r.shift_per_channel().shape == (2, 2)
    # With a frame at every step, the shift is exactly sum_t |z_{t+1} - z_t| over the recorded path.
    path = torch.stack(r.trace.frames)
    torch.testing.assert_close(r.latent_shift, (path[1:] - path[:-1]).abs().sum(0))
    torch.testing.assert_close(path[0], r.source_latents)
    torch.testing.assert_close(path[-1], r.latents)
    assert r.frame_steps == list(range(7)) and len(r.frames) == 7 and r.frames[0].shape == x.shape
    torch.testing.assert_close(r.frames[0], r.reconstructions)
    torch.testing.assert_close(r.frames[-1], r.outputs)
    assert r.trace.num_steps == 6 and r.energies().shape == (6, 2)
    every3 = model.translate(x, "t2g", steps=6, seeds="3-4", record_every=3)
    assert every3.frame_steps == [0, 3, 6]
    torch.testing.assert_close(every3.latent_shift, r.latent_shift)
    none = model.translate(x, "t2g", steps=0, seeds="0-1")
    assert (none.latent_shift == 0).all() and not none.frames
    torch.testing.assert_close(none.outputs, none.reconstructions)
    vec = tiny(vector=True).translate(x, "g2t", seeds="0-1")
    assert vec.latent_shift.shape == (2, 6) and (vec.latent_shift >= 0).all() and vec.shift_map().shape == (2, 6)


def test_per_sample_seeds():
    model = tiny()
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    batch = model.translate(x, "t2g", seeds="5,6,7")
    alone = model.translate(x[1], "t2g", seeds="6")
    torch.testing.assert_close(alone.latents, batch.latents[1:2], atol=1e-5, rtol=1e-5)
    again = model.translate(x, "t2g", seeds="5,6,7")
    torch.testing.assert_close(again.latents, batch.latents)
    assert not torch.allclose(model.translate(x, "t2g", seeds="8,9,10").latents, batch.latents)
    # One seed for a batch means consecutive seeds; one image with several seeds gives one chain per seed.
    assert model.translate(x, "t2g", seeds="5").seeds == [5, 6, 7]
    fan = model.translate(x[0], "t2g", seeds="5-8")
    assert fan.outputs.shape == (4, 3, 16, 16) and fan.seeds == [5, 6, 7, 8]
    torch.testing.assert_close(fan.latents[0:1], batch.latents[0:1], atol=1e-5, rtol=1e-5)


def test_checkpoint_round_trip(tmp_path):
    model = tiny()
    model.latent_std.fill_(2.0)
    save_checkpoint(tmp_path / "ck", "letit", model.config, model.state_dict(), "tiny LETIT")
    loaded = studio.load(tmp_path / "ck", kind="letit")
    z = torch.randn(2, 2, 8, 8)
    for d in ("t2g", "g2t"):
        torch.testing.assert_close(loaded.energy(z, d), model.energy(z, d))
    assert loaded.config.directions == model.config.directions and float(loaded.latent_std.mean()) == 2.0


# ----------------------------------------------------------------------------- training stages through accelerate

TINY = ["--set", "model.ae_widths=[4, 8]", "--set", "model.ae_blocks=[0, 1]", "--set", "model.latent_channels=2",
        "--set", "model.ebm_width=4", "--set", "train.image_size=16", "--set", "train.threads=1",
        "--set", "train.autoencoder.batch_size=4", "--set", "train.autoencoder.save_every=1",
        "--set", "train.ebm.batch_size=4", "--set", "train.ebm.langevin_steps=2", "--set", "train.ebm.save_every=1"]


@pytest.fixture(scope="module")
def ae_stage(tmp_path_factory):
    """One tiny autoencoder stage on the fixture emoji, shared by the stage tests below."""
    tmp = tmp_path_factory.mktemp("letit")
    build_tree(tmp / "data" / "emoji", _entries())
    env = {"STUDIO_DATA_DIR": str(tmp / "data")}
    run_dir, out = tmp / "run", tmp / "ckpt"
    common = ["--config", "train/configs/letit_emoji.yaml", *TINY, "--run-dir", str(run_dir), "--export-dir", str(out)]
    # The autoencoder stage exports untrained EBMs of width 3; the first EBM stage rebuilds them at TINY's width 4.
    done = _launch("train/letit.py", [*common, "--stage", "autoencoder", "--set", "train.autoencoder.steps=2",
                                      "--set", "model.ebm_width=3"], env)
    return done, env, common, run_dir, out


def test_autoencoder_stage_exports_an_autoencoder_without_ebms(ae_stage, tmp_path):
    done, env, common, run_dir, out = ae_stage
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((run_dir / "autoencoder" / "run.json").read_text())["step"] == 2
    model = studio.load(out, kind="letit")
    assert model.trained_directions == [] and model.config.latent_shape == (2, 8, 8)
    assert float(model.latent_std.min()) > 0 and float(model.latent_std.max()) != 1.0  # statistics were set
    assert (run_dir / "autoencoder" / "export" / "model.safetensors").is_file()
    assert model.checkpoint.extra["stages"]["autoencoder"]["steps"] == 2
    with pytest.raises(SamplingError, match="not been trained yet"):
        model.translate(torch.zeros(1, 3, 16, 16), "t2g")
    # The EBM stage needs an autoencoder first, and says how to get one.
    none = tmp_path / "none"
    early = _launch("train/letit.py", [*common[:-4], "--run-dir", str(none), "--export-dir", str(none / "ckpt"),
                                       "--stage", "ebm", "--direction", "t2g"], env)
    assert early.returncode != 0 and "--stage autoencoder" in early.stderr


def test_ebm_stages_both_directions_resume_and_one_export(ae_stage):
    done, env, common, run_dir, out = ae_stage
    assert done.returncode == 0, done.stderr[-3000:]
    ae = studio.load(out, kind="letit")
    t2g = _launch("train/letit.py", [*common, "--stage", "ebm", "--direction", "t2g", "--set", "train.ebm.steps=2"], env)
    assert t2g.returncode == 0, t2g.stderr[-3000:]
    assert studio.load(out).trained_directions == ["t2g"]
    resumed = _launch("train/letit.py", [*common, "--stage", "ebm", "--direction", "t2g", "--set", "train.ebm.steps=3", "--resume"], env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((run_dir / "ebm-t2g" / "run.json").read_text())["step"] == 3
    other_width = _launch("train/letit.py", [*common, "--stage", "ebm", "--direction", "g2t", "--set", "model.ebm_width=6"], env)
    assert other_width.returncode != 0 and "share one architecture" in other_width.stderr
    g2t = _launch("train/letit.py", [*common, "--stage", "ebm", "--direction", "g2t", "--set", "train.ebm.steps=1"], env)
    assert g2t.returncode == 0, g2t.stderr[-3000:]

    final = studio.load(out, kind="letit")
    assert final.trained_directions == ["t2g", "g2t"] and final.config.ebm_width == 4 and ae.config.ebm_width == 3
    assert final.config.directions["t2g"]["steps"] == 2 and set(final.config.directions["g2t"]) == {"steps", "step_size", "noise"}
    stages = final.checkpoint.extra["stages"]
    assert set(stages) == {"autoencoder", "ebm_t2g", "ebm_g2t"} and stages["ebm_t2g"]["steps"] == 3
    for k, v in ae.state_dict().items():  # the EBM stages leave the autoencoder untouched
        if not k.startswith("ebms."):
            torch.testing.assert_close(final.state_dict()[k], v)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    for d in ("t2g", "g2t"):
        r = final.translate(x, d, seeds="0-1", record_every=1)
        assert r.outputs.shape == x.shape and len(r.frames) == 3
    assert "EBMs trained: t2g, g2t" in (out / "README.md").read_text()
    # A new run (not --resume) from the exported t2g EBM continues it: the stage counts both runs.
    more = _launch("train/letit.py", [*[a if a != str(run_dir) else str(run_dir) + "-more" for a in common], "--stage", "ebm",
                                      "--direction", "t2g", "--set", "train.ebm.steps=1"], env)
    assert more.returncode == 0, more.stderr[-3000:]
    stage = studio.load(out).checkpoint.extra["stages"]["ebm_t2g"]
    assert stage["steps"] == 4 and [r["steps"] for r in stage["runs"]] == [3, 1]
    # With a validation fold the EBM starts afresh (the exported one has seen the fold), and the fold is recorded.
    fold = _launch("train/letit.py", [*[a if a != str(run_dir) else str(run_dir) + "-fold" for a in common], "--stage", "ebm",
                                      "--direction", "t2g", "--set", "train.ebm.steps=1", "--set", "train.ebm.holdout_fraction=0.3"], env)
    assert fold.returncode == 0, fold.stderr[-3000:]
    ck = studio.load(out)
    stage = ck.checkpoint.extra["stages"]["ebm_t2g"]
    assert stage["steps"] == 1 and "runs" not in stage and stage["command"].endswith("--set train.ebm.holdout_fraction=0.3")
    assert "train.ebm.steps" not in stage["command"]  # the run's length is recorded as its steps, not as its recipe
    assert ck.config.directions["t2g"]["holdout_fraction"] == 0.3 and "holdout_fraction" not in ck.config.directions["g2t"]
    assert not torch.equal(ck.ebms["t2g"].net[0].weight, final.ebms["t2g"].net[0].weight)


def test_decoder_stage_changes_only_the_decoder_and_keeps_the_ebms(ae_stage, tmp_path):
    """--stage decoder fine-tunes the decoder on noisy codes; encoder, latent statistics and EBMs stay (they remain
    valid), the stage is recorded, and the new decoder is the EMA of a trained one (it differs from the base's)."""
    done, env, common, run_dir, out = ae_stage
    assert done.returncode == 0, done.stderr[-3000:]
    base_dir = tmp_path / "base"
    tiny_model = studio.load(out, kind="letit")
    tiny_model.config.directions["t2g"] = dict(SAMPLER)  # at least one EBM to keep (the stage tests above may add g2t)
    save_checkpoint(base_dir, "letit", tiny_model.config, tiny_model.state_dict(), "tiny LETIT with a t2g EBM",
                    extra={"stages": tiny_model.checkpoint.extra["stages"]})
    new = tmp_path / "robust"
    args = [*common[:-4], "--run-dir", str(tmp_path / "run"), "--export-dir", str(new), "--stage", "decoder",
            "--ae-from", str(base_dir), "--set", "train.decoder.steps=2", "--set", "train.decoder.batch_size=4",
            "--set", "train.decoder.ema_decay=0.0"]
    robust = _launch("train/letit.py", args, env)
    assert robust.returncode == 0, robust.stderr[-3000:]
    base, after = studio.load(base_dir, kind="letit"), studio.load(new, kind="letit")
    changed = {k for k, v in after.state_dict().items() if not torch.equal(v, base.state_dict()[k])}
    assert changed and all(k.startswith("decoder.") for k in changed)
    assert after.config.directions == base.config.directions and "t2g" in after.trained_directions
    stage = after.checkpoint.extra["stages"]["decoder"]
    assert stage["steps"] == 2 and "--stage decoder" in stage["command"] and "train.decoder.batch_size=4" in stage["command"]
    assert "train.decoder.steps" not in stage["command"]  # the run's length is recorded as its steps, as for the EBM stages
    # Fine-tuning the fine-tuned decoder again records the cost of both runs.
    again = [a if a != str(base_dir) else str(new) for a in args]
    again[again.index(str(new), again.index("--export-dir"))] = str(tmp_path / "robust2")
    again[again.index(str(tmp_path / "run"))] = str(tmp_path / "run2")
    twice = _launch("train/letit.py", again, env)
    assert twice.returncode == 0, twice.stderr[-3000:]
    stage = studio.load(tmp_path / "robust2", kind="letit").checkpoint.extra["stages"]["decoder"]
    assert stage["steps"] == 4 and [r["steps"] for r in stage["runs"]] == [2, 2]
    wrong = _launch("train/letit.py", [*args, "--direction", "t2g"], env)
    assert wrong.returncode != 0 and "--direction belongs to --stage ebm" in wrong.stderr


def test_robust_decoder_loss_noise_is_in_normalised_units():
    """sigma = 0 is plain reconstruction; with the latent std scaled up, the same normalised noise moves raw
    codes further (so the decoder sees the moves the chains make in normalised units)."""
    from studio.letit import robust_decoder_loss

    model = tiny()
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        clean = torch.nn.functional.mse_loss(model.decoder(model.encode_raw(x)), x)
        torch.testing.assert_close(robust_decoder_loss(model, x, 0.0)["loss"], clean)
        small = robust_decoder_loss(model, x, 1.0, torch.Generator().manual_seed(0))["loss"]
        model.latent_std.fill_(100.0)
        large = robust_decoder_loss(model, x, 1.0, torch.Generator().manual_seed(0))["loss"]
    assert float(large) > float(small) > 0


def test_an_ebm_stage_records_the_overrides_that_change_what_it_learns():
    from train.letit import recipe_overrides, stage_lines

    given = ["train.ebm.lr=1e-4", "train.ebm.steps=12000", "train.ebm.max_minutes=42", "train.ebm.energy_l2=1e-4",
             "train.threads=2", "train.ebm.save_every=50", "train.ebm.holdout_fraction=0.1"]
    assert recipe_overrides(given) == ["train.ebm.lr=1e-4", "train.ebm.energy_l2=1e-4", "train.ebm.holdout_fraction=0.1"]
    # The card names a continued run's recipe where it differs from the first run's.
    first, later = "accelerate launch train/letit.py --stage ebm", "accelerate launch train/letit.py --stage ebm --set train.ebm.lr=1e-4"
    stages = {"ebm_g2t": {"steps": 30, "seconds": 180.0, "command": later, "runs": [
        {"steps": 10, "seconds": 60.0, "command": first}, {"steps": 10, "seconds": 60.0, "command": first},
        {"steps": 10, "seconds": 60.0, "command": later}]}}
    assert stage_lines(stages) == (f"- ebm_g2t: 30 steps, 3.0 min (`{first}`); 10 steps in 1.0 min, then 10 steps in 1.0 min, "
                                   f"then 10 steps in 1.0 min (`{later}`)")


def test_chosen_translate_steps_become_the_default_and_the_rule_keeps_content():
    from train.letit_choose_steps import choose

    # The mean and its bootstrap lower bound (over base emoji) per step count: the bound decides.
    rows = [{"steps": 10, "psnr": 12.0, "target_score": 0.3, "target_score_lower": 0.25},
            {"steps": 20, "psnr": 11.8, "target_score": 0.85, "target_score_lower": 0.78},
            {"steps": 30, "psnr": 11.6, "target_score": 0.9, "target_score_lower": 0.84},
            {"steps": 40, "psnr": 11.2, "target_score": 0.95, "target_score_lower": 0.9}]
    # The least transport that reaches the style: the highest PSNR among the steps surely above the bar.
    assert choose(rows, identity_psnr=11.5, trained_steps=25, target_bar=0.75) == 20
    assert choose(rows, identity_psnr=11.5, trained_steps=25, target_bar=0.8) == 30  # 20 steps' mean 0.85 is not enough
    # No step count reaches the bar: the most steps still above the identity.
    assert choose(rows, identity_psnr=11.5, trained_steps=25, target_bar=0.99) == 30
    # Reaching the bar at a PSNR below the input's does not count.
    assert choose(rows, identity_psnr=11.7, trained_steps=25, target_bar=0.8) == 20
    assert choose(rows, identity_psnr=12.5, trained_steps=25, target_bar=0.8) == 25  # none qualifies: keep the trained T
    model = tiny()
    model.config.directions["t2g"] = {**SAMPLER, "translate_steps": 7}
    assert model.sampler_defaults("t2g") == {"steps": 7, "step_size": SAMPLER["step_size"], "noise": SAMPLER["noise"]}
    assert model.sampler_defaults("g2t")["steps"] == SAMPLER["steps"]
    assert model.translate(torch.zeros(1, 3, 16, 16), "t2g").steps == 7


@pytest.mark.slow
@pytest.mark.skipif(not (Path(__file__).resolve().parents[1] / "checkpoints" / "letit-emoji" / "model.safetensors").is_file(),
                    reason="letit-emoji is not shipped here")
def test_shipped_letit_translates_128_test_pairs_towards_the_true_drawing():
    """Issue 6's bars at a larger count than the default run's check (test_shipped_models: 64 shipped pairs):
    the first 128 pairs of the emoji test split (needs the data: bash train/get_data.sh), default sampler. In both
    directions the output is closer to the true drawing than the untranslated input and the evaluator's
    probability of the target style reaches 0.8. On all 512 test pairs (train.evaluate): t2g +0.069 dB, 0.846;
    g2t +0.365 dB, 0.868."""
    from studio.data.emoji import load_emoji_pairs
    from studio.errors import DataNotFoundError
    from studio.metrics import psnr

    try:
        pairs = load_emoji_pairs("test", size=64)
    except DataNotFoundError:
        pytest.skip("the emoji data are not installed")
    model, judge = studio.load("letit-emoji"), studio.load("evaluator-emoji")
    twitter, google = pairs.style("twitter")[:128], pairs.style("google")[:128]
    for direction, source, target, style in (("t2g", twitter, google, "google"), ("g2t", google, twitter, "twitter")):
        out = model.translate(source, direction, seeds="0-127").outputs
        k = judge.config.class_names.index(style)
        with torch.no_grad():
            score = judge(out).softmax(-1)[:, k].mean()
        gain = float(psnr(out, target).mean() - psnr(source, target).mean())
        print(f"letit-emoji {direction} on 128 test pairs: PSNR gain {gain:.3f} dB, target style {float(score):.3f}")
        assert gain > 0
        assert score >= 0.8


def test_an_ebm_export_keeps_the_other_direction_exported_since_the_run_started(tmp_path):
    """t2g and g2t may train at once from one base: the later export must keep the earlier one's EBM."""
    from train.letit import ae_fingerprint, latest_export

    base = tiny()
    save_checkpoint(tmp_path / "ck", "letit", base.config, base.state_dict(), "base", extra={"stages": {"ebm_g2t": {"steps": 1}}})
    assert latest_export(tmp_path / "missing", base, ae_fingerprint(base), 4) is base
    newer = tiny()
    with torch.no_grad():
        newer.ebms["g2t"].net[0].weight.add_(1.0)  # another run's g2t export
    save_checkpoint(tmp_path / "ck", "letit", newer.config, newer.state_dict(), "g2t", extra={"stages": {"ebm_g2t": {"steps": 2}}})
    now = latest_export(tmp_path / "ck", base, ae_fingerprint(base), 4)
    assert latest_export(tmp_path / "ck", base, ae_fingerprint(base), 5) is base  # another EBM width: not mixed in
    assert torch.equal(now.ebms["g2t"].net[0].weight, newer.ebms["g2t"].net[0].weight)
    assert now.checkpoint.extra["stages"]["ebm_g2t"]["steps"] == 2
    other_ae = tiny()
    with torch.no_grad():
        other_ae.encoder.parameters().__next__().add_(1.0)
    save_checkpoint(tmp_path / "other", "letit", other_ae.config, other_ae.state_dict(), "other autoencoder")
    assert latest_export(tmp_path / "other", base, ae_fingerprint(base), 4) is base  # EBMs of another AE are not mixed in


def test_a_continued_ebm_stage_records_the_cost_of_every_run():
    from train.letit import continued_stage

    first = {"seconds": 100.0, "steps": 50, "encode_seconds": 2.0, "command": "c"}
    second = continued_stage(first, {"seconds": 30.0, "steps": 20, "encode_seconds": 1.0, "command": "c"})
    assert (second["seconds"], second["steps"], len(second["runs"])) == (130.0, 70, 2)
    third = continued_stage(second, {"seconds": 5.0, "steps": 4, "encode_seconds": 1.0, "command": "c"})
    assert (third["seconds"], third["steps"], [r["steps"] for r in third["runs"]]) == (135.0, 74, [50, 20, 4])
