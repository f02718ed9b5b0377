"""Quality checks on the shipped checkpoints at small sample counts (no data sets needed)."""
from pathlib import Path

import numpy as np
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
