"""The EGC tab in headless Chromium on a tiny random checkpoint: classify an example, generate, FGSM."""
import os

import pytest


from conftest import app_in_chromium, checkpoint_root, enter_number, screenshot
from test_app_egc import save_tiny_egc
from test_browser import CHROMIUM

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian chromium")]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    root = checkpoint_root(tmp_path_factory, "evaluator-fmnist")
    save_tiny_egc(root)
    yield from app_in_chromium(root, CHROMIUM)


def _text(page, elem_id: str, needle: str) -> None:
    page.wait_for_function(
        f"() => (document.querySelector('#{elem_id} textarea')?.value || '').includes({needle!r})", timeout=60000)


def test_egc_tab_classifies_generates_and_attacks(page):
    page.get_by_role("tab", name="EGC", exact=True).click()
    page.locator("#egc-classify").click()
    _text(page, "egc-input-note", "Held-out Fashion-MNIST test example")
    assert page.locator("#egc-top5").inner_text().count("%") >= 5  # five classes with probabilities
    enter_number(page, "egc-steps", "2")
    enter_number(page, "egc-n", "2")
    page.locator("#egc-generate").click()
    _text(page, "egc-summary", "Seeds used: 0-1")
    assert "one forward + one backward pass" in page.locator("#egc-summary textarea").input_value()
    page.wait_for_function("() => document.querySelector('#egc-grid img')?.naturalWidth > 0", timeout=30000)
    page.locator("#egc-attack").click()
    _text(page, "egc-fgsm-note", "evaluator-fmnist on its perturbed image")
    page.wait_for_function("() => document.querySelector('#egc-adv img')?.naturalWidth > 0", timeout=30000)
    screenshot(page, "egc")
