"""Test environment: offline Hub with a private cache, no analytics, few threads.

huggingface_hub reads HF_HUB_CACHE / HF_HUB_OFFLINE at import time, so they
are set here, before any test module imports it.
"""
import os
import tempfile

_HF_CACHE = tempfile.mkdtemp(prefix="studio-hf-cache-")
os.environ["HF_HUB_CACHE"] = _HF_CACHE
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("GRADIO_CACHE_EXAMPLES", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def hf_cache() -> str:
    """The offline HF cache directory that huggingface_hub was configured with."""
    return _HF_CACHE


def pytest_collection_modifyitems(config, items):
    """Slow tests run only with RUN_SLOW=1 (diffusers-style) or when selected with -m slow."""
    if os.environ.get("RUN_SLOW") == "1" or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: set RUN_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]


def open_in_chromium(demo, chromium: str):
    """Launch a Gradio app and yield a Playwright page on it in Debian's Chromium (used by browser tests)."""
    from playwright.sync_api import sync_playwright

    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        page.goto(demo.local_url)
        try:
            yield page
        finally:
            browser.close()
            demo.close()


ARTIFACTS = os.environ.get("STUDIO_TEST_ARTIFACTS", os.path.join("runs", "screenshots"))


def screenshot(page, name: str) -> str:
    """Save a full-page screenshot into the artifact folder (CI keeps it; STUDIO_TEST_ARTIFACTS moves it)."""
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = os.path.join(ARTIFACTS, f"{name}.png")
    page.screenshot(path=path, full_page=True)
    return path


def checkpoint_root(tmp_path_factory, *shipped: str):
    """A fresh checkpoints folder holding copies of the named shipped checkpoints (tiny ones are added by the caller)."""
    import shutil

    from studio.hub import checkpoints_dir

    root = tmp_path_factory.mktemp("ckpts")
    for name in shipped:
        shutil.copytree(checkpoints_dir() / name, root / name)
    return root


def app_in_chromium(root, chromium: str):
    """Build the app on the checkpoints in ``root`` and yield a Chromium page on it (module-scoped
    browser fixtures); afterwards close both and clear the model cache."""
    from studio.ui import build_app, common

    mp = pytest.MonkeyPatch()
    mp.setenv("STUDIO_CHECKPOINTS", str(root))
    common.cached_model.cache_clear()
    try:
        yield from open_in_chromium(build_app(), chromium)
    finally:
        common.cached_model.cache_clear()
        mp.undo()


def serve_app_client(root, cleanups=()):
    """Build the app on the checkpoints in ``root``, launch it and yield a gradio_client Client;
    afterwards close it and clear the model caches (used by the module-scoped app fixtures)."""
    from gradio_client import Client

    from studio.ui import build_app, common

    mp = pytest.MonkeyPatch()
    mp.setenv("STUDIO_CHECKPOINTS", str(root))
    common.cached_model.cache_clear()
    demo = build_app()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        yield Client(demo.local_url, verbose=False)
    finally:
        demo.close()
        common.cached_model.cache_clear()
        for cleanup in cleanups:
            cleanup()
        mp.undo()


def type_and_enter(page, selector: str, value: str) -> None:
    """Type ``value`` into the (first) input at ``selector`` and press Enter, as a user commits a number."""
    box = page.locator(selector).first
    box.fill(value)
    box.press("Enter")


def enter_number(page, elem_id: str, value: str) -> None:
    """Type ``value`` into the number box of the Gradio component ``#elem_id`` and press Enter."""
    type_and_enter(page, f"#{elem_id} input[type=number]", value)


def set_number(page, selector: str, value: str, attempts: int = 5) -> None:
    """Type ``value`` into the first input at ``selector``, commit it (Enter, then leave the box) and wait until the
    page shows it. Retype when it does not: an input inside an accordion that is still opening can be re-mounted
    after the first keystrokes on a loaded machine, which drops them (a CI run timed out that way)."""
    for _ in range(attempts):
        type_and_enter(page, selector, value)
        page.locator(selector).first.blur()
        try:
            page.wait_for_function("([s, v]) => document.querySelector(s)?.value === v", arg=[selector, value], timeout=10000)
            return
        except Exception:  # playwright's TimeoutError: type it again
            continue
    raise AssertionError(f"{selector} did not take the value {value!r} in {attempts} attempts")


def write_fake_fashion_mnist(folder, train: int, test: int):
    """Random 28x28 Fashion-MNIST IDX files (labels cycle through the 10 classes) in ``folder``, for
    ``FASHION_MNIST_DIR``; the validation split is a tenth of a small training set."""
    import numpy as np

    from studio.data.fashion_mnist import write_idx

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", train), ("t10k", test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))
    return folder
