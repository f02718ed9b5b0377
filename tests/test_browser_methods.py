"""Method tabs in headless Chromium on tiny random checkpoints: CDRL and CF-EBM generation, painting a mask, trajectories."""
import os
import shutil

import pytest
import torch

from studio.cdrl import CDRL, CDRLConfig
from studio.hub import ModelCard, checkpoints_dir, save_checkpoint
from studio.ui import common

from conftest import open_in_chromium
from test_app_cfebm import save_tiny_cfebms
from test_browser import CHROMIUM

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian chromium")]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpts")
    shutil.copytree(checkpoints_dir() / "toy-ring", root / "toy-ring")
    torch.manual_seed(0)
    model = CDRL(CDRLConfig(ebm_width=4, init_width=4, temb_dim=16, langevin_steps=2))
    save_checkpoint(root / "cdrl-fmnist", "cdrl", model.config, model.state_dict(), ModelCard(summary="tiny"))
    save_tiny_cfebms(root)
    mp = pytest.MonkeyPatch()
    mp.setenv("STUDIO_CHECKPOINTS", str(root))
    common.cached_model.cache_clear()
    from studio.ui import build_app

    try:
        yield from open_in_chromium(build_app(), CHROMIUM)
    finally:
        common.cached_model.cache_clear()
        mp.undo()


def test_paint_a_stroke_and_inpaint(page):
    page.get_by_role("tab", name="Inpaint").click()
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
    os.makedirs("runs", exist_ok=True)
    page.screenshot(path="runs/inpaint.png", full_page=True)


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
    page.screenshot(path="runs/trajectory.png", full_page=True)
