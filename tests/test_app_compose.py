"""The Compose tab through gradio_client, on tiny random CDRL checkpoints (class and attribute models) and the shipped judge."""
from pathlib import Path

import gradio as gr
import pytest
import torch

from studio.cdrl import CDRL, CDRLConfig
from studio.data import fmnist_attributes as fa
from studio.hub import ModelCard, save_checkpoint

from conftest import checkpoint_root, serve_app_client

SMALL = dict(ebm_width=4, init_width=4, temb_dim=16, langevin_steps=1)
ATTRS = list(fa.DEFAULT_ATTRIBUTES)
OFF = ["off"] * 10
ONES = [1.0] * 10


def save_tiny_attribute_model(root: Path) -> None:
    torch.manual_seed(0)
    model = CDRL(CDRLConfig(**SMALL, num_classes=6, class_names=fa.class_names(ATTRS), attributes=ATTRS,
                            conditional_initializer=False, attribute_thresholds={"bright": 0.65, "high-contrast": 0.18}))
    save_checkpoint(root / "cdrl-fmnist-attributes", model.kind, model.config, model.state_dict(), ModelCard(summary="tiny attributes"))


def save_tiny_compose_models(root: Path, attributes: bool = True) -> None:
    torch.manual_seed(0)
    model = CDRL(CDRLConfig(**SMALL))
    save_checkpoint(root / "cdrl-fmnist", model.kind, model.config, model.state_dict(), ModelCard(summary="tiny cdrl-fmnist"))
    if attributes:
        save_tiny_attribute_model(root)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = checkpoint_root(tmp_path_factory, "evaluator-fmnist")
    save_tiny_compose_models(root)
    yield from serve_app_client(root)


def _classes(**roles):
    """Roles for the 10 classes by index, e.g. _classes(c1="AND", c3="NOT")."""
    out = list(OFF)
    for key, role in roles.items():
        out[int(key[1:])] = role
    return out


def test_classes_and_not_with_weights(client):
    weights = list(ONES)
    weights[3] = 2.0
    gallery, energy, summary = client.predict(*_classes(c1="AND", c3="NOT"), *weights, 1.0, 3, 2, api_name="/compose_classes")
    assert len(gallery) == 2 and all(Path(item["image"]).exists() for item in gallery)
    assert all("%)" in item["caption"] for item in gallery)  # evaluator-fmnist's class and probability under each
    assert "Seeds used: 3-4" in summary
    # w = 1: (w + 1) lambda per concept, -(w L + L - 1) for null with L = 1 - 2 = -1.
    assert "Energy sampled: F = 2 f(x; Trouser) - 4 f(x; Dress) + 3 f(x; null) (w = 1)" in summary
    assert "network evaluations per sample" in summary and energy is not None


def test_no_class_chosen_is_unconditional_sampling(client):
    gallery, _, summary = client.predict(*OFF, *ONES, 1.0, 0, 1, api_name="/compose_classes")
    assert len(gallery) == 1 and "plain unconditional sampling" in summary


def test_attributes_true_false_and_no_control(client):
    gallery, _, summary = client.predict("True", "No control", "False", 3.0, 0, 2, api_name="/compose_attributes")
    assert len(gallery) == 2
    for item in gallery:
        caption = item["caption"]
        assert caption[0] in "✓✗" and "top" in caption and "bright" in caption and "high-contrast" in caption
    assert "F = 4 f(x; top=True) + 4 f(x; high-contrast=False) - 7 f(x; null) (w = 3)" in summary
    assert "samples have every asked value" in summary


def test_every_attribute_on_no_control_says_so(client):
    gallery, _, summary = client.predict("No control", "No control", "No control", 3.0, 0, 1, api_name="/compose_attributes")
    assert len(gallery) == 1 and "Every attribute is on 'No control': this is plain unconditional sampling" in summary


@pytest.mark.parametrize("args, api, message", [
    ((*["NOT"] * 10, *ONES, 1.0, 0, 1), "/compose_classes", "NOT of every class leaves nothing to sample"),
    ((*_classes(c1="AND"), 9.0, *ONES[1:], 1.0, 0, 1), "/compose_classes", "'T-shirt/top weight' must be between 0.1 and 5"),
    ((*_classes(c0="AND"), 0.0, *ONES[1:], 1.0, 0, 1), "/compose_classes", "'T-shirt/top weight' must be between 0.1 and 5"),
    ((*_classes(c1="MAYBE"), *ONES, 1.0, 0, 1), "/compose_classes", "'MAYBE'.*is not in the list of choices"),
    ((*_classes(c1="AND"), *ONES, 21.0, 0, 1), "/compose_classes", "'Guidance w' must be between 0 and 20"),
    (("True", "Yes", "False", 3.0, 0, 1), "/compose_attributes", "'Yes'.*is not in the list of choices"),
    (("True", "False", "False", 3.0, 0, 99), "/compose_attributes", "'Samples' must be between 1 and 32"),
])
def test_bad_input_is_a_clear_error(client, args, api, message):
    with pytest.raises(Exception, match=message):
        client.predict(*args, api_name=api)


def test_only_the_class_model_present(tmp_path, monkeypatch):
    """Without the attribute model the tab offers the class model alone, with a note, and no attribute endpoint."""
    from studio.ui import common, compose_tab

    save_tiny_compose_models(tmp_path, attributes=False)
    monkeypatch.setenv("STUDIO_CHECKPOINTS", str(tmp_path))
    common.cached_model.cache_clear()
    try:
        with gr.Blocks() as demo:
            compose_tab.build()
        apis = {dep.api_name for dep in demo.fns.values()}
        notes = [b.value for b in demo.blocks.values() if isinstance(b, gr.Markdown) and b.elem_id == "compose-no-attr-note"]
    finally:
        common.cached_model.cache_clear()
    assert "compose_classes" in apis and "compose_attributes" not in apis
    assert notes and "cdrl-fmnist-attributes" in notes[0] and "only the class model" in notes[0]
