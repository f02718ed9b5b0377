"""Metrics against closed forms and brute force."""
import math

import pytest
import torch

from studio.errors import StudioError
from studio.metrics import auroc, class_accuracy, fd_floor, frechet_distance, frechet_distance_from_stats, psnr, ssim


def test_fd_identical_sets_is_zero_and_symmetric():
    a = torch.randn(500, 8, generator=torch.Generator().manual_seed(0))
    b = torch.randn(500, 8, generator=torch.Generator().manual_seed(1)) * 1.5 + 0.3
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)


def test_fd_matches_closed_form_for_diagonal_gaussians():
    g = torch.Generator().manual_seed(0)
    mu1, mu2 = torch.tensor([0.0, 1.0, -1.0]), torch.tensor([0.5, 1.0, 0.0])
    s1, s2 = torch.tensor([1.0, 4.0, 0.25]), torch.tensor([2.0, 1.0, 0.25])
    a = mu1 + s1.sqrt() * torch.randn(200000, 3, generator=g)
    b = mu2 + s2.sqrt() * torch.randn(200000, 3, generator=g)
    expected = float((mu1 - mu2).pow(2).sum() + (s1 + s2 - 2 * (s1 * s2).sqrt()).sum())
    assert frechet_distance(a, b) == pytest.approx(expected, abs=0.03)


def test_fd_from_stats_non_diagonal_commuting():
    # S2 = S1^2 commutes with S1, so (S1 S2)^(1/2) = S1^(3/2) exactly.
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64))
    d = torch.tensor([0.5, 1.0, 2.0, 3.0], dtype=torch.float64)
    s1 = q @ torch.diag(d) @ q.T
    s2 = q @ torch.diag(d**2) @ q.T
    mu = torch.zeros(4, dtype=torch.float64)
    expected = float((d + d**2 - 2 * d**1.5).sum())
    assert frechet_distance_from_stats(mu, s1, mu + 1, s2) == pytest.approx(expected + 4, rel=1e-9)


def test_fd_floor_and_validation():
    real = torch.randn(400, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    feat = lambda x: x.flatten(1)  # noqa: E731
    floor = fd_floor(feat, real[:200], real[200:], n=150)
    assert 0 < floor < frechet_distance(feat(real[:150]), feat(real[200:350] + 1.0))
    with pytest.raises(StudioError):
        fd_floor(feat, real[:10], real[10:20], n=50)
    with pytest.raises(StudioError):
        frechet_distance(torch.zeros(1, 3), torch.zeros(5, 3))


def test_psnr_and_ssim():
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert torch.isinf(psnr(x, x)).all()
    y = x + 0.1  # MSE 0.01 over range 2: 10 log10(4 / 0.01) = 26.02 dB
    torch.testing.assert_close(psnr(x, y), torch.full((2,), 10 * math.log10(400)), atol=1e-3, rtol=0)
    torch.testing.assert_close(ssim(x, x), torch.ones(2))
    noisy = [ssim(x, x + s * torch.randn_like(x)).mean() for s in (0.05, 0.2, 0.5)]
    assert noisy[0] > noisy[1] > noisy[2]
    # A constant offset only changes the luminance term: l = (2 mx my + c1) / (mx^2 + my^2 + c1).
    c = torch.zeros(1, 1, 11, 11)
    c1 = (0.01 * 2) ** 2
    expected = (2 * 0 * 0.5 + c1) / (0 + 0.25 + c1)
    assert float(ssim(c, c + 0.5)) == pytest.approx(expected, rel=1e-5)


def test_auroc_against_brute_force():
    assert auroc([2, 3], [0, 1]) == 1.0 and auroc([0, 1], [2, 3]) == 0.0 and auroc([1, 1], [1, 1]) == 0.5
    g = torch.Generator().manual_seed(0)
    pos = torch.randint(0, 20, (300,), generator=g).double()
    neg = torch.randint(0, 20, (200,), generator=g).double() - 3
    brute = ((pos[:, None] > neg[None]).double() + 0.5 * (pos[:, None] == neg[None]).double()).mean()
    assert auroc(pos, neg) == pytest.approx(float(brute), abs=1e-12)


def test_class_accuracy():
    assert class_accuracy(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1])) == 0.5
    with pytest.raises(StudioError):
        class_accuracy(torch.tensor([1, 2]), torch.tensor([1]))


def test_spearman_matches_known_values_and_handles_ties():
    from studio.metrics import spearman

    x = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    assert spearman(x, x**3) == pytest.approx(1.0)
    assert spearman(x, -x) == pytest.approx(-1.0)
    # Hand-computed: ranks of b with a tie are [1, 2.5, 2.5, 4]; Pearson of ranks with [1, 2, 3, 4] = 0.9487.
    assert spearman(torch.tensor([1.0, 2, 3, 4]), torch.tensor([0.0, 5, 5, 9])) == pytest.approx(0.9486833, abs=1e-6)
    with pytest.raises(StudioError):
        spearman(x, torch.ones(5))
    with pytest.raises(StudioError):
        spearman(x, x[:3])


def test_grouped_bootstrap_bound_matches_normal_theory_and_widens_with_clustering():
    from studio.metrics import grouped_bootstrap_lower_bound as bound

    g = torch.Generator().manual_seed(0)
    x = torch.rand(2000, generator=g)
    # Independent items: the bound sits about 1.645 standard errors below the mean.
    expected = float(x.mean() - 1.645 * x.std() / math.sqrt(len(x)))
    assert bound(x, list(range(len(x))), 0.95, resamples=4000) == pytest.approx(expected, abs=0.002)
    assert bound(x, list(range(len(x)))) == bound(x, list(range(len(x))))  # seeded
    # The same 200 values each repeated 10 times as one group: as uncertain as 200 items, not 2000.
    few = x[:200]
    clustered = bound(few.repeat_interleave(10), [i // 10 for i in range(2000)], resamples=4000)
    alone = bound(few, list(range(200)), resamples=4000)
    assert clustered == pytest.approx(alone, abs=0.004)
    assert clustered < bound(few.repeat_interleave(10), list(range(2000)), resamples=4000) - 0.01
    assert bound(torch.full((5,), 0.7), list("aabbc")) == pytest.approx(0.7)  # no spread, no margin
    for values, groups, kwargs in [(x[:3], [0, 1], {}), (x[:1], [0], {}), (x[:3], [0, 1, 2], {"confidence": 1.0}),
                                   (x[:3], [0, 1, 2], {"resamples": 10})]:
        with pytest.raises(StudioError, match="bootstrap"):
            bound(values, groups, **kwargs)
