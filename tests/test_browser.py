"""Click through the app in headless Chromium, the way a user does."""
import os
import shutil

import pytest
from conftest import open_in_chromium, screenshot

CHROMIUM = os.environ.get("CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian chromium (apt-get install chromium); .ci/run installs it"),
]


@pytest.fixture(scope="module")
def page():
    from studio.cli import create_app  # the app as `python app.py` and `ebm-studio` build it

    yield from open_in_chromium(create_app(), CHROMIUM)


def test_playground_runs_and_plots(page):
    page.get_by_role("tab", name="Langevin playground").click()
    page.get_by_role("button", name="Run chains", exact=True).click()
    page.wait_for_function("() => [...document.querySelectorAll('textarea')].some(t => t.value.startsWith('Seeds used: 0-63'))", timeout=180000)
    page.wait_for_selector(".js-plotly-plot", timeout=60000)
    assert page.locator(".js-plotly-plot").count() >= 2
    screenshot(page, "playground")


def test_models_tab_shows_cards(page):
    page.get_by_role("tab", name="Models").click()
    page.get_by_text("toy-ring").first.wait_for(timeout=30000)
    assert page.get_by_text("Analytic 2-D ring energy").count() >= 1
