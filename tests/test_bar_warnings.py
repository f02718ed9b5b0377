"""Bars (studio.bars) read from the cards, and the warnings the tabs show next to the button that runs a model
that misses one (studio.ui.bar_warnings), checked through gradio_client on the app's config."""
import json

import pytest
import torch

from studio import bars
from studio.coopflow import CoopFlow
from studio.ui import bar_warnings

from conftest import checkpoint_root, serve_app_client
from test_app_coopflow import save_tiny_coopflow


def test_verdicts_compare_with_numbers_or_other_keys_and_skip_what_was_not_measured():
    metrics = {"t2g_fd": 20.1, "t2g_ssim": 0.25, "identity_t2g_ssim": 0.28, "t2g_target_score": 0.84}
    verdicts = {v.bar.key: v for v in bars.verdicts("letit-emoji", "t2g", metrics)}
    assert set(verdicts) == {"t2g_fd", "t2g_ssim", "t2g_target_score"}  # t2g_psnr_gain is not in the metrics
    assert not verdicts["t2g_fd"].met and not verdicts["t2g_ssim"].met and verdicts["t2g_target_score"].met
    assert verdicts["t2g_ssim"].target == 0.28
    assert "20.1 (bar <= 10)" in verdicts["t2g_fd"].describe()
    assert "identity_t2g_ssim = 0.28" in verdicts["t2g_ssim"].describe()
    assert [v.bar.key for v in bars.misses("letit-emoji", "g2t", metrics)] == []  # other direction: nothing measured
    with pytest.raises(ValueError, match="Unknown comparison"):
        bars.Bar("m", "k", "=>", 1.0, "x", "generate", "here")


def test_every_bar_names_a_model_and_a_key_its_card_can_hold():
    from studio.registry import REGISTRY

    for bar in bars.BARS:
        assert bar.model in REGISTRY, bar
        assert bar.key and bar.what and bar.use and bar.source


def test_warning_text_is_empty_when_every_bar_is_met():
    met = {"coopflow_fd_refined": 8.0, "coopflow_fd_flow": 20.0, "coopflow_class_entropy": 2.2}
    assert bars.misses("coopflow-fmnist", "generate", met) == []


def _write_metrics(root, name: str, metrics: dict) -> None:
    (root / name / "metrics.json").write_text(json.dumps(metrics))


def _warning(client) -> tuple[dict, dict]:
    """The bar warning's markdown and card button in the served app's config."""
    comps = client.config["components"]
    text = next(c for c in comps if "bar-warning" in (c["props"].get("elem_classes") or []))
    button = next(c for c in comps if "bar-warning-card" in (c["props"].get("elem_classes") or []))
    return text["props"], button["props"]


@pytest.fixture(scope="module")
def missed_root(tmp_path_factory):
    root = checkpoint_root(tmp_path_factory, "toy-ring")
    save_tiny_coopflow(root)
    return root


def test_a_model_that_misses_its_bar_says_so_next_to_its_button(missed_root, monkeypatch):
    _write_metrics(missed_root, "coopflow-fmnist", {"coopflow_fd_refined": 21.83, "coopflow_fd_flow": 22.71, "fd_floor": 0.176})
    gen = serve_app_client(missed_root)
    client = next(gen)
    try:
        text, button = _warning(client)
        assert text["visible"] is not False and "21.83 (bar <= 10)" in text["value"]
        assert "Below its bar" in text["value"]
        assert button["visible"] is not False and button["value"] == "Model card: coopflow-fmnist"
        # The card the button opens (the Models tab's endpoint) is that model's card.
        assert "coopflow-fmnist" in client.predict("coopflow-fmnist", api_name="/model_card")
    finally:
        gen.close()


def test_the_warning_disappears_when_the_card_meets_the_bar(missed_root):
    _write_metrics(missed_root, "coopflow-fmnist", {"coopflow_fd_refined": 8.5, "coopflow_fd_flow": 22.71,
                                                    "coopflow_class_entropy": 2.2})
    gen = serve_app_client(missed_root)
    client = next(gen)
    try:
        text, button = _warning(client)
        assert text["visible"] is False and button["visible"] is False
    finally:
        gen.close()


def test_shipped_cards_warn_exactly_about_their_misses():
    """Whatever today's cards say (EGC, CoopFlow, LETIT, CF-EBM and CDRL miss bars as this is written), each tab's
    warning lists every measured miss with its number, and nothing when the card meets its bars."""
    for name, uses in (("egc-fmnist", "generate"), ("coopflow-fmnist", "generate"), ("letit-emoji", "t2g"),
                       ("letit-emoji", "g2t"), ("cfebm-fmnist", ("generate", "multiscale")), ("cdrl-fmnist", "generate"),
                       ("nerf-lebm-shapes", "generate")):
        missed = [v for use in ([uses] if isinstance(uses, str) else uses) for v in bars.misses(name, use)]
        text = bar_warnings.warning_text(name, uses)
        assert all(v.describe() in text for v in missed), (name, text)
        assert bool(text) == bool(missed), (name, text)
