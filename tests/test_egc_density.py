"""EGC in density units with an analytic Gaussian(-mixture) base: the base is the exact diffused density
(checked against torch.distributions), DDIM on it samples the data it was fitted to, a checkpoint of the
first design lends its trunk, and the proof on a toy that the learned part improves on the base."""
import math

import pytest
import torch
from torch.distributions import MultivariateNormal

from studio.egc import EGC, EGCConfig
from studio.errors import StudioError
from train.common import init_from_checkpoint

SMALL = dict(widths=[4, 8], feat_dim=4, emb_dim=16, num_timesteps=1000, density_units=True, residual="sum")


def _model(size: int, classes: int = 3, **kw) -> EGC:
    torch.manual_seed(0)
    return EGC(EGCConfig(image_size=size, num_classes=classes, class_names=[f"c{i}" for i in range(classes)],
                         **{**SMALL, **kw})).double()


def test_base_is_the_exact_diffused_mixture_density():
    """log sum_c w_c N(x; sqrt(ab) m_c, ab S_c + (1 - ab) I), up to a constant in x, for a full-rank and a
    low-rank (PPCA) fit, against torch.distributions with the same covariances."""
    g = torch.Generator().manual_seed(0)
    images = torch.randn(300, 1, 2, 2, generator=g, dtype=torch.float64) * torch.tensor([0.2, 0.5, 0.3, 0.4]).view(1, 1, 2, 2)
    labels = torch.arange(300) % 3
    images = images + labels.view(-1, 1, 1, 1).double() * 0.5
    for rank in (4, 2):
        m = _model(2, gaussian_base="classes", base_rank=rank, base_min_var=1e-6)
        m.fit_gaussian_base(images, labels)
        x = torch.randn(5, 1, 2, 2, generator=g, dtype=torch.float64)
        for t in (0, 300, 900):
            ab = float(m.abar[t])
            comps = []
            for c in range(3):
                u, lam, rest = m.base_eigvecs[c].double(), m.base_eigvals[c].double(), float(m.base_rest_var[c])
                cov = u @ torch.diag(lam) @ u.T + rest * (torch.eye(4, dtype=torch.float64) - u @ u.T)
                dist = MultivariateNormal(math.sqrt(ab) * m.base_mean[c].double(), ab * cov + (1 - ab) * torch.eye(4, dtype=torch.float64))
                comps.append(dist.log_prob(x.flatten(1)) + float(m.base_log_weight[c]))
            ref = torch.logsumexp(torch.stack(comps, 1), 1)
            got = m.base_log_density(x, torch.full((5,), t)).double()
            # Equal up to a constant (the base drops the 2 pi term): differences between points agree.
            torch.testing.assert_close(got - got[0], ref - ref[0], atol=1e-4, rtol=1e-4)
        # Full rank reproduces each class's sample covariance (above the floor).
        if rank == 4:
            c0 = images[labels == 0].flatten(1)
            cov = m.base_eigvecs[0] @ torch.diag(m.base_eigvals[0]) @ m.base_eigvecs[0].T
            torch.testing.assert_close(cov.double(), torch.cov(c0.T), atol=1e-4, rtol=1e-4)


def test_ddim_on_the_untrained_model_samples_the_fitted_gaussian():
    """Density units, zero residual, no class preference: the score is the base's, so DDIM draws from the
    Gaussian fitted to the data (mean -0.5, std 0.3 per pixel)."""
    g = torch.Generator().manual_seed(1)
    data = -0.5 + 0.3 * torch.randn(4000, 1, 4, 4, generator=g)
    m = _model(4, gaussian_base="single", base_rank=16).float()
    m.fit_gaussian_base(data)
    with torch.no_grad():  # a classifier head that prefers nothing: its lse adds no gradient
        m.net.pool.proj.weight.zero_()
    x, _ = m.generate(None, seeds="0-399", steps=200)
    assert abs(float(x.mean()) + 0.5) < 0.03 and abs(float(x.std()) - 0.3) < 0.03


def test_softmax_is_the_class_head_whatever_the_base():
    m = _model(4, gaussian_base="classes", base_rank=4)
    x = torch.randn(3, 1, 4, 4, dtype=torch.float64)
    h, _ = m.net(x, torch.tensor([7, 7, 7]))
    torch.testing.assert_close(torch.softmax(m.logits(x, 7), 1), torch.softmax(h, 1))


def test_bad_base_and_residual_settings_are_clear_errors():
    with pytest.raises(StudioError, match="gaussian_base"):
        _model(4, gaussian_base="mixture")
    with pytest.raises(StudioError, match="residual"):
        _model(4, residual="max")
    m = _model(4, gaussian_base="classes")
    with pytest.raises(StudioError, match="label"):
        m.fit_gaussian_base(torch.zeros(6, 1, 4, 4))
    with pytest.raises(StudioError, match="no Gaussian base"):
        _model(4).fit_gaussian_base(torch.zeros(6, 1, 4, 4))


def test_init_from_a_first_design_checkpoint_keeps_the_trunk_and_starts_new_parts_fresh(tmp_path):
    from studio.hub import ModelCard, save_checkpoint

    old = EGC(EGCConfig(widths=[4, 8], feat_dim=4, emb_dim=16, num_timesteps=100))
    save_checkpoint(tmp_path / "old", "egc", old.config, old.state_dict(), ModelCard(summary="first design"))
    new = EGC(EGCConfig(widths=[4, 8], feat_dim=4, emb_dim=16, num_timesteps=100, density_units=True,
                        gaussian_base="single", base_rank=8, residual="sum"))
    fresh = init_from_checkpoint(new, str(tmp_path / "old"), new_parts=("net.residual.", "base_"))
    assert set(fresh) == {"net.residual.weight", "net.residual.bias", "base_mean", "base_eigvecs", "base_eigvals",
                          "base_rest_var", "base_log_weight"}
    torch.testing.assert_close(new.net.inp.weight, old.net.inp.weight)
    with pytest.raises(Exception, match="residual"):  # without new_parts the load stays strict
        init_from_checkpoint(new, str(tmp_path / "old"))


def test_toy_proof_the_learned_score_beats_the_base_and_guidance_finds_the_mode():
    """Three 4x4 patterns with small noise (a labelled mixture). The base is one Gaussian fitted to all of it,
    exact only at high noise; after a short training the full model's denoising loss is clearly below the
    base's wherever the mixture differs from one Gaussian, no worse where the base is already near-exact,
    and class-guided DDIM samples land on their class's pattern."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    patterns = (torch.rand(3, 1, 4, 4, generator=g) > 0.5).float() * 1.6 - 0.8

    def data(n):
        y = torch.randint(0, 3, (n,), generator=g)
        return patterns[y] + 0.05 * torch.randn(n, 1, 4, 4, generator=g), y

    m = EGC(EGCConfig(image_size=4, num_classes=3, class_names=["a", "b", "c"], widths=[16, 32], feat_dim=16,
                      emb_dim=32, density_units=True, gaussian_base="single", residual="sum"))
    m.fit_gaussian_base(*data(2000))
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    for _ in range(300):
        x, y = data(128)
        loss = m.training_losses(x, y, gamma=1.0, low_t_fraction=0.1, ce_weight="uniform", generator=g)["loss"]
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
    m.eval().requires_grad_(False)
    test_x, _ = data(500)
    for t in (50, 100, 250):
        full, base = m.denoising_loss(test_x, t), m.denoising_loss(test_x, t, base_only=True)
        assert full < 0.9 * base, (t, full, base)
    for t in (500, 750):  # the base is near-exact here: the learned part must not spoil it
        full, base = m.denoising_loss(test_x, t), m.denoising_loss(test_x, t, base_only=True)
        assert full < base + 0.01, (t, full, base)
    classes = [i % 3 for i in range(60)]
    x, _ = m.generate(classes, seeds="0-59", steps=20, guidance=1.0)
    nearest = ((x[:, None] - patterns[None]) ** 2).flatten(2).mean(2).argmin(1)
    assert (nearest == torch.tensor(classes)).float().mean() >= 0.9


def test_guidance_rule_takes_the_lowest_fd_that_reaches_the_accuracy_else_the_most_accurate():
    from train.egc_choose_guidance import choose

    rows = [{"guidance": 1.0, "val_class_accuracy": 0.5, "fd_val": 5.0},
            {"guidance": 4.0, "val_class_accuracy": 0.9, "fd_val": 8.0},
            {"guidance": 8.0, "val_class_accuracy": 0.95, "fd_val": 9.0}]
    assert choose(rows, 0.85) == 4.0
    assert choose(rows, 0.99) == 8.0  # none reaches it: the most accurate
