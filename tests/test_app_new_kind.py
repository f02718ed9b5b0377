"""A model kind the app has never seen, registered by this test only, is offered and works in the Trajectory,
Saliency (generative saliency and disagreement) and Inpaint tabs through gradio_client, with no edit to studio/ui:
the tabs ask each checkpoint what it offers (``studio.protocol``: ``task_specs`` and ``image_energy``).

The kind is a Gaussian: E(x) = |x - m|^2 / 2 with a stored mean image m, so its energy gradient is x - m and the
disagreement map is |x - m| per pixel, exactly."""
import base64
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import plotly.io
import pytest
import torch
from gradio_client import handle_file
from PIL import Image
from torch import nn

from studio.hub import ModelCard, save_checkpoint
from studio.kinds import MODEL_KINDS, register_model
from studio.langevin import langevin, make_generators, parse_seeds, randn
from studio.protocol import SampleOutput, StudioModel, TaskSpec

from conftest import serve_app_client

KIND, NAME, SIZE = "test-gaussian", "gaussian-test", 8
UI = Path(__file__).resolve().parents[1] / "studio" / "ui"


@dataclass
class GaussianConfig:
    image_size: int = SIZE
    channels: int = 1
    steps: int = 4
    step_size: float = 0.1


class Gaussian(nn.Module, StudioModel):
    """N(m, I) on images; Langevin from N(0, I) (generate) or with known pixels held (inpaint)."""

    config_class = GaussianConfig
    title = "Gaussian"

    def __init__(self, config: GaussianConfig):
        super().__init__()
        self.config = config
        self.mean = nn.Parameter(torch.zeros(config.channels, config.image_size, config.image_size))

    @classmethod
    def task_specs(cls, config: GaussianConfig) -> list[TaskSpec]:
        params = {"steps": config.steps, "step_size": config.step_size, "noise": 1.0}
        return [TaskSpec("generate", "generate", params, saliency=True, describe="the chain starts at N(0, I)"),
                TaskSpec("inpaint", "inpaint", params, frozenset({"image", "mask"}), saliency=True)]

    def image_energy(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (x - self.mean).pow(2).flatten(1).sum(1)

    def _chain(self, x0, gens, steps, step_size, noise, record_every, progress, mask=None, known=None) -> SampleOutput:
        step = step_size or self.config.step_size
        out, trace = langevin(self.image_energy, x0, steps=steps or self.config.steps, step_size=step,
                              noise_std=noise * math.sqrt(2 * step), generator=gens, mask=mask, known=known,
                              clamp=(-1.0, 1.0), record_every=record_every, progress=progress, modules=[self])
        return SampleOutput(out, trace)

    def generate(self, seeds="0-3", steps=None, step_size=None, noise=1.0, record_every=0, progress=False):
        gens = make_generators(parse_seeds(seeds))
        x0 = randn((len(gens), self.config.channels, SIZE, SIZE), gens).clamp(-1, 1)
        return self._chain(x0, gens, steps, step_size, noise, record_every, progress)

    def inpaint(self, image, mask, seeds="0-3", steps=None, step_size=None, noise=1.0, record_every=0, progress=False):
        gens = make_generators(parse_seeds(seeds))
        known = image.reshape(1, self.config.channels, SIZE, SIZE).expand(len(gens), -1, -1, -1)
        x0 = randn(known.shape, gens).clamp(-1, 1)
        return self._chain(x0, gens, steps, step_size, noise, record_every, progress, mask.reshape(1, 1, SIZE, SIZE), known)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    register_model(KIND)(Gaussian)
    root = tmp_path_factory.mktemp("ckpts")
    model = Gaussian(GaussianConfig())
    with torch.no_grad():  # a mean image with structure: a left-to-right ramp
        model.mean.copy_(torch.linspace(-0.8, 0.8, SIZE).expand(1, SIZE, SIZE))
    save_checkpoint(root / NAME, KIND, model.config, model.state_dict(), ModelCard(summary="a Gaussian test kind"))
    try:
        yield from serve_app_client(root)
    finally:
        MODEL_KINDS.pop(KIND, None)


def _model():
    from studio.ui.common import cached_model

    return cached_model(NAME)


def _arr(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(np.int16)


def _mean_energy(chart) -> np.ndarray:
    trace = next(t for t in plotly.io.from_json(chart["plot"]).data if t.name == "mean energy")
    y = trace.y
    if isinstance(y, dict) and "bdata" in y:
        return np.frombuffer(base64.b64decode(y["bdata"]), dtype=y["dtype"])
    return np.asarray(y)


def test_no_edit_to_the_ui_names_the_kind(client):
    for path in UI.glob("*.py"):
        text = path.read_text()
        assert KIND not in text and NAME not in text, path


def test_trajectory_offers_and_records_both_tasks(client):
    from studio.ui import trajectory_tab as tt
    from studio.viz import to_uint8

    assert NAME in tt.trajectory_models() and tt._tasks(NAME)["choices"] == [("generate", "generate"), ("inpaint", "inpaint")]
    gif, slider, frame, chart, caption, zipped, note = client.predict(NAME, "generate", 3, api_name="/trajectory")
    assert "Unconditional sample, seed 3: the chain starts at N(0, I)." == note and caption == "frame 4: step 4"
    out = _model().run("generate", seeds="3", record_every=1)
    with zipfile.ZipFile(zipped) as zf:
        frames = [np.asarray(Image.open(zf.open(n)).convert("RGB")) for n in zf.namelist()]
    assert len(frames) == 5 and (frames[-1][..., 0] == to_uint8(out.images)[0][..., 0]).all()
    np.testing.assert_allclose(_mean_energy(chart), out.trace.energy_matrix().mean(1).numpy(), rtol=1e-5)
    *_, note = client.predict(NAME, "inpaint", 1, api_name="/trajectory")
    assert "Inpainting the centre square" in note and "seed 1" in note


def test_generative_saliency_and_disagreement(client):
    from studio.ui import saliency_tab as st
    from studio.viz import HEATMAP_COLOURS

    assert NAME in st.saliency_models() and st.saliency_tasks(NAME) == ["generate", "inpaint"]
    assert NAME in st.disagreement_models()
    shown_in, shown_out, ref, over_in, over_out, chart, note = client.predict(NAME, "generate", 0, None, "centre square",
                                                                              2, 0.6, api_name="/saliency")
    assert "Unconditional sample" in note and "4 Langevin steps in all, seed 2" in note
    res = st.compute(NAME, "generate", seed=2)
    torch.testing.assert_close(res.saliency, _model().run("generate", seeds="2", record_every=10**9).trace.saliency()[0])
    *_, over_in, over_out, chart, note = client.predict(NAME, "inpaint", 0, None, "centre square", 0, 1.0, api_name="/saliency")
    heat = _arr(over_in)[:: st.DISPLAY // SIZE, :: st.DISPLAY // SIZE]
    known = ~st.preset_mask("centre square", SIZE)
    assert (heat[known] == HEATMAP_COLOURS[0]).all() and (heat[~known] != HEATMAP_COLOURS[0]).any()
    # Disagreement: grad E(x) = x - m, so the map is |x - m| per pixel (min-max normalised), exactly.
    image, over, note = client.predict(NAME, 0, None, 1.0, api_name="/disagreement")
    assert "Energy under gaussian-test: E(x) = " in note
    from studio.saliency import disagreement_map
    from studio.ui.inputs import model_input, offer

    x, _, _ = model_input(offer(NAME).raw, 0, None)
    raw, shown, energy = disagreement_map(_model(), x)
    torch.testing.assert_close(raw, (x - _model().mean.detach()).abs()[0])
    assert energy == pytest.approx(float(0.5 * (x - _model().mean.detach()).pow(2).sum()), rel=1e-5)
    assert (_arr(over) == np.asarray(st._overlay(x, shown, 1.0).convert("RGB"))).all()


def test_inpaint_tab_completes_and_keeps_the_known_pixels(client, tmp_path):
    from studio.ui import inpaint_tab

    label = "Gaussian (gaussian-test)"
    assert inpaint_tab.available_models()[label] == NAME
    img = np.tile(np.linspace(0, 250, SIZE).astype(np.uint8), (SIZE, 1))
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[2:6, 2:6] = 255
    Image.fromarray(img).save(tmp_path / "i.png"), Image.fromarray(mask).save(tmp_path / "m.png")
    gallery, notes = client.predict(label, handle_file(str(tmp_path / "i.png")), handle_file(str(tmp_path / "m.png")),
                                    "(unconditional)", 1.0, 3, 4, 5, api_name="/inpaint_image")
    assert len(gallery) == 4 and "Seeds used: 5-7" in notes and "16 of 64 pixels were replaced" in notes
    step = 128 // SIZE
    completions = [np.asarray(Image.open(g["image"]).convert("L"))[::step, ::step] for g in gallery[1:]]
    keep = mask == 0
    for c in completions:
        assert (np.abs(c[keep].astype(int) - img[keep].astype(int)) <= 1).all()  # known pixels are kept
    assert not (completions[0][~keep] == completions[1][~keep]).all()  # seeds give different completions
