"""Method tabs in headless Chromium on tiny random checkpoints: CDRL and CF-EBM generation, painting a mask, trajectories."""
import io
import os

import numpy as np
import pytest
import torch
from PIL import Image

from studio.cdrl import CDRL, CDRLConfig
from studio.hub import ModelCard, save_checkpoint

from conftest import app_in_chromium, checkpoint_root, screenshot
from test_app_cfebm import save_tiny_cfebms
from test_browser import CHROMIUM

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian chromium")]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    root = checkpoint_root(tmp_path_factory, "toy-ring")
    torch.manual_seed(0)
    model = CDRL(CDRLConfig(ebm_width=4, init_width=4, temb_dim=16, langevin_steps=2))
    save_checkpoint(root / "cdrl-fmnist", "cdrl", model.config, model.state_dict(), ModelCard(summary="tiny"))
    save_tiny_cfebms(root)
    yield from app_in_chromium(root, CHROMIUM)


def _gallery_images(page) -> list[np.ndarray]:
    """The gallery tiles as grey arrays at the model's 32 px (tiles are 4x nearest enlargements)."""
    srcs = page.eval_on_selector_all("button.thumbnail-item img", "els => els.map(e => e.src)")
    out = []
    for src in srcs:
        img = Image.open(io.BytesIO(page.request.get(src).body())).convert("L")
        out.append(np.asarray(img.resize((32, 32), Image.NEAREST), dtype=np.int16))
    return out


def test_paint_a_stroke_and_inpaint(page):
    page.get_by_role("tab", name="Inpaint", exact=True).click()
    canvas = page.locator("canvas").first
    canvas.wait_for(timeout=60000)
    box = canvas.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx - 40, cy)
    page.mouse.down()
    for i in range(1, 11):
        page.mouse.move(cx - 40 + 8 * i, cy + 2 * i, steps=2)
    page.mouse.up()
    page.get_by_role("button", name="Inpaint", exact=True).click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('textarea')].some(t => t.value.includes('pixels were replaced'))", timeout=180000)
    notes = [t for t in page.locator("textarea").all_inner_texts()]
    text = page.evaluate("() => [...document.querySelectorAll('textarea')].map(t => t.value).join('\\n')")
    replaced = int(text.split(" of 1024 pixels were replaced")[0].split(";")[-1].strip())
    assert 0 < replaced < 1024, (notes, text)
    assert page.locator("[data-testid='gallery'] img, .gallery img, button.thumbnail-item img").count() >= 2
    masked, *completions = _gallery_images(page)
    hole = masked == 128  # the masked input shows the hole in mid grey
    assert 0 < hole.sum() and len(completions) == 4
    for done in completions:
        changed = done != masked
        assert changed.any() and not (changed & ~hole).any(), "a completion changed pixels outside the painted region"
    screenshot(page, "inpaint")
    # "Show the chain": select the second completion and open its recorded chain in the Trajectory tab.
    page.locator("button.thumbnail-item").nth(2).click()
    page.get_by_role("button", name="Show the chain of the selected completion in Trajectory").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('textarea')].some(t => t.value.includes('inpainting chain of completion 2'))",
        timeout=120000)
    assert page.get_by_role("button", name="Record chain", exact=True).is_visible()


def test_cdrl_tab_generates(page):
    page.get_by_role("tab", name="CDRL").click()
    page.get_by_role("button", name="Generate", exact=True).click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('textarea')].some(t => t.value.includes('Seeds used: 0-15'))", timeout=180000)
    assert page.locator("img[src*='.gif'], img[alt*='Trajectory']").count() >= 1 or page.locator("img").count() >= 2


def test_cfebm_tab_generates(page):
    page.get_by_role("tab", name="CF-EBM").click()
    page.get_by_role("button", name="Generate", exact=True).click()
    page.wait_for_function(
        "() => (document.querySelector('#cfebm-generate-note')?.innerText || '').includes('Seeds used: 0-15')", timeout=180000)
    page.locator("#cfebm-grid img").first.wait_for(timeout=60000)
    assert page.locator("#cfebm-grid img").count() >= 1


def test_trajectory_tab_records_and_scrubs(page):
    page.get_by_role("tab", name="Trajectory").click()
    page.get_by_role("button", name="Record chain", exact=True).click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('textarea')].some(t => t.value.startsWith('frame '))", timeout=180000)
    screenshot(page, "trajectory")
