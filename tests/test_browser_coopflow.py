"""The CoopFlow tab in headless Chromium on a tiny random checkpoint: both grids appear, T = 0 makes them equal."""
import io
import os

import numpy as np
import pytest
from PIL import Image


from conftest import app_in_chromium, checkpoint_root, screenshot, type_and_enter
from test_app_coopflow import save_tiny_coopflow
from test_browser import CHROMIUM

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian chromium")]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    root = checkpoint_root(tmp_path_factory, "toy-ring")
    save_tiny_coopflow(root)
    yield from app_in_chromium(root, CHROMIUM)


def _image(page, elem_id: str) -> np.ndarray:
    src = page.locator(f"#{elem_id} img").first.get_attribute("src")
    return np.asarray(Image.open(io.BytesIO(page.request.get(src).body())).convert("L"))


def _run(page, seeds: str) -> None:
    page.get_by_role("button", name="Sample", exact=True).click()
    page.wait_for_function(
        f"() => (document.querySelector('#coopflow-summary textarea')?.value || '').includes('Seeds used: {seeds}')", timeout=120000)
    for elem in ("coopflow-flow", "coopflow-refined"):
        page.wait_for_function(f"() => document.querySelector('#{elem} img')?.naturalWidth > 0", timeout=30000)


def test_coopflow_tab_samples_side_by_side(page):
    page.get_by_role("tab", name="CoopFlow", exact=True).click()
    _run(page, "0-15")
    flow, refined = _image(page, "coopflow-flow"), _image(page, "coopflow-refined")
    assert flow.shape == refined.shape and flow.shape[0] > 100 and (flow != refined).any()
    screenshot(page, "coopflow")
    # T = 0: the right grid is the flow's samples unchanged; a new seed changes both.
    type_and_enter(page, "#coopflow-steps input[type=number]", "0")
    type_and_enter(page, "#coopflow-seed input", "7")
    _run(page, "7-22")
    flow2, refined2 = _image(page, "coopflow-flow"), _image(page, "coopflow-refined")
    assert (flow2 == refined2).all() and (flow2 != flow).any()


def test_coopflow_tab_shows_the_trained_T_warns_past_it_and_interpolates(page):
    page.get_by_role("tab", name="CoopFlow", exact=True).click()
    assert "The EBM was trained with T = 3" in page.locator("#coopflow-steps").inner_text()
    # T past the trained T: the note under the slider appears as soon as it moves, before anything runs.
    type_and_enter(page, "#coopflow-steps input[type=number]", "6")
    page.wait_for_function(
        "() => (document.querySelector('#coopflow-steps-note')?.innerText || '').includes('T = 6 is past the T = 3')", timeout=30000)
    type_and_enter(page, "#coopflow-frames input[type=number]", "5")
    type_and_enter(page, "#coopflow-seed-b input", "9")
    page.locator("#coopflow-interpolate").click()
    page.wait_for_function(
        "() => (document.querySelector('#coopflow-line-summary textarea')?.value || '').includes('Line from seed 0 to seed 9 in 5 frames')",
        timeout=120000)
    assert page.locator("#coopflow-line-summary textarea").input_value().startswith("Warning: T = 6 is past the T = 3")
    page.get_by_text("is past the T = 3 the EBM was trained with").first.wait_for(timeout=10000)  # the toast
    for elem in ("coopflow-line-flow", "coopflow-line-refined"):
        page.wait_for_function(f"() => document.querySelector('#{elem} img')?.naturalWidth > 0", timeout=30000)
    flow, refined = _image(page, "coopflow-line-flow"), _image(page, "coopflow-line-refined")
    assert flow.shape == refined.shape == ((32 + 4) * 3, (5 * 34 + 2) * 3) and (flow != refined).any()
    screenshot(page, "coopflow-interpolation")
    # Back within the trained T, the note goes away.
    type_and_enter(page, "#coopflow-steps input[type=number]", "3")
    page.wait_for_function("() => !(document.querySelector('#coopflow-steps-note')?.innerText || '').includes('is past')",
                           timeout=30000)
