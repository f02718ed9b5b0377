"""EGC: the score is the input gradient of logsumexp (autograd), the loss, DDIM sampling with guidance,
FGSM, a training smoke run through accelerate, and small-count checks of the shipped checkpoint's bars."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import studio
from studio.egc import EGC, EGCConfig, fgsm
from studio.errors import SamplingError
from studio.langevin import Trace

REPO = Path(__file__).resolve().parents[1]
TINY = dict(widths=[4, 8], feat_dim=4, emb_dim=16, num_timesteps=100, sample_steps=4)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    m = EGC(EGCConfig(**TINY)).double().eval()
    # Non-zero weights everywhere (UNet blocks zero-init their last conv), so every path matters.
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return m


def test_energy_is_minus_logsumexp_and_score_is_its_autograd_gradient(tiny):
    x = torch.randn(3, 1, 32, 32, dtype=torch.float64)
    t = torch.tensor([0, 40, 99])
    logits = tiny.logits(x, t)
    assert logits.shape == (3, 10)
    assert torch.allclose(tiny.energy(x, t), -torch.logsumexp(logits, 1))
    xr = x.clone().requires_grad_(True)
    (ref,) = torch.autograd.grad(torch.logsumexp(tiny.logits(xr, t), 1).sum(), xr)
    assert torch.allclose(tiny.score(x, t), ref, atol=1e-10)
    # Finite differences on one pixel confirm the autograd reference itself.
    h, idx = 1e-6, (1, 0, 10, 17)
    xp, xm = x.clone(), x.clone()
    xp[idx] += h
    xm[idx] -= h
    fd = (torch.logsumexp(tiny.logits(xp, t), 1) - torch.logsumexp(tiny.logits(xm, t), 1))[1] / (2 * h)
    assert abs(float(fd.detach()) - float(ref[idx])) < 1e-6
    # The sampler's epsilon is minus the score; with guidance it adds s sqrt(1 - abar_t) grad log p(y|x).
    eps, energy, _ = tiny.guided_eps(x, 40, None, 0.0)
    assert torch.allclose(eps, -tiny.score(x, 40), atol=1e-10)
    assert torch.allclose(energy, tiny.energy(x, 40))
    labels = torch.tensor([2, 5, 7])
    eps_g, _, logp = tiny.guided_eps(x, 40, labels, 3.0)
    xr = x.clone().requires_grad_(True)
    (g_cls,) = torch.autograd.grad(F.log_softmax(tiny.logits(xr, 40), 1).gather(1, labels[:, None]).sum(), xr)
    assert torch.allclose(eps_g, eps - 3.0 * (1 - tiny.abar[40]).sqrt() * g_cls, atol=1e-10)
    assert torch.allclose(logp, F.log_softmax(tiny.logits(x, 40), 1).gather(1, labels[:, None])[:, 0])


def test_base_quadratic_cancels_in_softmax(tiny):
    x = torch.randn(2, 1, 32, 32, dtype=torch.float64)
    plain, _ = tiny.net(x, torch.tensor([50, 50]))
    assert torch.allclose(torch.softmax(tiny.logits(x, 50), 1), torch.softmax(plain, 1))


def test_training_loss_is_fisher_plus_weighted_ce_with_double_backprop():
    torch.manual_seed(0)
    m = EGC(EGCConfig(**TINY))
    x0, y = torch.rand(4, 1, 32, 32) * 2 - 1, torch.tensor([0, 1, 2, 3])
    out = m.training_losses(x0, y, gamma=0.7, low_t_fraction=0.0, generator=torch.Generator().manual_seed(1))
    # Recompute by hand with the same draws.
    g = torch.Generator().manual_seed(1)
    t = torch.randint(0, 100, (4,), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    ab = m.abar[t].view(-1, 1, 1, 1)
    xt = (ab.sqrt() * x0 + (1 - ab).sqrt() * eps).requires_grad_(True)
    logits = m.logits(xt, t)
    (grad,) = torch.autograd.grad(torch.logsumexp(logits, 1).sum(), xt, create_graph=True)
    fisher = (grad + eps).pow(2).flatten(1).mean(1).mean()
    ce = (m.abar[t].sqrt() * F.cross_entropy(logits, y, reduction="none")).mean()
    assert torch.allclose(out["loss"], fisher + 0.7 * ce, atol=1e-6)
    out["loss"].backward()
    # Double backprop: the Fisher term reaches the weights through the input gradient.
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.net.parameters() if p.requires_grad)
    with_ce = m.training_losses(x0, y, low_t_ce=1.0, generator=torch.Generator().manual_seed(1))
    assert "ce_low_t" in with_ce and torch.isfinite(with_ce["loss"])


def test_generate_is_seeded_per_sample_and_records_a_trace(tiny):
    m = EGC(EGCConfig(**TINY)).eval()
    a, trace = m.generate("Bag", seeds="0-2", steps=4, guidance=2.0, record_every=2)
    b, _ = m.generate("Bag", seeds="2", steps=4, guidance=2.0)
    assert a.shape == (3, 1, 32, 32) and a.abs().max() <= 1
    assert torch.allclose(a[2:], b, atol=1e-5)  # sample i depends only on seed i
    assert isinstance(trace, Trace) and trace.num_steps == 4
    assert trace.energy_matrix().shape == (4, 3) and trace.grad_norm_matrix().shape == (4, 3)
    assert len(trace.frames) == 3 and trace.segments == [("DDIM", 0, 4)]
    assert trace.saliency().shape == (3, 32, 32)
    c, _ = m.generate(None, seeds="0-1", steps=3, eta=1.0)
    assert torch.isfinite(c).all()
    with torch.no_grad():  # samplers need autograd even under a caller's no_grad
        m.generate(1, seeds="0", steps=2)
    assert m.timesteps(4) == [99, 66, 33, 0]


def test_bad_inputs_are_value_errors(tiny):
    m = EGC(EGCConfig(**TINY))
    with pytest.raises(SamplingError, match="Unknown class"):
        m.generate("Cat", seeds="0")
    with pytest.raises(SamplingError, match="steps"):
        m.generate("Bag", seeds="0", steps=0)
    with pytest.raises(SamplingError, match="guidance"):
        m.generate("Bag", seeds="0", guidance=-1)
    with pytest.raises(SamplingError, match="shape"):
        m.classify(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="epsilon"):
        fgsm(lambda z: m.logits(z), torch.zeros(1, 1, 32, 32), torch.tensor([0]), -0.1)


def test_fgsm_moves_every_pixel_by_eps_within_range_and_raises_the_loss(tiny):
    m = EGC(EGCConfig(**TINY)).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = (torch.rand(6, 1, 32, 32) * 1.6 - 0.8)
    y = torch.arange(6)
    adv = fgsm(lambda z: m.logits(z, 0), x, y, 0.05)
    assert torch.allclose((adv - x).abs(), torch.full_like(x, 0.05), atol=1e-6)
    with torch.no_grad():
        assert F.cross_entropy(m.logits(adv, 0), y) > F.cross_entropy(m.logits(x, 0), y)
    probs = m.classify(x)
    assert torch.allclose(probs.sum(1), torch.ones(6)) and len(m.topk(x, 5)[0]) == 5
    _, acc = m.fgsm_accuracy(x, y, 0.0)
    assert acc == float((probs.argmax(1) == y).float().mean())


@pytest.fixture
def fmnist_dir(tmp_path):
    from conftest import write_fake_fashion_mnist

    return write_fake_fashion_mnist(tmp_path / "fm", train=5100, test=20)


def test_training_smoke_run_and_export(tmp_path, fmnist_dir):
    env = {**os.environ, "FASHION_MNIST_DIR": str(fmnist_dir), "PYTHONPATH": str(REPO), "STUDIO_THREADS": "1"}
    run_dir, out = tmp_path / "run", tmp_path / "ckpt"
    tiny = ["--set", "model.widths=[4, 8]", "--set", "model.feat_dim=4", "--set", "model.emb_dim=16",
            "--set", "train.batch_size=4", "--set", "train.save_every=2", "--set", "train.eval_every=2",
            "--set", "train.val_images=8", "--set", "train.low_t_ce=1.0", "--set", "train.warmup=1"]
    base = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", "train/egc.py", "--config", "train/configs/egc_fmnist.yaml",
            *tiny, "--run-dir", str(run_dir), "--export-dir", str(out)]
    # One launch (resume is common machinery, covered by tests/test_training.py); keeps this file fast.
    run = subprocess.run([*base, "--set", "train.steps=2"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and "val_acc_ema" in log[1] and "fisher" in log[0]
    assert (run_dir / "state").is_dir()
    model = studio.load(out)
    assert model.checkpoint.kind == "egc" and model.checkpoint.extra["training"]["steps"] == 2
    x, _ = model.generate("Bag", seeds="0", steps=2)
    assert x.shape == (1, 1, 32, 32)


def test_shipped_checkpoint_meets_the_accuracy_bar_on_1000_test_images():
    """Issue 10's bar (0.88 on all 10,000; measured 0.908) at a small count: a 1,000-image subset has a standard
    error of about 0.01. Needs the Fashion-MNIST test split (train/get_data.sh); skipped without it."""
    from studio.data.fashion_mnist import load_fashion_mnist
    from studio.errors import DataNotFoundError

    model = studio.load("egc-fmnist")
    try:
        test = load_fashion_mnist("test")
    except DataNotFoundError as err:
        pytest.skip(f"Fashion-MNIST is not installed: {err}")
    acc = float((model.predict(test.images[:1000]).argmax(1) == test.labels[:1000]).float().mean())
    assert acc >= 0.87, acc


def test_shipped_checkpoint_generates_the_requested_class():
    """Issue 19's generation bar at a small count: 50 class-guided samples (5 per class) at the checkpoint's
    default guidance and 20 DDIM steps, judged by evaluator-fmnist (the card's 2,000 at 50 steps: see its
    metrics). The first design scored 0.09 here."""
    model = studio.load("egc-fmnist")
    classes = [i % 10 for i in range(50)]
    x, _ = model.generate(classes, seeds="0-49", steps=20)
    judge = studio.load("evaluator-fmnist")
    acc = float((judge.predict(x) == torch.tensor(classes)).float().mean())
    assert acc >= 0.7, acc
    assert abs(float(x.mean()) - (-0.56)) < 0.15  # the data's pixel mean (the first design's noise: -0.007)


def test_lr_schedule_warms_up_and_decays_by_steps_or_time():
    from train.egc import TrainSettings, lr_schedule

    factor = lr_schedule(TrainSettings(steps=100, warmup=10, decay_from=0.5, final_lr_ratio=0.1, max_minutes=0.0))
    assert factor(0, 0) == pytest.approx(0.1) and factor(40, 0) == 1.0
    assert factor(75, 0) == pytest.approx(0.55) and factor(100, 0) == pytest.approx(0.1)
    timed = lr_schedule(TrainSettings(steps=10**6, warmup=1, decay_from=0.5, final_lr_ratio=0.1, max_minutes=10.0))
    assert timed(50, 300) == 1.0 and timed(50, 600) == pytest.approx(0.1)


class _GaussianEGC(EGC):
    """Logits of the exact joint energy for data x0 ~ N(0, s^2 I): every class logit is
    sqrt(1 - abar_t) log N(x_t; 0, (abar_t s^2 + 1 - abar_t) I) (up to a constant), so grad logsumexp = -E[eps | x_t]."""

    s = 0.3

    def logits(self, x, t=0):
        t = self._t(x, t)
        ab = self.abar[t]
        var = ab * self.s**2 + 1 - ab
        e = -0.5 * (1 - ab).sqrt() * x.pow(2).flatten(1).sum(1) / var
        return e[:, None].expand(-1, self.config.num_classes) + 0.0 * self.net.pool.proj.bias[None]


def test_ddim_with_the_exact_score_samples_the_gaussian_data():
    m = _GaussianEGC(EGCConfig(**{**TINY, "num_timesteps": 1000})).eval()
    x, trace = m.generate(None, seeds="0-99", steps=250)
    assert abs(float(x.std()) - 0.3) < 0.015 and abs(float(x.mean())) < 0.01
    # Fewer DDIM steps shrink the variance (discretisation), more steps approach the data's.
    few, _ = m.generate(None, seeds="0-99", steps=10)
    assert float(few.std()) < float(x.std())
    # The recorded free energy falls as the chain denoises (x_t concentrates).
    e = trace.energy_matrix().mean(1)
    assert e[-1] < e[0]
