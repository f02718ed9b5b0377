"""The Energy lab tab and the playground's Langevin vs HMC comparison through gradio_client: train on a preset
and get streamed landscapes (the first one within a second), sample with both samplers, download a checkpoint
that studio.load reads, one run per session, a diverging run's message and kept landscape, and bad input."""
import base64
import json
import os
import time
import zipfile

import numpy as np
import plotly.io
import pytest

import studio
from studio import lab
from studio.runtime import usable_cores

from conftest import checkpoint_root, serve_app_client

TRAIN_OK = ("Denoising score matching", "Langevin", 200, 0.003, 0.003, 0.08, 5, 0)  # objective .. seed


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    yield from serve_app_client(checkpoint_root(tmp_path_factory, "toy-ring", "toy-gaussian-mixture"))


def _plot(chart):
    return plotly.io.from_json(chart["plot"])


def _array(value) -> np.ndarray:
    """A plotly array: a list, or (plotly >= 6) {"dtype", "bdata"[, "shape"]} with the raw values in base64."""
    if isinstance(value, dict) and "bdata" in value:
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        return flat.reshape([int(n) for n in str(value["shape"]).split(",")]) if "shape" in value else flat
    return np.asarray(value)


def _heat(chart) -> np.ndarray:
    z = next(t for t in json.loads(chart["plot"])["data"] if t["type"] == "heatmap")["z"]
    return np.asarray(_array(z), dtype=float)


def _preset(client, n=300):
    text, canvas = client.predict("two moons", n, 0.1, api_name="/lab_preset")
    assert len(text.strip().splitlines()) == n
    return text


def test_train_on_a_preset_streams_landscapes(client):
    text = _preset(client)
    start = time.perf_counter()
    job = client.submit(text, *TRAIN_OK, api_name="/lab_train")
    while not job.outputs() and not job.done():
        time.sleep(0.02)
    first = time.perf_counter() - start
    landscape, loss, status = job.result()
    outputs = job.outputs()
    # The bar is 1 s. The step-0 landscape costs ~25 ms of CPU (lab_tab.train_energy up to its first yield); when
    # other jobs hold every core (this suite runs at nice 19 beside training runs) the scheduler sets the pace.
    busy = os.getloadavg()[0] > usable_cores()
    print(f"\nfirst landscape after {first:.2f} s (load average {os.getloadavg()[0]:.1f} on {usable_cores()} cores)")
    assert first <= (5.0 if busy else 1.0), f"first landscape after {first:.2f} s"
    assert len(outputs) >= 4  # step 0, every 50 steps, the end
    assert "step 200 of 200" in status and "Done" in status
    first_heat, last_heat = _heat(outputs[0][0]), _heat(landscape)
    assert first_heat.shape == last_heat.shape == (64, 64) and not np.allclose(first_heat, last_heat)
    names = [t.name for t in _plot(landscape).data]
    assert "data" in names and "model samples" in names
    assert len(_array(next(t for t in _plot(loss).data if t.name == "loss").y)) == 200


def test_sample_and_download_after_training(client, tmp_path):
    client.predict(_preset(client), *TRAIN_OK, api_name="/lab_train")
    langevin_fig, hmc_fig, compare, summary = client.predict(64, 100, 0.003, 0.08, 5, 0, api_name="/lab_sample")
    assert "| Langevin |" in summary and "| HMC |" in summary and "100 steps of size 0.003" in summary
    names = [t.name for t in _plot(compare).data]
    assert names == ["Langevin: mean energy", "HMC: mean energy", "HMC: acceptance rate"]
    assert len(_array(_plot(compare).data[1].x)) == 100 // 5
    path = client.predict(api_name="/lab_export")
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["lab-energy/README.md", "lab-energy/config.json", "lab-energy/model.safetensors"]
        zf.extractall(tmp_path)
    model = studio.load(tmp_path / "lab-energy")
    assert model.checkpoint.kind == "lab-mlp" and model.checkpoint.extra["lab"]["steps_trained"] == 200


def test_a_second_train_in_the_session_ends_the_first(client):
    text = _preset(client, 200)
    first = client.submit(text, "Contrastive divergence (persistent chains)", "HMC", 2000, 0.003, 0.003, 0.08, 5, 0,
                          api_name="/lab_train")
    while len(first.outputs()) < 2 and not first.done():
        time.sleep(0.05)
    second = client.submit(text, *TRAIN_OK, api_name="/lab_train")
    *_, status_first = first.result()
    *_, status_second = second.result()
    assert "Stopped on request after" in status_first and "of 2000" in status_first
    assert "step 200 of 200" in status_second and "Done" in status_second


def test_a_diverging_run_says_so_and_keeps_the_last_good_landscape(client, monkeypatch):
    real, calls = lab._dsm_loss, []

    def breaks_at_step_120(*args):
        calls.append(1)
        loss = real(*args)
        return loss * float("nan") if len(calls) == 120 else loss

    monkeypatch.setattr(lab, "_dsm_loss", breaks_at_step_120)  # the app runs in this process
    job = client.submit(_preset(client), *TRAIN_OK, api_name="/lab_train")
    landscape, _, status = job.result()
    outputs = job.outputs()
    assert "Training diverged at step 120" in status and "kept the landscape of step 100" in status
    assert np.array_equal(_heat(landscape), _heat(outputs[-2][0]))  # the step-100 landscape, shown again


@pytest.mark.parametrize("text, settings, message", [
    ("0.5, 0.5", {}, "1 point given; place at least 2"),
    ("", {}, "no points given"),
    ("0, 0\n" * 5001, {}, "5,001 points given; at most 5,000"),
    ("0, 0\nnan, 1", {}, "point 2 is .*finite numbers"),
    ("0, 0\n7, 1", {}, "point 2 .* is outside the canvas"),
    ("0, 0\nhello", {}, r"line 2 \('hello'\) is not two numbers"),
    (None, {5: 0.5}, "Langevin step size"),
    (None, {6: 5.0}, "HMC step size"),
    (None, {7: 0}, "Leapfrog steps"),
    (None, {7: 51}, "Leapfrog steps"),
    (None, {3: 2001}, "Training steps"),
    (None, {1: "GAN"}, "not in the list of choices|Unknown objective"),
])
def test_train_bad_input_gives_a_clear_message(client, text, settings, message):
    args = ["0, 0\n1, 1\n-1, 0.5", *TRAIN_OK]
    if text is not None:
        args[0] = text
    for i, v in settings.items():
        args[i] = v
    with pytest.raises(Exception, match=message):
        client.predict(*args, api_name="/lab_train")


def test_playground_compares_langevin_and_hmc(client):
    left, right, compare, table = client.predict("Two moons", 0.005, 100, 0.1, 10, 16, 0, api_name="/playground_compare")
    assert "| check | target | Langevin | HMC |" in table and "share on the upper moon" in table
    assert "10 steps of 10 leapfrog steps" in table and "Seeds used: 0-15" in table
    assert [t.name for t in _plot(compare).data][-1] == "HMC: acceptance rate"
    with pytest.raises(Exception, match="Leapfrog steps"):
        client.predict("Two moons", 0.005, 100, 0.1, 0, 16, 0, api_name="/playground_compare")
    with pytest.raises(Exception, match="HMC step size"):
        client.predict("Two moons", 0.005, 100, 5.0, 10, 16, 0, api_name="/playground_compare")


def test_picking_an_energy_suggests_settings_that_sample_it(client):
    """Every energy of the playground samples without diverging at the settings its choice puts on the page."""
    from studio.ui import playground

    for name in playground.TOYS:
        step, noise, hmc_step, leap = playground.suggested_settings(name)
        assert noise == pytest.approx((2 * step) ** 0.5, abs=0.01)
        *_, table = playground.compare_samplers(name, step, 4 * leap, hmc_step, leap, 8, 0)
        assert f"{4} steps of {leap} leapfrog steps" in table
