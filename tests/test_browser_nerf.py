"""The "3D (NeRF-LEBM)" tab in a real browser (Debian Chromium via Playwright), on tiny random checkpoints."""
import os

import pytest


from conftest import app_in_chromium, checkpoint_root, screenshot
from test_app_nerf import save_tiny_nerfs
from test_browser import CHROMIUM

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian chromium")]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    root = checkpoint_root(tmp_path_factory, "toy-ring")
    save_tiny_nerfs(root)
    yield from app_in_chromium(root, CHROMIUM)


def _note_contains(page, text: str) -> None:
    page.wait_for_function(
        f"() => (document.querySelector('#nerf-note textarea')?.value || '').includes({text!r})", timeout=60000)


def test_sample_resample_and_orbit_in_the_browser(page):
    page.get_by_role("tab", name="3D (NeRF-LEBM)").click()
    page.get_by_role("button", name="Sample object", exact=True).click()
    _note_contains(page, "Shape seed 0, appearance seed 0")
    page.locator("#nerf-view img").first.wait_for(timeout=30000)
    page.get_by_role("button", name="Resample shape", exact=True).click()
    _note_contains(page, "the appearance latent is unchanged")
    page.get_by_role("button", name="Orbit", exact=True).click()
    _note_contains(page, "24 frames")
    page.locator("#nerf-orbit img").first.wait_for(timeout=30000)
    assert page.locator("#nerf-view img").count() >= 1
    screenshot(page, "nerf")
