"""Faults a demanding user met (issue 26), driven in headless Chromium as a user drives them: linked controls,
quiet passive events, one progress bar per request, the Translate layout, one message per bad value, and the
Models tab. Tiny random checkpoints (the same as test_app_journeys.py), except the Models tab (shipped cards)."""
import os
import re

import numpy as np
import pytest
from PIL import Image

from conftest import app_in_chromium, enter_number, screenshot
from test_app_journeys import save_tiny_everything
from test_browser import CHROMIUM

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian chromium")]

SECONDS = 60000  # ms: generous, the CPU is shared


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpts")
    save_tiny_everything(root)
    yield from app_in_chromium(root, CHROMIUM)


def _tab(page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()


def _choose(page, elem_id: str, option: str) -> None:
    """Pick ``option`` in the Gradio dropdown ``#elem_id``, as a user does (open it, click the option)."""
    page.locator(f"#{elem_id} input").first.click()
    page.get_by_role("option", name=option, exact=True).click()


def _value(page, elem_id: str) -> str:
    return page.locator(f"#{elem_id} input").first.input_value()


def _error_toasts(page) -> list[str]:
    return page.locator(".toast-body.error [data-testid='toast-text']").all_inner_texts()


def _close_toasts(page) -> None:
    for close in page.locator("[data-testid='toast-close']").all():
        try:
            close.click(timeout=2000)
        except Exception:  # noqa: BLE001 - a toast may time out on its own meanwhile
            pass


def _textarea_has(page, elem_id: str, text: str) -> None:
    page.wait_for_function(f"() => (document.querySelector('#{elem_id} textarea')?.value || '').includes({text!r})",
                           timeout=SECONDS)


def _markdown_has(page, elem_id: str, text: str) -> None:
    page.wait_for_function(f"() => (document.querySelector('#{elem_id}')?.innerText || '').includes({text!r})",
                           timeout=SECONDS)


# -- item 1 -----------------------------------------------------------------------------------------


def test_inpaint_chain_sets_the_trajectory_controls(page):
    """Inpaint with CF-EBM, select the completion of seed 1, show its chain: Trajectory's controls must read
    cfebm-fmnist / inpaint / seed 1 (they read cdrl-fmnist / generate / 0), so "Record chain" records that."""
    _tab(page, "Inpaint")
    _choose(page, "inpaint-model", "CF-EBM (cfebm-fmnist)")
    page.locator("#inpaint-mask").get_by_label("centre square").check()
    page.get_by_role("button", name="Inpaint", exact=True).click()
    _textarea_has(page, "inpaint-notes", "pixels were replaced")
    page.locator("button.thumbnail-item").nth(2).click()  # tile 0 is the masked input; tile 2 is seed 1
    page.get_by_role("button", name="Show the chain of the selected completion in Trajectory").click()
    _textarea_has(page, "trajectory-notes", "inpainting chain of completion 2 (seed 1)")
    page.wait_for_function("() => document.querySelector('#trajectory-seed input')?.value === '1'", timeout=SECONDS)
    assert _value(page, "trajectory-model") == "cfebm-fmnist"
    assert _value(page, "trajectory-task") == "inpaint"
    assert _value(page, "trajectory-seed") == "1"
    screenshot(page, "journey-inpaint-chain")


# -- items 2, 3 and 9 (3D) ------------------------------------------------------------------------------


def test_passive_3d_changes_before_an_object_are_quiet(page):
    """Picking a held-out example, moving the camera or changing the view before any object: nothing, quietly.
    An explicit action (Orbit) still says "No object yet"."""
    _tab(page, "3D (NeRF-LEBM)")
    _close_toasts(page)
    page.get_by_text("Infer from image", exact=True).click()
    page.locator("#nerf-example input").first.click()
    page.get_by_role("option").first.click()
    page.wait_for_function("() => document.querySelector('#nerf-input-view img')?.naturalWidth > 0", timeout=SECONDS)
    enter_number(page, "nerf-azimuth", "90")
    slider = page.locator("#nerf-azimuth input[type=range]").first
    box = slider.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
    page.locator("#nerf-show").get_by_label("Depth").check()
    page.locator("#nerf-resolution").get_by_label("32").check()
    page.wait_for_timeout(2500)
    assert _error_toasts(page) == []
    page.get_by_role("button", name="Orbit", exact=True).click()
    page.wait_for_function("() => [...document.querySelectorAll('.toast-body.error')].some(t => t.innerText.includes('No object yet'))",
                           timeout=SECONDS)
    _close_toasts(page)


def test_the_prior_radio_and_the_shown_object_agree(page):
    """Sample with the EBM prior, then pick "Gaussian prior": the object is drawn again from that prior (the note
    said "(ebm prior)" and Orbit used the old object)."""
    _tab(page, "3D (NeRF-LEBM)")
    page.locator("#nerf-show").get_by_label("RGB").check()
    page.get_by_role("button", name="Sample object", exact=True).click()
    _textarea_has(page, "nerf-note", "(ebm prior)")
    page.locator("#nerf-prior").get_by_label("Gaussian prior").check()
    _textarea_has(page, "nerf-note", "(gaussian prior)")
    assert "Drawn again from the gaussian prior (same seeds)" in page.locator("#nerf-note textarea").input_value()
    page.locator("#nerf-prior").get_by_label("EBM prior").check()
    _textarea_has(page, "nerf-note", "(ebm prior)")


def test_an_out_of_range_elevation_is_refused_once_naming_the_field(page):
    """Typing 80 into the elevation box (training range 10..40) gave Gradio's generic message, twice."""
    _tab(page, "3D (NeRF-LEBM)")
    _close_toasts(page)
    page.get_by_role("button", name="Sample object", exact=True).click()
    _textarea_has(page, "nerf-note", "Shape seed 0")
    enter_number(page, "nerf-elevation", "80")
    page.wait_for_function("() => document.querySelectorAll('.toast-body.error').length > 0", timeout=SECONDS)
    page.wait_for_timeout(2000)  # a second message would have arrived by now
    toasts = _error_toasts(page)
    assert len(toasts) == 1, toasts
    assert "'Elevation (degrees, training range 10..40)' must be between 10 and 40; got 80" in toasts[0]
    _close_toasts(page)
    enter_number(page, "nerf-elevation", "20")


# -- items 4 and 7 (Translate) ------------------------------------------------------------------------


def test_translate_keeps_the_users_steps_and_says_what_changed(page):
    _tab(page, "Translate")
    enter_number(page, "translate-steps", "80")
    page.locator("#translate-method").get_by_label("CF-EBM pixel").check()
    page.wait_for_timeout(1500)
    assert page.locator("#translate-steps input[type=number]").first.input_value() == "80"  # was reset to 20
    _markdown_has(page, "translate-settings-note", "Step size")  # CF-EBM's step size is fixed: the note says so
    page.locator("#translate-method").get_by_label("LETIT").check()
    page.wait_for_timeout(1500)
    assert page.locator("#translate-steps input[type=number]").first.input_value() == "80"
    page.locator("#translate-direction").get_by_label("google->twitter").check()
    page.wait_for_timeout(1000)
    page.locator("#translate-method").get_by_label("CF-EBM pixel").check()
    _markdown_has(page, "translate-settings-note", "so the direction is now twitter->google")
    assert page.locator("#translate-direction input[value='twitter->google']").is_checked()


def test_translate_layout_hides_what_does_not_apply_and_enlarges_the_images(page):
    _tab(page, "Translate")
    page.locator("#translate-method").get_by_label("CF-EBM pixel").check()
    page.wait_for_function("() => !document.querySelector('#translate-recon') || "
                           "document.querySelector('#translate-recon').offsetParent === null", timeout=SECONDS)
    page.locator("#translate-method").get_by_label("LETIT").check()
    page.wait_for_function("() => document.querySelector('#translate-recon')?.offsetParent !== null", timeout=SECONDS)
    enter_number(page, "translate-steps", "3")
    page.get_by_role("button", name="Translate", exact=True).click()
    page.wait_for_function("() => document.querySelector('#translate-output img')?.naturalWidth > 0", timeout=SECONDS)
    for elem in ("translate-input", "translate-output"):
        img = page.locator(f"#{elem} img").first
        box = img.bounding_box()
        # The 64x64 (here 16x16) image is drawn at least 128 px (2x of 64), pixelated, with nothing on top of it:
        # its caption sits below and the panel has no label or toolbar overlay.
        assert min(box["width"], box["height"]) >= 128, (elem, box)
        assert img.evaluate("e => getComputedStyle(e).imageRendering") == "pixelated"
        covering = page.evaluate(f"""() => [...document.querySelectorAll('#{elem} [data-testid="block-label"], #{elem} .icon-button-wrapper button')]
            .map(e => e.getBoundingClientRect()).filter(r => r.width > 0 && r.height > 0)
            .map(r => [r.x, r.y, r.width, r.height])""")
        inside = [r for r in covering if r[0] < box["x"] + box["width"] and r[0] + r[2] > box["x"]
                  and r[1] < box["y"] + box["height"] and r[1] + r[3] > box["y"]]
        assert inside == [], (elem, inside, box)  # no label or toolbar drawn over the image
        caption = page.locator(f"#{elem} .panel-caption").first.bounding_box()
        assert caption["y"] >= box["y"] + box["height"] - 2, (elem, caption, box)
    screenshot(page, "journey-translate")


# -- item 6 (CDRL progress) -----------------------------------------------------------------------------


def test_a_cdrl_request_has_one_progress_bar_with_level_and_step(page):
    """One bar for the whole request: its text names the level and the step, the time counts from the start of
    the request (Gradio's own counter restarted at every level), the ETA never goes up; DRL's panel has no bar
    when DRL is off."""
    _tab(page, "CDRL")
    enter_number(page, "cdrl-k", "40")  # long enough to see the bar move through several levels (reports: every 0.1 s)
    enter_number(page, "cdrl-n", "8")
    page.evaluate("""() => {
        window.__progress = []; window.__drlBar = false;
        const grid = document.querySelector('#cdrl-grid'), drl = document.querySelector('#cdrl-drl-grid');
        const look = () => {
            const t = grid.querySelector('.progress-level-inner');
            if (t && t.innerText) window.__progress.push(t.innerText);
            if (drl && drl.querySelector('.progress-level, .eta-bar, .progress-text')) window.__drlBar = true;
        };
        window.__obs = new MutationObserver(look);
        window.__obs.observe(document.body, {subtree: true, childList: true, characterData: true});
    }""")
    page.get_by_role("button", name="Generate", exact=True).click()
    page.wait_for_function("() => (document.querySelector('#cdrl-summary textarea')?.value || '').includes('network evaluations')",
                           timeout=4 * SECONDS)
    seen = page.evaluate("() => { window.__obs.disconnect(); return window.__progress; }")
    drl_bar = page.evaluate("() => window.__drlBar")
    assert not drl_bar, "the DRL panel showed a progress bar while DRL was off"
    texts = [t for t in dict.fromkeys(seen) if "CDRL level" in t]
    assert texts, seen[:20]
    parsed = [re.search(r"CDRL level (\d) \((\d) of 6\), step (\d+)/40 · ([\d.]+) s(?:, about (\d+) s left)?", t) for t in texts]
    assert all(parsed), texts[:10]
    order = [(int(m.group(2)), int(m.group(3))) for m in parsed]
    assert order == sorted(order), "the bar went back"
    elapsed = [float(m.group(4)) for m in parsed]
    assert elapsed == sorted(elapsed), "the elapsed time restarted"
    etas = [int(m.group(5)) for m in parsed if m.group(5)]
    assert all(b <= a + 1 for a, b in zip(etas, etas[1:])), f"the ETA jumped back: {etas}"
    assert len({m.group(1) for m in parsed}) >= 2  # several levels seen in one bar


# -- item 10 (Saliency) ------------------------------------------------------------------------------


def test_saliency_upload_with_a_stale_example_index_runs(page, tmp_path):
    """Upload an image, then type index 99999: the upload is used (typing the index cleared it, then failed)."""
    _tab(page, "Saliency")
    _choose(page, "saliency-model", "cdrl-fmnist")
    _choose(page, "saliency-task", "inpaint")
    path = tmp_path / "upload.png"
    Image.fromarray(np.full((24, 24, 3), 180, np.uint8)).save(path)
    page.locator("#saliency-upload input[type=file]").set_input_files(str(path))
    page.wait_for_function("() => document.querySelector('#saliency-upload img')?.naturalWidth > 0", timeout=SECONDS)
    enter_number(page, "saliency-index", "99999")
    page.wait_for_timeout(800)
    _close_toasts(page)
    page.get_by_role("button", name="Run and show saliency", exact=True).click()
    _markdown_has(page, "saliency-note", "your upload")
    assert _error_toasts(page) == []
