"""The Energy lab in headless Chromium: clear the canvas, click points onto it, train, and watch the landscape
plot update in place; erase clicks remove points."""
import os

import pytest

from conftest import app_in_chromium, checkpoint_root, screenshot, set_number
from test_browser import CHROMIUM

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian chromium")]

POINTS = "() => (document.querySelector('#lab-points textarea')?.value || '').split('\\n').filter(l => l.trim()).length"
# The heat map's values as the page holds them (plotly may keep them base64-encoded or as typed arrays).
HEAT = "() => { const p = document.querySelector('#lab-landscape .js-plotly-plot'); return p && p.data ? JSON.stringify(p.data[0].z) : null; }"
STATUS = "() => document.querySelector('#lab-status')?.innerText || ''"


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    yield from app_in_chromium(checkpoint_root(tmp_path_factory, "toy-ring"), CHROMIUM)


def _click(page, fx: float, fy: float) -> None:
    """Click the canvas image at a fraction of its displayed width and height."""
    image = page.locator("#lab-canvas img").first
    box = image.bounding_box()
    image.click(position={"x": fx * box["width"], "y": fy * box["height"]})


def test_click_points_train_and_watch_the_landscape(page):
    page.get_by_role("tab", name="Energy lab", exact=True).click()
    page.get_by_text("Points as text", exact=False).first.click()  # open the accordion that holds the text box
    page.wait_for_function(f"() => ({POINTS})() == 500", timeout=60000)  # the two-moons preset
    page.get_by_role("button", name="Clear the canvas").click()
    page.wait_for_function(f"() => ({POINTS})() == 0", timeout=60000)
    # Two clusters of clicks (10 points each); the canvas spans [-4, 4]^2, so 0.25 / 0.75 are x = -2 / +2.
    for i, (fx, fy) in enumerate([(0.25, 0.25), (0.27, 0.3), (0.3, 0.25), (0.75, 0.75), (0.72, 0.7), (0.7, 0.75)], 1):
        _click(page, fx, fy)
        page.wait_for_function(f"() => ({POINTS})() == {10 * i}", timeout=60000)
    text = page.locator("#lab-points textarea").input_value()
    xs = [float(line.split(",")[0]) for line in text.splitlines()]
    assert sum(x < 0 for x in xs) == 30 and sum(x > 0 for x in xs) == 30  # clicks land where they were made
    # Train fewer steps than the default so the test stays short.
    page.get_by_text("Training settings", exact=False).first.click()
    set_number(page, "#lab-steps input[type=number]", "150")
    page.wait_for_timeout(500)
    # Record every landscape the page shows while the run streams (a run can be over in a second).
    page.evaluate(f"""() => {{ window.labHeats = []; window.labPlots = new Set();
        window.labPoll = setInterval(() => {{ const h = ({HEAT})(); const p = document.querySelector('#lab-landscape .js-plotly-plot');
            if (p) window.labPlots.add(p);
            if (h && window.labHeats[window.labHeats.length - 1] !== h) window.labHeats.push(h); }}, 10); }}""")
    page.get_by_role("button", name="Train", exact=True).click()
    try:
        page.wait_for_function(f"() => ({STATUS})().includes('Done')", timeout=300000)
    finally:
        print("status:", page.evaluate(STATUS))
    page.wait_for_timeout(200)
    page.evaluate("() => clearInterval(window.labPoll)")
    heats, plots = page.evaluate("() => [window.labHeats, window.labPlots.size]")
    assert "step 150 of 150" in page.evaluate(STATUS)
    # The landscape panel showed more than one landscape during the run, and holds one plot at the end.
    assert len(heats) >= 2 and len(heats[0]) > 1000 and plots >= 1
    assert page.locator("#lab-landscape .js-plotly-plot").count() == 1
    trace = page.evaluate("() => { const p = document.querySelector('#lab-landscape .js-plotly-plot'); "
                          "return [p.data[1].name, p.calcdata[1].length]; }")
    assert trace == ["data", 60]  # the clicked points, drawn over the landscape
    screenshot(page, "energy-lab")
    # Erase: a click in erase mode removes the points around it.
    page.get_by_label("Erase points").check()
    _click(page, 0.27, 0.27)
    page.wait_for_function(f"() => ({POINTS})() < 60", timeout=60000)
