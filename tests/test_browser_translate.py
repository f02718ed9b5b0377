"""The Translate tab in headless Chromium on tiny random LETIT and CF-EBM checkpoints."""
import io
import os

import pytest
from PIL import Image


from conftest import app_in_chromium, checkpoint_root, enter_number, screenshot
from test_app_translate import save_tiny_translators
from test_browser import CHROMIUM

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian chromium")]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    root = checkpoint_root(tmp_path_factory, "toy-ring")
    save_tiny_translators(root)
    yield from app_in_chromium(root, CHROMIUM)


def _note(page) -> str:
    return page.locator("#translate-note").inner_text()


def _wait_for_note(page, text: str) -> None:
    page.wait_for_function(f"() => (document.querySelector('#translate-note')?.innerText || '').includes({text!r})",
                           timeout=120000)


def test_translate_tab_runs_and_shows_the_output(page):
    page.get_by_role("tab", name="Translate", exact=True).click()
    # The pixel baseline only goes Twitter -> Google: choosing it after Google -> Twitter switches the direction back.
    page.get_by_label("google->twitter").check()
    page.get_by_label("CF-EBM pixel").check()
    page.wait_for_function("() => document.querySelector('input[value=\"twitter->google\"]')?.checked", timeout=30000)
    page.get_by_label("LETIT").check()
    page.get_by_label("google->twitter").check()
    page.get_by_role("button", name="Translate", exact=True).click()
    _wait_for_note(page, "LETIT google->twitter")
    assert "PSNR to the true twitter drawing" in _note(page)
    out = page.locator("#translate-output img").first
    out.wait_for(timeout=60000)
    page.wait_for_function("() => document.querySelector('#translate-output img')?.naturalWidth > 0", timeout=30000)
    img = Image.open(io.BytesIO(page.request.get(out.get_attribute("src")).body()))
    assert img.size == (128, 128)
    for plot in ("#translate-shift", "#translate-energy"):  # both plotly charts drew something
        page.locator(f"{plot} .js-plotly-plot").first.wait_for(timeout=30000)
    screenshot(page, "translate")


def _project_box(page):
    return page.locator("#translate-project input[type=number]").first


def test_the_projection_slider_follows_the_method_and_reaches_the_run(page):
    """LETIT's 'Project every' is the user's while LETIT is chosen, off and disabled for CF-EBM pixel (the note says
    so), back when LETIT is chosen again; a run with it projects the chain and reports the re-encode check."""
    page.get_by_role("tab", name="Translate", exact=True).click()
    page.get_by_label("twitter->google").check()
    page.get_by_label("LETIT").check()
    page.wait_for_timeout(1500)  # the direction change's settings update lands before the user types
    enter_number(page, "translate-project", "2")
    page.wait_for_timeout(500)
    page.get_by_label("CF-EBM pixel").check()
    page.wait_for_function("() => (document.querySelector('#translate-settings-note')?.innerText || '').includes('Project every: 2 -> 0')",
                           timeout=30000)
    assert _project_box(page).input_value() == "0" and _project_box(page).is_disabled()
    page.get_by_label("LETIT").check()
    page.wait_for_function("() => document.querySelector('#translate-project input[type=number]')?.value === '2'", timeout=30000)
    assert not _project_box(page).is_disabled()
    enter_number(page, "translate-steps", "4")
    page.get_by_role("button", name="Translate", exact=True).click()
    _wait_for_note(page, "every 2 steps and at the end")
    assert "Re-encode check" in _note(page) and "the true google drawing" in _note(page)
