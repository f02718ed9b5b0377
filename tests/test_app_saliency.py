"""The Saliency tab (and the Trajectory tab's per-model tasks) end to end through gradio_client, on tiny
random checkpoints built by the test: CF-EBM (Fashion-MNIST and Twitter -> Google translation), CDRL and
LETIT (one trained, one without trained directions, which must not be offered)."""
import shutil
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from gradio_client import handle_file
from PIL import Image

from studio.cdrl import CDRL, CDRLConfig
from studio.cfebm import CFEBM, CFEBMConfig
from studio.hub import ModelCard, checkpoints_dir, save_checkpoint
from studio.letit import LETIT, LETITConfig
from studio.ui import saliency_tab as st
from studio.ui import trajectory_tab as tt
from studio.viz import HEATMAP_COLOURS, pixel_map

from conftest import serve_app_client
from test_app_cfebm import tiny_cfebm

LETIT_SAMPLER = {"steps": 4, "step_size": 0.05, "noise": 0.1}


def tiny_translation() -> CFEBM:
    torch.manual_seed(2)
    return CFEBM(CFEBMConfig(channels=3, width=4, base_resolution=8, resolution=16, steps={"16": 3},
                             source_domain="twitter", target_domain="google")).eval()


def tiny_letit(directions=("t2g", "g2t")) -> LETIT:
    torch.manual_seed(0)
    cfg = LETITConfig(image_size=16, ae_widths=[4, 8], ae_blocks=[0, 1], latent_channels=2, ebm_width=4,
                      directions={d: dict(LETIT_SAMPLER) for d in directions})
    return LETIT(cfg).eval()


def tiny_cdrl() -> CDRL:
    torch.manual_seed(0)
    return CDRL(CDRLConfig(ebm_width=4, init_width=4, temb_dim=16, langevin_steps=2))


def save_tiny_models(root: Path) -> None:
    """Every kind the Saliency tab covers, under the shipped names, plus one model it must not offer."""
    shutil.copytree(checkpoints_dir() / "toy-ring", root / "toy-ring")
    for name, model in (("cfebm-fmnist", tiny_cfebm()), ("cfebm-emoji-t2g", tiny_translation()),
                        ("cdrl-fmnist", tiny_cdrl()), ("letit-emoji", tiny_letit()),
                        ("letit-untrained", tiny_letit(directions=()))):
        save_checkpoint(root / name, model.kind, model.config, model.state_dict(), ModelCard(summary=f"tiny {name}"))


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpts")
    save_tiny_models(root)
    yield from serve_app_client(root)


def _arr(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(np.int16)


def _saliency(client, name, task, index=0, upload=None, mask="centre square", seed=0, opacity=0.6):
    out = client.predict(name, task, index, upload, mask, seed, opacity, api_name="/saliency")
    # A hidden, empty output comes back as its update ({"value": None, "visible": False, ...}).
    return [o["value"] if isinstance(o, dict) and o.get("__type__") == "update" else o for o in out]


def test_only_models_with_a_task_are_offered_with_their_own_tasks(client):
    offered = ["cdrl-fmnist", "cfebm-emoji-t2g", "cfebm-fmnist", "letit-emoji"]
    assert st.saliency_models() == offered and tt.trajectory_models() == offered
    assert st.disagreement_models() == offered
    assert st.saliency_tasks("cfebm-emoji-t2g") == ["translate"]  # not generate/inpaint: a shape error
    assert st.saliency_tasks("letit-emoji") == ["translate", "translate g2t"]
    assert st.saliency_tasks("cfebm-fmnist") == st.saliency_tasks("cdrl-fmnist") == ["generate", "inpaint"]
    # Switching models offers that model's tasks (labels say the direction; the API takes the value).
    both = [("translate (twitter -> google)", "translate"), ("translate (google -> twitter)", "translate g2t")]
    assert st._task_controls("letit-emoji")[0]["choices"] == both and tt._tasks("letit-emoji")["choices"] == both
    assert tt._tasks("cfebm-emoji-t2g")["choices"] == both[:1]
    assert tt._tasks("cdrl-fmnist", "inpaint")["value"] == "inpaint"
    task, index, upload, mask = st._task_controls("cfebm-fmnist", "generate")
    assert not index["visible"] and not mask["visible"] and st._task_controls("cfebm-fmnist", "inpaint")[3]["visible"]
    with pytest.raises(Exception, match="not in the list of choices"):
        _saliency(client, "letit-untrained", "translate")
    with pytest.raises(Exception, match="not in the list of choices"):
        client.predict("toy-ring", "generate", 0, api_name="/trajectory")


def test_translation_saliency_and_opacity_reblends_without_a_chain(client, monkeypatch):
    calls = []
    original = CFEBM.translate
    monkeypatch.setattr(CFEBM, "translate", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    shown_in, shown_out, ref, over_in, over_out, chart, note = _saliency(client, "cfebm-emoji-t2g", "translate")
    assert len(calls) == 1 and ref is None and chart is not None
    assert "from twitter to google style" in note and "3 Langevin steps" in note and "held-out emoji #0" in note
    img, out = _arr(shown_in), _arr(shown_out)
    assert img.shape == out.shape == (st.DISPLAY, st.DISPLAY, 3)
    # Opacity 0 is the image itself, opacity 1 the pure heatmap: re-blended from the stored map, no new chain.
    plain_in, plain_out = client.predict(0.0, api_name="/saliency_opacity")
    assert (_arr(plain_in) == img).all() and (_arr(plain_out) == out).all()
    heat_in, heat_out = client.predict(1.0, api_name="/saliency_opacity")
    assert (_arr(heat_in) == _arr(heat_out)).all() and not (_arr(heat_in) == img).all()
    half_in, _ = client.predict(0.5, api_name="/saliency_opacity")
    assert np.abs(_arr(half_in) - (img + _arr(heat_in)) / 2).max() <= 1
    assert len(calls) == 1


@pytest.mark.parametrize("name", ["cfebm-fmnist", "cdrl-fmnist"])
@pytest.mark.parametrize("task", ["generate", "inpaint"])
def test_generation_and_inpainting_saliency(client, name, task):
    shown_in, shown_out, ref, over_in, over_out, chart, note = _saliency(client, name, task, seed=3, opacity=1.0)
    assert ref is None and chart is not None and "seed 3" in note and "Saliency: per-pixel L2 norm" in note
    assert _arr(over_in).shape == (st.DISPLAY, st.DISPLAY, 3)
    if task == "inpaint":
        assert "centre square (256 of 1024 pixels)" in note
        # Known pixels cannot move, so their saliency is exactly 0: the darkest colour of the ramp.
        heat = _arr(over_in)[:: st.DISPLAY // 32, :: st.DISPLAY // 32]
        known = ~st.preset_mask("centre square", 32)
        assert (heat[known] == HEATMAP_COLOURS[0]).all() and (heat[~known] != HEATMAP_COLOURS[0]).any()


def test_saliency_is_read_from_the_trace(client):
    from studio.ui.common import cached_model

    res = st.compute("cfebm-emoji-t2g", "translate", 0, None, seed=4)
    _, trace = cached_model("cfebm-emoji-t2g").translate(res.input, seeds="4")
    torch.testing.assert_close(res.saliency, trace.saliency()[0])
    assert res.saliency.min() == 0 and res.saliency.max() == 1


@pytest.mark.parametrize("task, source, target", [("translate", "twitter", "google"), ("translate g2t", "google", "twitter")])
def test_letit_decoded_difference_and_latent_shift(client, task, source, target):
    shown_in, shown_out, ref, over_in, over_out, chart, note = _saliency(client, "letit-emoji", task, seed=1)
    assert ref is not None and Path(ref).exists() and chart is not None
    assert f"from {source} to {target} style with LETIT" in note and "decoded difference" in note
    assert "2x8x8 latent" in note and "Reconstruction PSNR" in note
    res = st.compute("letit-emoji", task, 0, None, seed=1)
    from studio.ui.common import cached_model

    r = cached_model("letit-emoji").translate(res.input, {"translate": "t2g", "translate g2t": "g2t"}[task], seeds="1")
    torch.testing.assert_close(res.saliency, pixel_map(r.outputs[0] - r.reconstructions[0]))
    torch.testing.assert_close(res.reference, r.reconstructions[0])
    bars, heat = res.figure.data
    assert bars.type == "bar" and heat.type == "heatmap" and len(bars.y) == 2 and np.asarray(heat.z).shape == (8, 8)
    np.testing.assert_allclose(bars.y, r.shift_per_channel()[0].numpy(), rtol=1e-5)


def test_uploads_and_bad_input_are_clear_errors(client, tmp_path):
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[10:30, 10:30] = (255, 0, 0, 255)
    Image.fromarray(rgba).save(tmp_path / "e.png")
    *_, note = _saliency(client, "cfebm-emoji-t2g", "translate", upload=handle_file(str(tmp_path / "e.png")))
    assert "your upload" in note and "composited on white" in note and "resized from 40x40 to 16x16" in note
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(gr.Error, match="Cannot read the image file"):  # the handler itself, past Gradio's own check
        st.saliency("cfebm-fmnist", "inpaint", 0, str(tmp_path / "bad.png"), "centre square", 0, 0.5)
    for args, message in [
        (("cfebm-emoji-t2g", "inpaint"), "supports translate, not 'inpaint'"),
        (("cfebm-fmnist", "translate"), "supports generate, inpaint, not 'translate'"),
        (("cfebm-fmnist", "generate", 0, None, "centre square", -1), r"Seed must be a whole number between 0 and 2\*\*63 - 1; got -1"),
        (("cfebm-fmnist", "inpaint", 10**7), "index must be 0 to|only the held-out"),
        (("cfebm-fmnist", "generate", 0, None, "centre square", 0, 1.5), "greater than maximum|between 0 and 1"),
        (("nope", "generate"), "not in the list of choices"),
    ]:
        with pytest.raises(Exception, match=message):
            _saliency(client, *args)


def test_opacity_before_any_run_is_a_clear_error(client):
    from gradio_client import Client

    fresh = Client(client.src, verbose=False)  # a new session: no stored map
    with pytest.raises(Exception, match="Run a chain first"):
        fresh.predict(0.3, api_name="/saliency_opacity")
    with pytest.raises(Exception, match="Compute a map first"):
        fresh.predict(0.3, api_name="/disagreement_opacity")


@pytest.mark.parametrize("name", ["cfebm-fmnist", "cdrl-fmnist", "cfebm-emoji-t2g", "letit-emoji"])
def test_disagreement_map(client, name):
    state_free = client.predict(name, 0, None, 0.0, api_name="/disagreement")
    image, over, note = state_free
    assert (_arr(image) == _arr(over)).all()  # opacity 0: the image itself
    assert "|grad_x E(x)|" in note and "E(x) = " in note
    heat = client.predict(1.0, api_name="/disagreement_opacity")
    assert not (_arr(heat) == _arr(image)).all()
    from studio.saliency import disagreement_map, image_energy_gradient
    from studio.ui.common import cached_model
    from studio.ui.inputs import offer

    offered = offer(name)
    x, _, _ = st.model_input(offered.raw, 0, None, offered.energy.source)
    model = cached_model(name)
    raw, shown, energy = disagreement_map(model, x)
    # Against a direct finite difference along the gradient: E(x - h g) < E(x) for a small step.
    _, grad = image_energy_gradient(model, x)
    with torch.no_grad():
        lower = float(model.image_energy((x - 1e-3 * grad / grad.norm())[None])[0])
    assert lower < energy and shown.max() == 1 and shown.min() == 0
    torch.testing.assert_close(raw, grad.pow(2).sum(0).sqrt())


def test_trajectory_translate_tasks_and_clamped_scrub(client):
    out = client.predict("cfebm-emoji-t2g", "translate", 2, api_name="/trajectory")
    gif, slider, frame, chart, caption, zipped, note = out
    assert "Translating held-out emoji #0" in note and "to google style, seed 2" in note
    assert caption.startswith("frame 3: step 3")  # 3 steps: start + 3 frames, the last one shown
    with pytest.raises(Exception, match="supports translate, not 'inpaint'"):
        client.predict("cfebm-emoji-t2g", "inpaint", 0, api_name="/trajectory")
    *_, note = client.predict("letit-emoji", "translate g2t", 0, api_name="/trajectory")
    assert "google style) to twitter style, seed 0: the latent chain, each frame decoded" in note
    frame, chart, caption = client.predict(1, api_name="/trajectory_frame")
    assert caption == "frame 1: step 1"
    # The slider ends at the last recorded frame (Gradio rejects API values past it with a clear message);
    # the handler clamps whatever reaches it.
    with pytest.raises(Exception, match="'Frame' must be between 0 and 4; got 1000000"):
        client.predict(10**6, api_name="/trajectory_frame")
    trace, _ = tt.record("letit-emoji", "translate", 0)
    frames, labels, steps, _ = tt._frames(trace)
    assert len(frames) == 5 and frames[0].shape == (16, 16, 3)
    state = {"frames": frames, "labels": labels, "steps": steps, "trace": trace}
    assert tt.show_frame(state, 10**6)[2].startswith("frame 4:") and tt.show_frame(state, -3)[2].startswith("frame 0:")


SHIPPED_LETIT = Path(__file__).resolve().parents[1] / "checkpoints" / "letit-emoji"


@pytest.mark.slow
@pytest.mark.skipif(not (SHIPPED_LETIT / "model.safetensors").is_file(), reason="letit-emoji is not shipped here")
def test_shipped_letit_saliency_follows_the_true_style_difference():
    """The tab's LETIT saliency (decoded difference) on the 20 held-out emoji pairs of assets/examples: it
    should point where the true Google drawing differs from the Twitter one (measured 0.569 for t2g, and 0.972
    against the change the translation made; the pixel-space cfebm-emoji-t2g's generative saliency reaches 0.586)."""
    import studio
    from studio.metrics import spearman
    from test_shipped_models import _emoji_examples

    model = studio.load(SHIPPED_LETIT)  # by path: the module's app fixture points the names at tiny models
    twitter, google = _emoji_examples("twitter"), _emoji_examples("google")
    r = model.translate(twitter, "t2g", seeds="0-19")
    saliency = [pixel_map(r.outputs[i] - r.reconstructions[i]) for i in range(20)]
    rho = lambda ref: sum(spearman(saliency[i], ref[i]) for i in range(20)) / 20  # noqa: E731
    needed, changed = rho((google - twitter).norm(dim=1)), rho((r.outputs - twitter).norm(dim=1))
    print(f"letit-emoji t2g Spearman on 20 held-out emoji: saliency vs true difference {needed:.3f}, vs change {changed:.3f}")
    assert needed >= 0.4 and changed >= 0.5
