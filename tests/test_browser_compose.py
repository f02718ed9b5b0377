"""The Compose tab in headless Chromium on tiny random checkpoints: set attributes and classes, get a judged grid, open a chain."""
import os

import pytest

from conftest import app_in_chromium, checkpoint_root, enter_number, screenshot
from test_app_compose import save_tiny_compose_models
from test_browser import CHROMIUM

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian chromium")]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    root = checkpoint_root(tmp_path_factory, "evaluator-fmnist")
    save_tiny_compose_models(root)
    yield from app_in_chromium(root, CHROMIUM)


def _summary_has(page, needle: str) -> None:
    page.wait_for_function(
        f"() => (document.querySelector('#compose-summary textarea')?.value || '').includes({needle!r})", timeout=180000)


def test_attributes_give_a_judged_grid_and_a_chain(page):
    page.get_by_role("tab", name="Compose", exact=True).click()
    page.locator("#compose-attr-top").get_by_text("True", exact=True).click()
    page.locator("#compose-attr-bright").get_by_text("False", exact=True).click()
    enter_number(page, "compose-attr-n", "3")
    page.locator("#compose-attr-go").click()
    _summary_has(page, "samples have every asked value")
    summary = page.locator("#compose-summary textarea").input_value()
    # The default guidance w = 7: (w + 1) per concept and M w + M - 1 = 15 for the null term (thesis formula).
    assert "Seeds used: 0-2" in summary and "F = 8 f(x; top=True) + 8 f(x; bright=False) - 15 f(x; null)" in summary
    tiles = page.locator("#compose-gallery button.thumbnail-item")
    assert tiles.count() == 3
    captions = page.locator("#compose-gallery").inner_text()
    assert "bright" in captions and "high-contrast" in captions  # each sample's judged attributes underneath
    page.locator("#compose-energy .js-plotly-plot").wait_for(timeout=60000)  # the energy per step
    screenshot(page, "compose-attributes")
    tiles.nth(1).click()
    page.locator("#compose-chain").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('textarea')].some(t => t.value.includes('composed chain of sample 2 (seed 1)'))",
        timeout=120000)


def test_classes_and_not_give_a_grid(page):
    page.get_by_role("tab", name="Compose", exact=True).click()
    page.get_by_role("tab", name="Classes (cdrl-fmnist)").click()
    page.locator("#compose-role-1").get_by_text("AND", exact=True).click()  # Trouser
    page.locator("#compose-role-3").get_by_text("NOT", exact=True).click()  # Dress
    enter_number(page, "compose-weight-3", "2")
    enter_number(page, "compose-cls-n", "2")
    page.locator("#compose-cls-go").click()
    _summary_has(page, "fit the request")
    assert "F = 2 f(x; Trouser) - 4 f(x; Dress) + 3 f(x; null)" in page.locator("#compose-summary textarea").input_value()
    # The gallery may still be in preview mode from the first test (a selected tile plus its strip): count images, not buttons.
    srcs = page.eval_on_selector_all("#compose-gallery button.thumbnail-item img", "els => [...new Set(els.map(e => e.src))]")
    assert len(srcs) == 2
    screenshot(page, "compose-classes")
