"""Quality checks on the shipped checkpoints at small sample counts (no data sets needed): every shipped
checkpoint has one here (egc-fmnist's is in test_egc.py), in the default test run."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import studio
from studio.data.fashion_mnist import CLASS_NAMES

EXAMPLES = Path(__file__).resolve().parents[1] / "assets" / "examples"


def test_every_registered_local_checkpoint_loads():
    from studio.registry import local_names

    for name in local_names():
        model = studio.load(name)
        assert model.checkpoint.kind and not model.training


def test_evaluator_fmnist_classifies_the_held_out_examples():
    files = sorted(EXAMPLES.glob("fmnist-test-*.png"))
    assert len(files) == 10
    images = _fmnist_examples()
    names = ["-".join(f.stem.split("-")[3:]) for f in files]
    labels = torch.tensor([[n.lower().replace("/", "-").replace(" ", "-") for n in CLASS_NAMES].index(n) for n in names])
    preds = studio.load("evaluator-fmnist").predict(images)
    assert (preds == labels).sum() >= 9


def test_cdrl_guided_samples_have_the_requested_class():
    """Issue 4's bar at a small sample count: w = 1 yields the requested class on >= 90% (fixed seeds 0-199)."""
    model, judge = studio.load("cdrl-fmnist"), studio.load("evaluator-fmnist")
    classes = [i % 10 for i in range(200)]
    x = torch.cat([model.generate(classes[i:i + 100], seeds=f"{i}-{i + 99}", guidance=1.0)[0] for i in (0, 100)])
    acc = float((judge.predict(x) == torch.tensor(classes)).float().mean())
    print(f"cdrl-fmnist class accuracy at w = 1 on 200 samples: {acc:.3f}")
    assert acc >= 0.90


def _fmnist_examples() -> torch.Tensor:
    files = sorted(EXAMPLES.glob("fmnist-test-*.png"))
    return torch.stack([torch.from_numpy(np.asarray(Image.open(f), dtype=np.float32)) for f in files])[:, None] / 127.5 - 1


def test_cfebm_denoising_raises_psnr_on_held_out_examples():
    """Issue 5's bar at a small sample count: noise std 0.3 on the 10 held-out examples, PSNR out > PSNR in."""
    from studio.metrics import psnr

    model = studio.load("cfebm-fmnist")
    clean = _fmnist_examples()
    noisy = clean + 0.3 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))
    out, _ = model.denoise(noisy, seeds="0-9")
    before, after = float(psnr(noisy, clean).mean()), float(psnr(out, clean).mean())
    print(f"cfebm-fmnist denoising PSNR on 10 examples: {before:.2f} -> {after:.2f} dB")
    assert after > before + 1.0


def test_cfebm_inpainting_keeps_known_pixels_of_the_shipped_model():
    model = studio.load("cfebm-fmnist")
    image = _fmnist_examples()[0]
    known = torch.ones(32, 32)
    known[10:22, 10:22] = 0
    out, _ = model.inpaint(image, known, seeds="0-1")
    assert (out[:, :, known.bool()] == image[:, known.bool()]).all()
    assert not torch.equal(out[0], out[1])


def _emoji_examples(style: str) -> torch.Tensor:
    files = sorted((EXAMPLES / "emoji").glob(f"emoji-test-*-{style}.png"))
    assert len(files) == 20
    arrays = [np.asarray(Image.open(f).convert("RGB"), dtype=np.float32) for f in files]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2) / 127.5 - 1


def test_translation_saliency_concentrates_where_pixels_changed():
    """Issue 8's bar: Spearman(saliency, |output - input|) >= 0.5 on 20 held-out emoji (mean over images).
    With the default noise-free translation the change is the clipped drift itself, so this mostly checks
    the bookkeeping; the second check asks more: saliency must also follow where the *true* Google
    drawing differs from the Twitter one, which the model never saw paired."""
    from studio.metrics import spearman

    model = studio.load("cfebm-emoji-t2g")
    source, target = _emoji_examples("twitter"), _emoji_examples("google")
    out, trace = model.translate(source, seeds="0-19")
    saliency = trace.saliency()
    mean_rho = lambda ref: sum(spearman(saliency[i], ref[i]) for i in range(20)) / 20  # noqa: E731
    changed, needed = mean_rho((out - source).norm(dim=1)), mean_rho((target - source).norm(dim=1))
    print(f"cfebm-emoji-t2g Spearman on 20 held-out emoji: saliency vs change {changed:.3f}, vs true difference {needed:.3f}")
    assert changed >= 0.5
    assert needed >= 0.3


# -- a fast check of every shipped checkpoint (issue 26): small counts, compared with what its card claims ----
# Each compares with the checkpoint's own metrics.json where the card measured the same thing, with a tolerance
# suited to the small count (binomial or sampling spread), or holds a sanity bar the card's numbers imply.
# egc-fmnist's fast check lives with its tests (tests/test_egc.py). Big-count versions stay under RUN_SLOW.


def _card(name: str) -> dict:
    from studio.bars import read_metrics

    metrics = read_metrics(name)
    assert metrics, f"{name} has no metrics.json"
    return metrics


def _entropy(predictions: torch.Tensor, classes: int) -> float:
    p = torch.bincount(predictions, minlength=classes).float()
    p = p[p > 0] / p.sum()
    return float(-(p * p.log()).sum())


def test_toy_gaussian_mixture_covers_every_mode_as_its_card_says():
    """Card (2,000 chains): 8/8 modes, 99.1% within 3 std, largest mode share 0.136 (ideal 0.125). At 256 chains
    a fair share has standard deviation 0.021, so the largest stays below 0.125 + 4 sd."""
    from train.evaluate import evaluate_toy

    card = _card("toy-gaussian-mixture")
    m = evaluate_toy(studio.load("toy-gaussian-mixture"), 256, 0)
    assert m["modes_covered"] == card["modes_covered"] == card["num_modes"]
    assert m["within_3_std"] >= card["within_3_std"] - 0.03
    assert m["max_mode_share"] <= 1 / card["num_modes"] + 4 * (0.125 * 0.875 / 256) ** 0.5


def test_toy_ring_samples_the_ring_as_its_card_says():
    """Card (2,000 chains): mean radius 2.025, radius std 0.258. At 256 chains the mean radius has a standard
    error of 0.016: within 0.07 of the card (4 standard errors)."""
    from train.evaluate import evaluate_toy

    card = _card("toy-ring")
    m = evaluate_toy(studio.load("toy-ring"), 256, 0)
    assert abs(m["mean_radius"] - card["mean_radius"]) <= 0.07
    assert abs(m["radius_std"] - card["radius_std"]) <= 0.05


def test_cdrl_and_drl_cost_what_their_cards_say():
    """The comparison CDRL wins rests on these counts: network evaluations per sample at each card's own K."""
    for name, key in (("cdrl-fmnist", "cdrl_evals"), ("drl-fmnist", "drl_evals")):
        model = studio.load(name)
        assert model.network_evaluations(model.config.langevin_steps) == _card(name)[key], name


def test_drl_samples_are_images_not_noise_or_one_colour():
    """DRL runs 181 network evaluations per sample, so the default run samples only 4 (its card's guided accuracy
    and FD are measured by train.evaluate). Sanity: finite, in range, varied across seeds, darker than mid-grey on
    average like Fashion-MNIST (mean pixel about -0.56 in [-1, 1]), and with structure inside each image."""
    x, _ = studio.load("drl-fmnist").generate(None, seeds="0-3")
    assert torch.isfinite(x).all() and x.abs().max() <= 1
    print(f"drl-fmnist 4 samples: mean {float(x.mean()):.3f}, per-image std {x.flatten(1).std(1).tolist()}")
    assert float(x.mean()) < 0
    assert (x.flatten(1).std(1) > 0.1).all()
    assert float((x[0] - x[1]).abs().mean()) > 0.05


def test_ebm_single_denoises_the_held_out_examples():
    """Card (500 images): 16.47 -> 22.03 dB at noise std 0.3. On the 10 held-out examples: at least 3 dB gained."""
    from studio.metrics import psnr

    clean = _fmnist_examples()
    noisy = clean + 0.3 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))
    out, _ = studio.load("ebm-single-fmnist").denoise(noisy, seeds="0-9")
    before, after = float(psnr(noisy, clean).mean()), float(psnr(out, clean).mean())
    card = _card("ebm-single-fmnist")
    print(f"ebm-single-fmnist denoising on 10 examples: {before:.2f} -> {after:.2f} dB (card {card['denoise_psnr_in']} -> "
          f"{card['denoise_psnr_out']})")
    assert after >= before + 3.0 and after >= card["denoise_psnr_out"] - 2.0


# Twitter -> Google misses issue 21's SSIM bar on the shipped checkpoint (64 pairs: 0.268 vs the input's 0.283; the
# card has the 512-pair numbers): a strict xfail, so the day it passes the suite says to remove the mark.
T2G_MISSES_SSIM = pytest.mark.xfail(strict=True, raises=AssertionError, reason="letit-emoji t2g: SSIM to the true drawing below the untranslated input's")


@pytest.mark.parametrize("direction", [pytest.param("t2g", marks=T2G_MISSES_SSIM), "g2t"])
def test_letit_translates_64_held_out_pairs_towards_the_true_drawing(direction):
    """Issue 21's small-count check: 64 held-out pairs (every 8th of the emoji test split, shipped as two sheets by
    train/emoji_check_sheets.py; seeds 0-63), default sampler. The evaluator's probability of the target style
    reaches 0.75 and rises far above the input's; the output is closer to the true drawing than the untranslated
    input (PSNR), and its SSIM to it is not below the input's."""
    from studio.metrics import psnr, ssim
    from train.emoji_check_sheets import read_sheet, sheet_path

    model, judge = studio.load("letit-emoji"), studio.load("evaluator-emoji")
    source_style, target_style = ("twitter", "google") if direction == "t2g" else ("google", "twitter")
    source, target = read_sheet(sheet_path(source_style)), read_sheet(sheet_path(target_style))
    out = model.translate(source, direction, seeds="0-63").outputs.cpu()
    k = judge.config.class_names.index(target_style)
    with torch.no_grad():
        score, score_in = judge(out).softmax(-1)[:, k].mean(), judge(source).softmax(-1)[:, k].mean()
    gain = float(psnr(out, target).mean() - psnr(source, target).mean())
    ssim_out, ssim_in = float(ssim(out, target).mean()), float(ssim(source, target).mean())
    print(f"letit-emoji {direction} on 64 pairs: PSNR gain {gain:.3f} dB, SSIM {ssim_out:.4f} (input {ssim_in:.4f}), "
          f"target style {float(score):.3f} (input {float(score_in):.3f})")
    assert gain > 0
    assert score >= 0.75 and score > score_in + 0.4
    assert ssim_out >= ssim_in


def test_coopflow_refinement_lowers_the_energy_of_the_flows_proposals():
    """The Langevin flow descends the EBM's energy: at the same 32 seeds its samples have lower energy than the flow's
    proposals. Whether that improves FD is tests/test_coopflow_shipped.py's (a strict xfail until the EBM refines)."""
    model = studio.load("coopflow-fmnist")
    out = model.sample("0-31")
    with torch.no_grad():
        before, after = float(model.energy(out.flow).mean()), float(model.energy(out.refined).mean())
    assert after < before, (before, after)
    assert torch.isfinite(out.refined).all() and out.refined.abs().max() <= 1


@pytest.mark.parametrize("name, prior", [("nerf-lebm-shapes", "ebm"), ("nerf-vae-shapes", "gaussian")])
def test_nerf_priors_render_the_category_mix_their_cards_report(name, prior):
    """24 prior renders (the card's protocol, 32 px), classified by evaluator-shapes3d. The EBM prior's card: all
    6 categories among 1,000; here at least 4 of 6. The Gaussian prior's card: 78% mushrooms; here the largest
    category's share is within 0.34 of the card's (4 binomial sd at 24). Every render shows an object. (Render
    time depends on the machine's load: the RUN_SLOW test in test_nerf_lebm.py holds its bar.)"""
    from train.eval_nerf import prior_renders

    model, judge = studio.load(name), studio.load("evaluator-shapes3d")
    renders = prior_renders(model, 24, 0, prior)
    counts = torch.bincount(judge.predict(renders * 2 - 1), minlength=6)
    print(f"{name}: categories of 24 prior renders {counts.tolist()}")
    assert (renders.flatten(1).std(1) > 0.01).all()  # no blank render
    card = _card(name)
    if prior == "ebm":
        assert card["class_coverage"] == 1.0 and int((counts > 0).sum()) >= 4
    else:
        hist = card["class_histogram"]
        top = max(hist.values()) / sum(hist.values())
        assert abs(float(counts.max()) / 24 - top) <= 0.34


def test_evaluator_emoji_tells_the_styles_of_the_held_out_pairs_apart():
    """Card: test accuracy 0.965 on 1,024 images of unseen emoji. On the 40 shipped images: at least 0.9."""
    judge = studio.load("evaluator-emoji")
    x = torch.cat([_emoji_examples("twitter"), _emoji_examples("google")])
    labels = torch.tensor([judge.config.class_names.index(s) for s in ["twitter"] * 20 + ["google"] * 20])
    acc = float((judge.predict(x) == labels).float().mean())
    assert acc >= 0.9, acc


def test_evaluator_shapes3d_names_held_out_objects():
    """Card: test accuracy 1.000 on 4,800 views of 200 unseen objects. 12 held-out test objects, one view each."""
    from studio.data import shapes3d

    images, labels = [], []
    for k in range(12):
        oid = 10_000_000 + k  # the test objects (the 3D tab's held-out examples)
        obj, label = shapes3d.make_object(oid, 0)
        az, el = shapes3d.view_angles(oid, shapes3d.VIEWS, 0)
        images.append(shapes3d.render_object(obj, shapes3d.camera_to_world(float(az[0]), float(el[0])), 64)["rgb"])
        labels.append(label)
    acc = float((studio.load("evaluator-shapes3d").predict(torch.stack(images) * 2 - 1) == torch.tensor(labels)).float().mean())
    assert acc >= 11 / 12, acc
