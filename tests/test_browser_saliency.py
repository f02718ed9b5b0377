"""The Saliency tab in headless Chromium on a tiny random translation checkpoint: run it, see the overlay,
move the opacity slider and see the overlay re-blended (no new chain)."""
import io
import os

import numpy as np
import pytest
from PIL import Image

from studio.hub import ModelCard, save_checkpoint

from conftest import app_in_chromium, checkpoint_root, screenshot
from test_app_saliency import tiny_translation
from test_browser import CHROMIUM

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian chromium")]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    root = checkpoint_root(tmp_path_factory, "toy-ring")
    model = tiny_translation()
    save_checkpoint(root / "cfebm-emoji-t2g", "cfebm", model.config, model.state_dict(), ModelCard(summary="tiny"))
    yield from app_in_chromium(root, CHROMIUM)


def _image(page, elem_id: str) -> tuple[str, np.ndarray]:
    src = page.eval_on_selector(f"#{elem_id} img", "e => e.src")
    return src, np.asarray(Image.open(io.BytesIO(page.request.get(src).body())).convert("RGB"), dtype=np.int16)


def test_saliency_runs_and_the_opacity_slider_reblends(page):
    page.get_by_role("tab", name="Saliency", exact=True).click()
    page.get_by_role("button", name="Run and show saliency", exact=True).click()
    page.wait_for_function(
        "() => (document.querySelector('#saliency-note')?.innerText || '').includes('from twitter to google style')",
        timeout=120000)
    page.locator("#saliency-output-overlay img").wait_for(timeout=60000)
    before_src, before = _image(page, "saliency-output-overlay")
    _, output = _image(page, "saliency-output")
    assert before.shape == output.shape == (192, 192, 3) and before.std() > 0
    assert not (before == output).all(), "at opacity 0.6 the heatmap must show over the output"
    # Drag the slider to its left end (opacity 0): the overlay becomes the output image itself.
    track = page.locator("#saliency-opacity input[type=range]")
    box = track.bounding_box()
    page.mouse.click(box["x"] + 1, box["y"] + box["height"] / 2)
    page.wait_for_function(
        f"() => document.querySelector('#saliency-output-overlay img')?.src !== {before_src!r}", timeout=60000)
    _, after = _image(page, "saliency-output-overlay")
    assert (after == output).all()
    assert "from twitter to google style" in page.locator("#saliency-note").inner_text()
    screenshot(page, "saliency")
