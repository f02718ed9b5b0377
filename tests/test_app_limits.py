"""Resource caps and concurrency: caps are enforced by the server, and the app keeps answering other
users while one runs a heavy request.

The app's queue (``studio.ui.QUEUE``) runs up to two jobs per event at once, and events do not wait
for each other, so a long CDRL request leaves the other tabs (and a second CDRL slot) free.
"""
from __future__ import annotations

import shutil
import threading
import time

import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from PIL import Image

from studio.cdrl import CDRL, DRL, CDRLConfig, DRLConfig
from studio.hub import ModelCard, checkpoints_dir, save_checkpoint
from studio.ui import cfebm_tab, limits

from conftest import serve_app_client
from test_app_cfebm import save_tiny_cfebms

UPLOAD_BYTES = 300_000  # a small byte cap for this module's app, so the test need not upload 20 MB


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpts")
    for name in ("toy-ring", "toy-gaussian-mixture"):
        shutil.copytree(checkpoints_dir() / name, root / name)
    for name, cls, cfg in (("cdrl-fmnist", CDRL, CDRLConfig), ("drl-fmnist", DRL, DRLConfig)):
        torch.manual_seed(0)
        model = cls(cfg(ebm_width=4, init_width=4, temb_dim=16, langevin_steps=2))
        save_checkpoint(root / name, model.kind, model.config, model.state_dict(), ModelCard(summary=f"tiny {name}"))
    save_tiny_cfebms(root)
    mp = pytest.MonkeyPatch()
    mp.setattr(limits, "MAX_UPLOAD_BYTES", UPLOAD_BYTES)  # read when the app is launched
    try:
        yield from serve_app_client(root, cleanups=[cfebm_tab.reference_energies.cache_clear])
    finally:
        mp.undo()


def test_caps_hold_against_api_calls(client, tmp_path):
    """Sliders can be bypassed by API callers, so each cap is checked on the server with a clear message."""
    over = [
        (("Trouser", 1.0, 2, 0, limits.MAX_SAMPLES + 1, True, True, False, False), "/cdrl_generate"),
        (("Trouser", 1.0, limits.MAX_CDRL_STEPS + 1, 0, 1, True, True, False, False), "/cdrl_generate"),
        (("cfebm-fmnist", "single-scale", limits.MAX_STEPS + 1, 0.02, 0, 1, True), "/cfebm_generate"),
        (("cfebm-fmnist", "single-scale", 2, 0.02, 0, limits.MAX_SAMPLES + 1, True), "/cfebm_generate"),
        (("cfebm-fmnist", "Uniform noise", None, limits.MAX_OOD_IMAGES + 1, 0), "/cfebm_ood"),
        (("Ring", 0.02, 0.2, limits.MAX_PLAYGROUND_STEPS + 1, 4, 0), "/playground"),
        (("Ring", 0.02, 0.2, 10, limits.MAX_CHAINS + 1, 0), "/playground"),
    ]
    for args, api in over:
        with pytest.raises(Exception, match="must be between"):
            client.predict(*args, api_name=api)
    # Upload bytes (Gradio refuses the upload itself) and decoded pixels (checked from the header).
    noise = (np.random.default_rng(0).random((400, 400, 3)) * 255).astype(np.uint8)  # ~480 kB as PNG
    Image.fromarray(noise).save(tmp_path / "big.png")
    with pytest.raises(Exception, match="(?i)exceeds the maximum|too large|413|file size"):
        client.predict("cfebm-fmnist", None, handle_file(str(tmp_path / "big.png")), 0.3, 0, api_name="/cfebm_denoise")
    Image.new("L", (4100, 4100)).save(tmp_path / "wide.png")  # 16.8 MP + a little, tiny on disk
    with pytest.raises(Exception, match="uploads are limited to 16.8 MP"):
        client.predict("cfebm-fmnist", None, handle_file(str(tmp_path / "wide.png")), 0.3, 0, api_name="/cfebm_denoise")


def _timed(fn, *args, **kwargs) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def test_second_user_stays_responsive_during_a_heavy_request(client):
    url = client.src
    heavy: dict = {}

    def first_user():
        c = Client(url, verbose=False)
        start = time.perf_counter()
        try:  # 64 samples, the DRL comparison, every step recorded for the GIF and the chart
            c.predict("Trouser", 5.0, 8, 0, limits.MAX_SAMPLES, True, True, False, True, api_name="/cdrl_generate")
            heavy["ok"] = True
        except Exception as err:  # noqa: BLE001
            heavy["error"] = err
        heavy["start"], heavy["end"] = start, time.perf_counter()

    thread = threading.Thread(target=first_user)
    thread.start()
    time.sleep(1.0)  # let the heavy job start
    second = Client(url, verbose=False)
    latencies = []
    while thread.is_alive() and len(latencies) < 12:
        latencies.append(_timed(second.predict, "Ring", 0.02, 0.2, 20, 16, 1, api_name="/playground"))
        latencies.append(_timed(second.predict, "toy-ring", api_name="/model_card"))
        # The same event as the heavy job: the queue's second CDRL slot serves it.
        latencies.append(_timed(second.predict, "Bag", 0.0, 1, 0, 1, False, False, True, False, api_name="/cdrl_generate"))
    answered_at = time.perf_counter()
    thread.join(timeout=300)
    assert heavy.get("ok"), heavy.get("error")
    assert answered_at < heavy["end"], "the heavy request ended before the second user was served: make it heavier"
    duration = heavy["end"] - heavy["start"]
    assert max(latencies) < max(10.0, duration / 2), (latencies, duration)


def test_concurrent_users_all_served(client):
    """16 users at once across the tabs (the queue holds 32): every request succeeds."""
    url = client.src
    requests = [
        (("Ring", 0.02, 0.2, 20, 16, 0), "/playground"),
        (("toy-ring",), "/model_card"),
        (("cfebm-fmnist", "single-scale", 2, 0.02, 0, 2, True), "/cfebm_generate"),
        (("Trouser", 1.0, 2, 0, 2, True, True, False, False), "/cdrl_generate"),
        (("cfebm-fmnist", "generate", 0), "/trajectory"),
    ]
    users, failures, done = 16, [], []
    lock = threading.Lock()
    gate = threading.Barrier(users)

    def user(i: int):
        try:
            c = Client(url, verbose=False)
            gate.wait(timeout=60)
            for k in range(2):
                args, api = requests[(i + k) % len(requests)]
                c.predict(*args, api_name=api)
                with lock:
                    done.append(api)
        except Exception as err:  # noqa: BLE001 - a load test counts every failure
            with lock:
                failures.append(f"user {i}: {type(err).__name__}: {err}")

    threads = [threading.Thread(target=user, args=(i,)) for i in range(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert not failures, failures
    assert len(done) == 2 * users


def test_request_time_limit_stops_long_requests_with_a_message(client, monkeypatch):
    """A request past limits.REQUEST_TIMEOUT_SECONDS is stopped between two sampler steps, streaming or
    not, with a message; the worker is free again at once."""
    monkeypatch.setattr(limits, "REQUEST_TIMEOUT_SECONDS", 1e-4)
    for args, api in ((("Trouser", 1.0, 8, 0, 4, True, True, False, False), "/cdrl_generate"),  # a streaming handler
                      (("Ring", 0.02, 0.2, 1000, 16, 0), "/playground"),  # a plain one
                      (("cfebm-fmnist", "single-scale", 50, 0.02, 0, 4, True), "/cfebm_generate")):
        with pytest.raises(Exception, match="time limit of 0.0001 s"):
            client.predict(*args, api_name=api)
    monkeypatch.setattr(limits, "REQUEST_TIMEOUT_SECONDS", 120.0)
    client.predict("Ring", 0.02, 0.2, 20, 16, 0, api_name="/playground")
