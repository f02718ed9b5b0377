"""Hostile inputs: every public app endpoint through gradio_client (CDRL, Compose, CF-EBM, Inpaint, Trajectory,
Saliency, Translate, CoopFlow, EGC, 3D NeRF-LEBM, playground, Energy lab, Models; ``test_every_endpoint_is_covered``
checks the list against ``Client.view_api()``), and the public studio functions called directly (the
samplers and tab handlers, LETIT, EGC, CoopFlow, NeRF-LEBM and the renderer).

Each call must end in a clear error (gr.Error in the app, a ``StudioError`` -- a ``ValueError`` -- in
Python) or in a documented correction (e.g. a 16-bit PNG is scaled to 8 bits, an animated GIF gives
its first frame, a mask of the wrong size is resized), never a crash or a hung worker. Numeric
parameters are fuzzed with hypothesis. Every distinct bad input tried is recorded; the count is
printed at the end and written to ``runs/reports/bad_inputs.json``.

``test_nerf_and_saliency_library_bad_inputs`` covers direct calls into ``studio/nerf_lebm.py`` that the
NeRF tab checks before they reach the library, ``saliency_tab``'s opacity, and the animation note of an
emoji-domain upload.
"""
from __future__ import annotations

import contextlib
import inspect
import json
import math
import os
import re
import shutil
import time
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import studio
from studio.cdrl import CDRL, DRL, CDRLConfig, DRLConfig
from studio.egc import fgsm
from studio.errors import StudioError
from studio.hub import ModelCard, checkpoints_dir, save_checkpoint
from studio.langevin import langevin, make_generators, parse_seeds
from studio.render import Camera, camera_to_world, orbit_angles, poses_to_c2w, render_image, stratified_depths
from studio.ui import (cdrl_tab, cfebm_tab, coopflow_tab, egc_tab, inpaint_tab, limits, masks, models_tab, nerf_tab, playground,
                       saliency_tab, trajectory_tab, translate_tab)
from studio.ui.common import cached_model
from studio.ui.inputs import model_input

from conftest import serve_app_client
from test_app_cfebm import save_tiny_cfebms
from test_app_coopflow import save_tiny_coopflow
from test_app_compose import save_tiny_attribute_model
from test_app_egc import save_tiny_egc
from test_app_nerf import save_tiny_nerfs
from test_app_saliency import tiny_letit
from test_app_translate import save_tiny_translators

TRIED: dict[str, str] = {}  # distinct bad input -> what happened ("refused: ..." or "corrected: ...")
GENERIC = "upstream Gradio app has raised an exception"
CDRL_LABEL = "CDRL (cdrl-fmnist)"
NAN, INF = float("nan"), float("inf")


# -- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """Awkward uploads, written once."""
    d = tmp_path_factory.mktemp("uploads")
    rng = np.random.default_rng(0)

    def save(name, img, **kw):
        img.save(d / name, **kw)
        return str(d / name)

    out = {
        "16-bit PNG": save("16bit.png", Image.fromarray((rng.random((40, 40)) * 65535).astype(np.uint16))),
        "palette PNG": save("palette.png", Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).convert("P")),
        "1x1 PNG": save("one.png", Image.new("RGB", (1, 1), (200, 10, 10))),
        "CMYK JPEG": save("cmyk.jpg", Image.new("CMYK", (24, 24), (0, 255, 0, 0))),
        "1-bit PNG": save("bits.png", Image.new("1", (24, 24), 1)),
        "8000x8000 PNG": save("huge.png", Image.new("L", (8000, 8000))),  # ~64 MP: a decompression bomb, tiny on disk
        "5000x4000 PNG": save("big.png", Image.new("L", (5000, 4000))),  # 20 MP: over the cap, under PIL's own limit
        "float TIFF with NaN": save("nan.tif", Image.fromarray(np.full((16, 16), np.nan, np.float32))),
    }
    frames = [Image.fromarray((rng.random((30, 30, 3)) * 255).astype(np.uint8)) for _ in range(3)]
    frames[0].save(d / "anim.gif", save_all=True, append_images=frames[1:])
    out["animated GIF"] = str(d / "anim.gif")
    for name, data in [("corrupt PNG", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40), ("empty file", b""),
                       ("text file", b"hello, I am not an image"), ("truncated PNG", Path(out["palette PNG"]).read_bytes()[:60])]:
        (d / name.replace(" ", "_")).write_bytes(data)
        out[name] = str(d / name.replace(" ", "_"))
    return out


def save_tiny_app_checkpoints(root) -> None:
    """Tiny random checkpoints of every kind the app has a tab for, plus the shipped toys and evaluator-fmnist."""
    for name in ("toy-ring", "toy-gaussian-mixture", "evaluator-fmnist"):
        shutil.copytree(checkpoints_dir() / name, root / name)
    for name, cls, cfg in (("cdrl-fmnist", CDRL, CDRLConfig), ("drl-fmnist", DRL, DRLConfig)):
        torch.manual_seed(0)
        model = cls(cfg(ebm_width=4, init_width=4, temb_dim=16, langevin_steps=2))
        save_checkpoint(root / name, model.kind, model.config, model.state_dict(), ModelCard(summary=f"tiny {name}"))
    save_tiny_cfebms(root)
    save_tiny_translators(root)
    save_tiny_egc(root)
    save_tiny_coopflow(root)
    save_tiny_nerfs(root)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """The app on tiny random checkpoints of every kind with a tab (CDRL, DRL, CF-EBM, single-scale, LETIT, the
    CF-EBM t2g baseline, EGC, CoopFlow, NeRF-LEBM and NeRF-VAE, and a LETIT with no trained direction, which no
    tab may offer) plus the shipped toys and evaluator-fmnist (EGC's FGSM comparison)."""
    root = tmp_path_factory.mktemp("ckpts")
    save_tiny_app_checkpoints(root)
    save_tiny_attribute_model(root)
    untrained = tiny_letit(directions=())
    save_checkpoint(root / "letit-untrained", "letit", untrained.config, untrained.state_dict(), ModelCard(summary="untrained"))
    yield from serve_app_client(root, cleanups=[cfebm_tab.reference_energies.cache_clear])


@pytest.fixture(scope="module", autouse=True)
def summary(request):
    """After the module: print the count of distinct bad inputs and write them to runs/reports/bad_inputs.json."""
    yield
    refused = sum(v.startswith("refused") for v in TRIED.values())
    out = Path(os.environ.get("STUDIO_REPORT_DIR", Path(__file__).resolve().parents[1] / "runs" / "reports"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "bad_inputs.json").write_text(json.dumps({"distinct_bad_inputs": len(TRIED), "refused": refused,
                                                     "corrected": len(TRIED) - refused, "inputs": TRIED}, indent=1))
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None:
        # Module teardown runs under output capture, which would swallow the line.
        with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
            reporter.write_line(f"\ntest_bad_inputs: {len(TRIED)} distinct bad inputs tried ({refused} refused with a clear "
                                f"message, {len(TRIED) - refused} corrected); list in {out / 'bad_inputs.json'}")


# -- helpers -----------------------------------------------------------------------------------------


def _clear(message: str) -> None:
    assert message.strip(), "empty error message"
    assert "Traceback" not in message and GENERIC not in message, message


def refused(label: str, fn, *args, match: str | None = None, **kwargs) -> str:
    """``fn(*args)`` must raise a StudioError or gr.Error with a clear message (generators are run to the end)."""
    try:
        result = fn(*args, **kwargs)
        if inspect.isgenerator(result):
            list(result)
    except (StudioError, gr.Error) as err:
        message = str(err)
    else:
        pytest.fail(f"{label}: accepted {args!r}")
    _clear(message)
    if match:
        assert re.search(match, message), f"{label}: {message!r} does not match {match!r}"
    TRIED[label] = "refused: " + message[:160]
    return message


def corrected(label: str, fn, *args, note: str | None = None, **kwargs):
    """A documented correction: the call succeeds (and says what it did, when ``note`` is given)."""
    result = fn(*args, **kwargs)
    if inspect.isgenerator(result):
        result = list(result)[-1]
    if note:
        assert note in json.dumps(result, default=str), f"{label}: no note {note!r} in the result"
    TRIED[label] = "corrected" + (f": {note}" if note else "")
    return result


def remote_refused(client, label: str, *args, api: str, match: str | None = None) -> str:
    with pytest.raises(Exception) as info:
        client.predict(*args, api_name=api)
    message = str(info.value)
    _clear(message)
    if match:
        assert re.search(match, message), f"{label}: {message!r} does not match {match!r}"
    TRIED[f"api {api}: {label}"] = "refused: " + message[:160]
    return message


def remote_corrected(client, label: str, *args, api: str, note: str | None = None):
    result = client.predict(*args, api_name=api)
    if note:
        assert note in json.dumps(result, default=str), f"{label}: no note {note!r} in {result!r}"
    TRIED[f"api {api}: {label}"] = "corrected" + (f": {note}" if note else "")
    return result


def _editor(path_bg: str, layer: np.ndarray | None, tmp: Path):
    value = {"background": handle_file(path_bg), "layers": [], "composite": None}
    if layer is not None:
        Image.fromarray(layer).save(tmp / "layer.png")
        value["layers"] = [handle_file(str(tmp / "layer.png"))]
    return value


def _healthy(client) -> float:
    """The app still answers a normal request after everything above (no hung or dead worker)."""
    start = time.perf_counter()
    _, _, seeds = client.predict("Ring", 0.02, 0.2, 5, 4, 0, api_name="/playground")
    assert seeds == "Seeds used: 0-3"
    return time.perf_counter() - start


# -- through gradio_client ---------------------------------------------------------------------------


# (label, args) for /playground: energy, step_size, noise_std, steps, chains, seed
PLAYGROUND = [
    ("energy None", (None, 0.02, 0.2, 10, 4, 0)), ("energy list", (["Ring"], 0.02, 0.2, 10, 4, 0)),
    ("energy unknown", ("Volcano", 0.02, 0.2, 10, 4, 0)), ("energy 500 chars", ("R" * 500, 0.02, 0.2, 10, 4, 0)),
    ("step None", ("Ring", None, 0.2, 10, 4, 0)), ("step text", ("Ring", "abc", 0.2, 10, 4, 0)),
    ("step negative", ("Ring", -0.5, 0.2, 10, 4, 0)), ("step huge", ("Ring", 1e300, 0.2, 10, 4, 0)),
    ("noise negative", ("Ring", 0.02, -1, 10, 4, 0)), ("noise list", ("Ring", 0.02, [0.2], 10, 4, 0)),
    ("steps 0", ("Ring", 0.02, 0.2, 0, 4, 0)), ("steps 10**9", ("Ring", 0.02, 0.2, 10**9, 4, 0)),
    ("steps bool", ("Ring", 0.02, 0.2, True, 4, 0)), ("chains -3", ("Ring", 0.02, 0.2, 10, -3, 0)),
    ("chains 10**6", ("Ring", 0.02, 0.2, 10, 10**6, 0)), ("chains 2.5", ("Ring", 0.02, 0.2, 10, 2.5, 0)),
    ("seed -1", ("Ring", 0.02, 0.2, 10, 4, -1)), ("seed 1e30", ("Ring", 0.02, 0.2, 10, 4, 1e30)),
    ("seed 2**63 - 2 with 4 chains", ("Ring", 0.02, 0.2, 10, 4, 2**63 - 2)), ("seed text", ("Ring", 0.02, 0.2, 10, 4, "x")),
    ("seed None", ("Ring", 0.02, 0.2, 10, 4, None)), ("seed dict", ("Ring", 0.02, 0.2, 10, 4, {"a": 1})),
]
# /cdrl_generate: class, w, K, first seed, n, noise, tweedie, init_only, compare
CDRL_OK = ("Trouser", 1.0, 2, 0, 2, True, True, False, False)
CDRL_BAD = [
    ("class unknown", 0, "Zebra"), ("class list", 0, ["Bag"]), ("class 10**4 chars", 0, "x" * 10_000),
    ("w None", 1, None), ("w text", 1, "1; rm -rf /"), ("w -1", 1, -1), ("w 1e9", 1, 1e9),
    ("K None", 2, None), ("K 0", 2, 0), ("K 10**9", 2, 10**9), ("K 2.5", 2, 2.5),
    ("seed -1", 3, -1), ("seed 2**64", 3, 2**64), ("seed text", 3, "0-63"),
    ("n 0", 4, 0), ("n 65", 4, 65), ("n 10**9", 4, 10**9), ("n None", 4, None),
    ("noise 'yes'", 5, "yes"), ("tweedie None", 6, None), ("init_only 1", 7, 1), ("compare list", 8, [True]),
]
# /compose_classes: a role per class (10), a weight per class (10), guidance, first seed, count
COMPOSE_OK = ("AND", *["off"] * 9, *[1.0] * 10, 1.0, 0, 1)
COMPOSE_BAD = [
    ("role unknown", 0, "MAYBE"), ("role None", 1, None), ("role list", 2, ["AND"]), ("weight 0", 10, 0.0),
    ("weight 99", 10, 99.0), ("weight text", 10, "heavy"), ("weight None", 10, None), ("guidance -1", 20, -1.0),
    ("guidance 1e9", 20, 1e9), ("first seed -1", 21, -1), ("count 0", 22, 0), ("count 33", 22, 33),
]
# /compose_attributes: a value per attribute (3), guidance, first seed, count
COMPOSE_ATTR_OK = ("True", "No control", "False", 3.0, 0, 1)
COMPOSE_ATTR_BAD = [("value unknown", 0, "Yes"), ("value bool", 1, True), ("value None", 2, None), ("guidance text", 3, "w"),
                    ("count 10**6", 5, 10**6), ("first seed 2**64", 4, 2**64)]
CFEBM_OK = ("cfebm-fmnist", "single-scale", 2, 0.02, 0, 2, True)
CFEBM_BAD = [
    ("model unknown", 0, "cdrl-fmnist"), ("model None", 0, None), ("mode unknown", 1, "sideways"),
    ("steps 0", 2, 0), ("steps 201", 2, 201), ("steps None", 2, None), ("steps text", 2, "ten"),
    ("eta0 -1", 3, -1.0), ("eta0 5", 3, 5.0), ("eta0 None", 3, None),
    ("seed -1", 4, -1), ("seed 2**63", 4, 2**63), ("seed text", 4, "seed"), ("n 0", 5, 0), ("n 65", 5, 65), ("n 1.5", 5, 1.5),
]


def test_playground_endpoint(client):
    for label, args in PLAYGROUND:
        remote_refused(client, label, *args, api="/playground")
    _healthy(client)


def test_compose_endpoints(client):
    for label, index, value in COMPOSE_BAD:
        args = list(COMPOSE_OK)
        args[index] = value
        remote_refused(client, label, *args, api="/compose_classes")
    remote_refused(client, "NOT of every class", *["NOT"] * 10, *[1.0] * 10, 1.0, 0, 1, api="/compose_classes",
                   match="NOT of every class leaves nothing to sample")
    remote_corrected(client, "no class chosen", *["off"] * 10, *[1.0] * 10, 1.0, 0, 1, api="/compose_classes",
                     note="plain unconditional sampling")
    for label, index, value in COMPOSE_ATTR_BAD:
        args = list(COMPOSE_ATTR_OK)
        args[index] = value
        remote_refused(client, label, *args, api="/compose_attributes")
    remote_corrected(client, "every attribute on No control", "No control", "No control", "No control", 3.0, 0, 1,
                     api="/compose_attributes", note="plain unconditional sampling")


def test_cdrl_endpoint(client):
    for label, index, value in CDRL_BAD:
        args = list(CDRL_OK)
        args[index] = value
        remote_refused(client, label, *args, api="/cdrl_generate")
    # gr.Number(precision=0) rounds a fractional seed (Gradio's documented behaviour); the summary shows the seeds used.
    remote_corrected(client, "seed 2.5", "Trouser", 1.0, 2, 2.5, 2, True, True, False, False, api="/cdrl_generate",
                     note="Seeds used: 2-3")
    remote_refused(client, "DRL compare with K 50 and n 65", "Trouser", 5.0, 50, 0, 65, True, True, False, True,
                   api="/cdrl_generate", match="maximum|between 1 and 64")
    _healthy(client)


def test_cfebm_generate_endpoint(client):
    for label, index, value in CFEBM_BAD:
        args = list(CFEBM_OK)
        args[index] = value
        remote_refused(client, label, *args, api="/cfebm_generate")
    remote_refused(client, "multi-scale on the single-scale model", "ebm-single-fmnist", "multi-scale (coarse to fine)",
                   2, 0.02, 0, 1, True, api="/cfebm_generate", match="no coarse stages")


UPLOAD_REFUSED = ["corrupt PNG", "empty file", "text file", "truncated PNG", "8000x8000 PNG", "5000x4000 PNG", "float TIFF with NaN"]
UPLOAD_CORRECTED = {"16-bit PNG": "resized", "palette PNG": "resized", "1x1 PNG": "resized from 1x1", "CMYK JPEG": "resized",
                    "1-bit PNG": "resized", "animated GIF": "first frame"}


def test_cfebm_denoise_uploads(client, files):
    for name in UPLOAD_REFUSED:
        remote_refused(client, f"upload {name}", "cfebm-fmnist", None, handle_file(files[name]), 0.3, 0, api="/cfebm_denoise")
    for name, note in UPLOAD_CORRECTED.items():
        remote_corrected(client, f"upload {name}", "cfebm-fmnist", None, handle_file(files[name]), 0.3, 0,
                         api="/cfebm_denoise", note=note)
    for label, args in [("example unknown", ("cfebm-fmnist", "../../etc/passwd", None, 0.3, 0)),
                        ("example None and no upload", ("cfebm-fmnist", None, None, 0.3, 0)),
                        ("noise 2", ("cfebm-fmnist", "fmnist-test-0002-trouser", None, 2.0, 0)),
                        ("noise text", ("cfebm-fmnist", "fmnist-test-0002-trouser", None, "loud", 0)),
                        ("seed -7", ("cfebm-fmnist", "fmnist-test-0002-trouser", None, 0.3, -7))]:
        remote_refused(client, label, *args, api="/cfebm_denoise")


def test_cfebm_ood_uploads(client, files, tmp_path):
    for name in UPLOAD_REFUSED:
        remote_refused(client, f"upload {name}", "cfebm-fmnist", "Uploaded images", [handle_file(files[name])], 4, 0,
                       api="/cfebm_ood")
    many = []
    for i in range(limits.MAX_UPLOADS + 1):
        Image.new("L", (4, 4), i).save(tmp_path / f"{i}.png")
        many.append(handle_file(str(tmp_path / f"{i}.png")))
    remote_refused(client, f"{len(many)} uploads", "cfebm-fmnist", "Uploaded images", many, 4, 0, api="/cfebm_ood",
                   match=f"At most {limits.MAX_UPLOADS}")
    remote_corrected(client, "mixed awkward uploads", "cfebm-fmnist", "Uploaded images",
                     [handle_file(files[n]) for n in UPLOAD_CORRECTED], 4, 0, api="/cfebm_ood", note="first frame")
    for label, args in [("set unknown", ("cfebm-fmnist", "Cats", None, 4, 0)), ("count 0", ("cfebm-fmnist", "Uniform noise", None, 0, 0)),
                        ("count 10**6", ("cfebm-fmnist", "Uniform noise", None, 10**6, 0)),
                        ("no uploads", ("cfebm-fmnist", "Uploaded images", [], 4, 0))]:
        remote_refused(client, label, *args, api="/cfebm_ood")


def test_inpaint_endpoints(client, files, tmp_path):
    ok_image = handle_file(files["palette PNG"])
    square = np.zeros((32, 32), np.uint8)
    square[8:20, 8:20] = 255
    Image.fromarray(square).save(tmp_path / "mask.png")
    mask = handle_file(str(tmp_path / "mask.png"))
    base = [CDRL_LABEL, ok_image, mask, "(unconditional)", 1.0, 2, 2, 0]
    for name in UPLOAD_REFUSED:
        for slot in (1, 2):
            args = list(base)
            args[slot] = handle_file(files[name])
            if slot == 1 and name == "float TIFF with NaN":  # this endpoint's gr.Image(type="numpy") converts it to
                remote_corrected(client, f"image {name}", *args, api="/inpaint_image")  # 8-bit RGB (NaN -> 0) first
                continue
            remote_refused(client, f"{'image' if slot == 1 else 'mask'} {name}", *args, api="/inpaint_image")
    black = tmp_path / "black.png"
    Image.new("L", (32, 32)).save(black)
    for label, slot, value in [("empty mask", 2, handle_file(str(black))), ("model unknown", 0, "GAN (stylegan)"),
                               ("class unknown", 3, "Zebra"), ("n 9", 5, 9), ("n 0", 5, 0), ("steps 51", 6, 51), ("seed -1", 7, -1),
                               ("image missing", 1, None), ("mask missing", 2, None)]:
        args = list(base)
        args[slot] = value
        remote_refused(client, label, *args, api="/inpaint_image")
    wrong = np.zeros((50, 70), np.uint8)
    wrong[10:30, 10:40] = 255
    Image.fromarray(wrong).save(tmp_path / "wrong.png")
    remote_corrected(client, "mask of the wrong size (50x70)", CDRL_LABEL, ok_image, handle_file(str(tmp_path / "wrong.png")),
                     "(unconditional)", 1.0, 2, 2, 0, api="/inpaint_image", note="mask was resized")
    remote_corrected(client, "16-bit mask", CDRL_LABEL, ok_image, handle_file(files["16-bit PNG"]), "(unconditional)", 1.0, 2, 2, 0,
                     api="/inpaint_image")
    # The painting endpoint: editor values as a script sends them.
    layer = np.zeros((17, 23, 4), np.uint8)
    layer[3:9, 4:12] = (255, 0, 0, 255)
    remote_corrected(client, "editor layer of the wrong size", CDRL_LABEL, _editor(files["palette PNG"], layer, tmp_path), "paint",
                     "(unconditional)", 1.0, 2, 2, 0, api="/inpaint", note="mask was resized")
    for label, value, preset in [("editor background corrupt", _editor(files["corrupt PNG"], None, tmp_path), "centre square"),
                                 ("editor background 8000x8000", _editor(files["8000x8000 PNG"], None, tmp_path), "centre square"),
                                 ("editor no strokes", _editor(files["palette PNG"], None, tmp_path), "paint"),
                                 ("editor empty", None, "centre square"),
                                 ("preset unknown", _editor(files["palette PNG"], None, tmp_path), "heart shape")]:
        remote_refused(client, label, CDRL_LABEL, value, preset, "(unconditional)", 1.0, 2, 2, 0, api="/inpaint")
    editor = {"background": handle_file(files["palette PNG"]), "layers": [], "composite": None}
    for label, index, value in [("cfebm inpaint n 0", 3, 0), ("cfebm inpaint steps 0", 4, 0), ("cfebm inpaint seed 2**64", 5, 2**64),
                                ("cfebm inpaint model unknown", 0, "nope")]:
        args = ["cfebm-fmnist", editor, "centre square", 2, 2, 0]
        args[index] = value
        remote_refused(client, label, *args, api="/cfebm_inpaint")


def test_trajectory_and_models_endpoints(client):
    for label, args in [("model unknown", ("stylegan", "generate", 0)), ("task unknown", ("cfebm-fmnist", "translate twitter", 0)),
                        ("task 10**4 chars", ("cfebm-fmnist", "g" * 10_000, 0)), ("seed -1", ("cfebm-fmnist", "generate", -1)),
                        ("seed 1e300", ("cfebm-fmnist", "generate", 1e300)), ("seed text", ("cfebm-fmnist", "generate", "zero")),
                        ("model None", (None, "generate", 0))]:
        remote_refused(client, label, *args, api="/trajectory")
    remote_refused(client, "frame before any chain", None, 3, api="/trajectory_frame")
    for label, name in [("unknown", "nope"), ("None", None), ("list", ["toy-ring"]), ("path traversal", "../../etc/passwd"),
                        ("absolute path", "/etc/passwd")]:
        remote_refused(client, label, name, api="/model_card")
    assert _healthy(client) < 30


# -- the newer tabs through gradio_client --------------------------------------------------------------


def _fresh(client) -> Client:
    """A second browser session: its gr.State is empty (no chain, no object yet)."""
    return Client(client.src, verbose=False)


def _bad_args(client, api: str, ok: tuple, bad: list) -> None:
    for label, index, value in bad:
        args = list(ok)
        args[index] = value
        remote_refused(client, label, *args, api=api)


HUGE = 10**400  # JSON carries any integer; it does not fit a float
NOT_A_FILE = [("plain path string for a file", "/etc/passwd"), ("number for a file", 12), ("list for a file", [1, 2])]
EMOJI = translate_tab.example_names()[0]
TRANSLATE_OK = (EMOJI, None, translate_tab.T2G, translate_tab.LETIT, 3, 0.05, 0.1, 0)
TRANSLATE_BAD = [
    ("example unknown", 0, "emoji-test-999-nope"), ("example traversal", 0, "../../etc/passwd"), ("example None, no upload", 0, None),
    ("example list", 0, [EMOJI]), ("direction unknown", 2, "sideways"), ("direction None", 2, None), ("direction list", 2, ["twitter->google"]),
    ("method unknown", 3, "CycleGAN"), ("method None", 3, None), ("steps 0", 4, 0), ("steps 201", 4, 201), ("steps 2.5", 4, 2.5),
    ("steps None", 4, None), ("steps text", 4, "ten"), ("steps 10**400", 4, HUGE), ("step size -1", 5, -1), ("step size 3", 5, 3.0),
    ("step size None", 5, None), ("step size bool", 5, True), ("noise -0.5", 6, -0.5), ("noise 2", 6, 2.0), ("noise text", 6, "loud"),
    ("seed -1", 7, -1), ("seed 2**64", 7, 2**64), ("seed text", 7, "x"), ("seed None", 7, None), ("seed 10**400", 7, HUGE),
    *[(label, 1, value) for label, value in NOT_A_FILE],
]


def test_translate_endpoint(client, files):
    _bad_args(client, "/translate", TRANSLATE_OK, TRANSLATE_BAD)
    remote_refused(client, "CF-EBM pixel in its untrained direction", EMOJI, None, translate_tab.G2T, translate_tab.PIXEL,
                   3, 0.05, 0.1, 0, api="/translate", match="trained for twitter->google only")
    for name in UPLOAD_REFUSED:
        remote_refused(client, f"upload {name}", EMOJI, handle_file(files[name]), *TRANSLATE_OK[2:], api="/translate")
    for name, note in UPLOAD_CORRECTED.items():
        remote_corrected(client, f"upload {name}", EMOJI, handle_file(files[name]), *TRANSLATE_OK[2:], api="/translate", note=note)
    # The pixel baseline has no step-size argument: another value is replaced by the trained one, and the note says so.
    remote_corrected(client, "CF-EBM pixel with a step size it cannot use", EMOJI, None, translate_tab.T2G, translate_tab.PIXEL,
                     2, 1.5, 0.1, 0, api="/translate", note="fixed at its trained value")
    _healthy(client)


SALIENCY_OK = ("cfebm-fmnist", "inpaint", 0, None, "centre square", 0, 0.6)
SALIENCY_BAD = [
    ("model unknown", 0, "stylegan"), ("model None", 0, None), ("toy without a saliency view", 0, "toy-ring"),
    ("LETIT without a trained direction", 0, "letit-untrained"), ("task unknown", 1, "teleport"), ("task None", 1, None),
    ("task of another kind", 1, "translate"), ("task 10**4 chars", 1, "t" * 10_000), ("index -1", 2, -1), ("index 10**9", 2, 10**9),
    ("index text", 2, "first"), ("index None", 2, None), ("index 10**400", 2, HUGE), ("mask unknown", 4, "heart"), ("mask None", 4, None),
    ("seed -1", 5, -1), ("seed 2**64", 5, 2**64), ("seed None", 5, None), ("seed text", 5, "x"), ("opacity 2", 6, 2),
    ("opacity None", 6, None), ("opacity 10**400", 6, HUGE), *[(label, 3, value) for label, value in NOT_A_FILE],
]
DISAGREEMENT_OK = ("cdrl-fmnist", 0, None, 0.6)
DISAGREEMENT_BAD = [
    ("model unknown", 0, "stylegan"), ("model None", 0, None), ("model without an energy map (NeRF-LEBM)", 0, "nerf-lebm-shapes"),
    ("LETIT without a trained direction", 0, "letit-untrained"), ("index -1", 1, -1), ("index 10**9", 1, 10**9), ("index None", 1, None),
    ("index text", 1, "x"), ("opacity -0.1", 3, -0.1), ("opacity text", 3, "half"), *[(label, 2, value) for label, value in NOT_A_FILE],
]


def test_saliency_endpoints(client, files):
    fresh = _fresh(client)
    remote_refused(fresh, "opacity before any chain", 0.5, api="/saliency_opacity", match="Run a chain first")
    remote_refused(fresh, "opacity before any map", 0.5, api="/disagreement_opacity", match="Compute a map first")
    _bad_args(client, "/saliency", SALIENCY_OK, SALIENCY_BAD)
    for name in UPLOAD_REFUSED:
        remote_refused(client, f"inpaint upload {name}", *SALIENCY_OK[:3], handle_file(files[name]), *SALIENCY_OK[4:], api="/saliency")
        remote_refused(client, f"LETIT upload {name}", "letit-emoji", "translate", 0, handle_file(files[name]), *SALIENCY_OK[4:],
                       api="/saliency")
    for name, note in UPLOAD_CORRECTED.items():
        remote_corrected(client, f"inpaint upload {name}", *SALIENCY_OK[:3], handle_file(files[name]), *SALIENCY_OK[4:],
                         api="/saliency", note=note)
        remote_corrected(client, f"LETIT upload {name}", "letit-emoji", "translate", 0, handle_file(files[name]), *SALIENCY_OK[4:],
                         api="/saliency", note=note)
    remote_corrected(client, "index 2.5 (a gr.Number rounds it)", *SALIENCY_OK[:2], 2.5, *SALIENCY_OK[3:], api="/saliency",
                     note="image #2")
    remote_corrected(client, "index 10**9 for generate (which takes no image)", "cfebm-fmnist", "generate", 10**9, None,
                     "centre square", 0, 0.6, api="/saliency", note="Unconditional sample")
    for label, value in [("-1", -1), ("None", None), ("text", "x"), ("10**400", HUGE), ("list", [0.5])]:
        remote_refused(client, f"opacity {label} after a chain", value, api="/saliency_opacity")
    _bad_args(client, "/disagreement", DISAGREEMENT_OK, DISAGREEMENT_BAD)
    for name in UPLOAD_REFUSED:
        for model in ("cdrl-fmnist", "letit-emoji"):
            remote_refused(client, f"{model} upload {name}", model, 0, handle_file(files[name]), 0.6, api="/disagreement")
    for name, note in UPLOAD_CORRECTED.items():
        remote_corrected(client, f"cdrl-fmnist upload {name}", "cdrl-fmnist", 0, handle_file(files[name]), 0.6,
                         api="/disagreement", note=note)
        remote_corrected(client, f"letit-emoji upload {name}", "letit-emoji", 0, handle_file(files[name]), 0.6,
                         api="/disagreement", note=note)
    for label, value in [("7", 7), ("None", None), ("10**400", HUGE)]:
        remote_refused(client, f"opacity {label} after a map", value, api="/disagreement_opacity")
    _healthy(client)


COOPFLOW_OK = (3, 0.02, 0, 2, 0.0)
COOPFLOW_BAD = [
    ("steps -1", 0, -1), ("steps 201", 0, 201), ("steps 2.5", 0, 2.5), ("steps None", 0, None), ("steps text", 0, "x"),
    ("steps 10**400", 0, HUGE), ("delta 0", 1, 0), ("delta 1", 1, 1), ("delta None", 1, None), ("delta list", 1, [0.02]),
    ("seed -1", 2, -1), ("seed 2**64", 2, 2**64), ("seed None", 2, None), ("seed text", 2, "seed"), ("seed 10**400", 2, HUGE),
    ("n 0", 3, 0), ("n 65", 3, 65), ("n 1.5", 3, 1.5), ("n None", 3, None), ("noise -1", 4, -1), ("noise 2", 4, 2),
    ("noise None", 4, None), ("noise bool", 4, True),
]


def test_coopflow_endpoint(client):
    _bad_args(client, "/coopflow_sample", COOPFLOW_OK, COOPFLOW_BAD)
    remote_refused(client, "seeds past 2**63 - 1", 3, 0.02, 2**63 - 1, 2, 0.0, api="/coopflow_sample", match="go past the largest seed")
    remote_corrected(client, "seed 2**63 - 2 with 2 samples (the last two seeds)", 0, 0.02, 2**63 - 2, 2, 0.0,
                     api="/coopflow_sample", note=f"Seeds used: {2**63 - 2}-{2**63 - 1}")
    remote_corrected(client, "seed 2.5", 0, 0.02, 2.5, 2, 0.0, api="/coopflow_sample", note="Seeds used: 2-3")
    _healthy(client)


COOPFLOW_LINE_OK = (0, 1, 3, 2, 0.02, 0.0)  # seed A, seed B, frames, T, delta, noise
COOPFLOW_LINE_BAD = [
    ("seed A -1", 0, -1), ("seed A 2**63", 0, 2**63), ("seed A None", 0, None), ("seed A text", 0, "a"), ("seed A 10**400", 0, HUGE),
    ("seed B 2**63", 1, 2**63), ("seed B None", 1, None), ("seed B list", 1, [1]), ("frames 1", 2, 1), ("frames 17", 2, 17),
    ("frames 2.5", 2, 2.5), ("frames None", 2, None), ("steps 201", 3, 201), ("steps None", 3, None), ("delta 0", 4, 0),
    ("delta None", 4, None), ("noise 2", 5, 2), ("noise bool", 5, True),
]


def test_coopflow_interpolate_endpoint(client):
    _bad_args(client, "/coopflow_interpolate", COOPFLOW_LINE_OK, COOPFLOW_LINE_BAD)
    remote_refused(client, "seed A 2**63 (one past the largest seed)", 2**63, 1, 3, 2, 0.02, 0.0, api="/coopflow_interpolate",
                   match=r"Seed A must be a whole number between 0 and 2\*\*63 - 1")
    remote_corrected(client, "seeds 2**63 - 1 and 0", 2**63 - 1, 0, 2, 0, 0.02, 0.0, api="/coopflow_interpolate",
                     note=f"Line from seed {2**63 - 1} to seed 0 in 2 frames")
    _healthy(client)


EGC_GENERATE_OK = ("Trouser", 1.0, 3, 0, 2)
EGC_GENERATE_BAD = [
    ("class unknown", 0, "Zebra"), ("class list", 0, ["Bag"]), ("class 10**4 chars", 0, "x" * 10_000), ("guidance -1", 1, -1),
    ("guidance 21", 1, 21), ("guidance None", 1, None), ("guidance text", 1, "x"), ("guidance 10**400", 1, HUGE), ("steps 0", 2, 0),
    ("steps 201", 2, 201), ("steps 2.5", 2, 2.5), ("steps None", 2, None), ("steps above the model's 100 timesteps", 2, 150),
    ("seed -1", 3, -1), ("seed 2**63", 3, 2**63), ("seed None", 3, None), ("seed text", 3, "x"), ("seed 10**400", 3, HUGE),
    ("seeds past 2**63 - 1", 3, 2**63 - 1), ("n 0", 4, 0), ("n 17", 4, 17), ("n 1.5", 4, 1.5), ("n None", 4, None),
]
EXAMPLE = "fmnist-test-0002-trouser"


def test_egc_endpoints(client, files):
    _bad_args(client, "/egc_generate", EGC_GENERATE_OK, EGC_GENERATE_BAD)
    remote_corrected(client, "class None (unconditional)", None, 1.0, 3, 0, 2, api="/egc_generate", note="Seeds used: 0-1")
    remote_corrected(client, "seed 2.5", "Bag", 1.0, 2, 2.5, 2, api="/egc_generate", note="Seeds used: 2-3")
    for label, args in [("no upload, no example", (None, None)), ("example unknown", (None, "cat")),
                        ("example traversal", (None, "../../etc/passwd")), ("example list", (None, [EXAMPLE])),
                        *[(label, (value, None)) for label, value in NOT_A_FILE]]:
        remote_refused(client, label, *args, api="/egc_classify")
        remote_refused(client, label, *args, 0.1, api="/egc_fgsm")
    # This gr.Image(type="numpy") converts an upload to 8-bit RGB first (a NaN TIFF gives black), so only
    # unreadable and oversized files are left to refuse.
    for name in UPLOAD_REFUSED:
        if name != "float TIFF with NaN":
            remote_refused(client, f"upload {name}", handle_file(files[name]), None, api="/egc_classify")
            remote_refused(client, f"upload {name}", handle_file(files[name]), None, 0.1, api="/egc_fgsm")
    for name in [*UPLOAD_CORRECTED, "float TIFF with NaN"]:
        remote_corrected(client, f"upload {name}", handle_file(files[name]), None, api="/egc_classify", note="resized")
        remote_corrected(client, f"upload {name}", handle_file(files[name]), None, 0.1, api="/egc_fgsm", note="No true class")
    for label, eps in [("-0.1", -0.1), ("0.6", 0.6), ("None", None), ("text", "x"), ("10**400", HUGE), ("list", [0.1])]:
        remote_refused(client, f"epsilon {label}", None, EXAMPLE, eps, api="/egc_fgsm")
    _healthy(client)


NERF = "nerf-lebm-shapes"
NERF_SAMPLE_OK = (NERF, "EBM prior", 0, 30, 20, "RGB", 32)
NERF_SAMPLE_BAD = [
    ("model unknown", 0, "instant-ngp"), ("model None", 0, None), ("model of another tab", 0, "cdrl-fmnist"),
    ("prior unknown", 1, "Uniform prior"), ("prior None", 1, None), ("seed -1", 2, -1), ("seed 2**63", 2, 2**63),
    ("seed None", 2, None), ("seed text", 2, "x"), ("seed 10**400", 2, HUGE), ("azimuth 181", 3, 181), ("azimuth None", 3, None),
    ("azimuth -1e9", 3, -1e9), ("elevation 1e9", 4, 1e9), ("elevation -90", 4, -90), ("elevation None", 4, None),
    ("view unknown", 5, "X-ray"), ("view None", 5, None), ("resolution 256", 6, 256), ("resolution 8000", 6, 8000),
    ("resolution -32", 6, -32), ("resolution None", 6, None), ("resolution text", 6, "64"), ("resolution 64.5", 6, 64.5),
]
NERF_INFER_OK = (NERF, nerf_tab.example_names()[0], None, 0, 20, 1, 30, 20, "RGB", 32)
NERF_INFER_BAD = [
    ("no example, no upload", 1, None), ("example unknown", 1, "Test object 99 (dragon)"), ("pose azimuth 999", 3, 999),
    ("pose azimuth None", 3, None), ("pose azimuth 10**400", 3, HUGE), ("pose elevation None", 4, None),
    ("pose elevation text", 4, "up"), ("refinement -1", 5, -1), ("refinement 101", 5, 101), ("refinement 2.5", 5, 2.5),
    ("refinement None", 5, None), ("resolution 512", 9, 512), *[(label, 2, value) for label, value in NOT_A_FILE],
]


def test_nerf_endpoints(client, files):
    fresh = _fresh(client)
    for api, args in [("/nerf_render", (NERF, 30, 20, "RGB", 32)), ("/nerf_orbit", (NERF, 20, 4, "RGB", 32)),
                      ("/nerf_resample_shape", (NERF, "EBM prior", 30, 20, "RGB", 32)),
                      ("/nerf_resample_appearance", (NERF, "EBM prior", 30, 20, "RGB", 32))]:
        remote_refused(fresh, "before any object", *args, api=api, match="No object yet")
    _bad_args(client, "/nerf_sample", NERF_SAMPLE_OK, NERF_SAMPLE_BAD)
    remote_refused(client, "EBM prior on the Gaussian-prior model", "nerf-vae-shapes", *NERF_SAMPLE_OK[1:], api="/nerf_sample",
                   match="Gaussian prior")
    remote_corrected(client, "seed 2.5", *NERF_SAMPLE_OK[:2], 2.5, *NERF_SAMPLE_OK[3:], api="/nerf_sample", note="Shape seed 2")
    for api in ("/nerf_resample_shape", "/nerf_resample_appearance"):
        for label, args in [("model unknown", ("nope", "EBM prior", 30, 20, "RGB", 32)), ("prior None", (NERF, None, 30, 20, "RGB", 32)),
                            ("elevation 200", (NERF, "EBM prior", 30, 200, "RGB", 32)), ("view None", (NERF, "EBM prior", 30, 20, None, 32)),
                            ("resolution 4096", (NERF, "EBM prior", 30, 20, "RGB", 4096))]:
            remote_refused(client, label, *args, api=api)
    for label, args in [("model None", (None, 30, 20, "RGB", 32)), ("azimuth 1e300", (NERF, 1e300, 20, "RGB", 32)),
                        ("elevation -1e300", (NERF, 30, -1e300, "RGB", 32)), ("azimuth None", (NERF, None, 20, "RGB", 32)),
                        ("view unknown", (NERF, 30, 20, "Normals", 32)), ("resolution 4096", (NERF, 30, 20, "RGB", 4096)),
                        ("resolution None", (NERF, 30, 20, "RGB", None))]:
        remote_refused(client, label, *args, api="/nerf_render")
    for label, args in [("frames 0", (NERF, 20, 0, "RGB", 32)), ("frames 1000", (NERF, 20, 1000, "RGB", 32)),
                        ("frames 4.5", (NERF, 20, 4.5, "RGB", 32)), ("frames None", (NERF, 20, None, "RGB", 32)),
                        ("frames 10**400", (NERF, 20, HUGE, "RGB", 32)), ("elevation None", (NERF, None, 4, "RGB", 32)),
                        ("resolution 512", (NERF, 20, 4, "RGB", 512)), ("view None", (NERF, 20, 4, None, 32))]:
        remote_refused(client, label, *args, api="/nerf_orbit")
    grid = (NERF, "EBM prior", 0, 2, 30, 20)
    _bad_args(client, "/nerf_grid", grid, [
        ("seed -1", 2, -1), ("grid seeds past the largest", 2, nerf_tab.MAX_SEED), ("count 1", 3, 1), ("count 5", 3, 5),
        ("count 2.5", 3, 2.5), ("count None", 3, None), ("count 10**9", 3, 10**9), ("azimuth 999", 4, 999),
        ("elevation 1e9", 5, 1e9), ("prior text", 1, "x"), ("model None", 0, None)])
    _bad_args(client, "/nerf_infer", NERF_INFER_OK, NERF_INFER_BAD)
    for name in UPLOAD_REFUSED:
        remote_refused(client, f"upload {name}", NERF, None, handle_file(files[name]), *NERF_INFER_OK[3:], api="/nerf_infer")
    for name, note in UPLOAD_CORRECTED.items():
        remote_corrected(client, f"upload {name}", NERF, None, handle_file(files[name]), *NERF_INFER_OK[3:], api="/nerf_infer",
                         note=note)
    remote_corrected(client, "pose elevation 1e9 (outside the training range)", *NERF_INFER_OK[:4], 1e9, *NERF_INFER_OK[5:],
                     api="/nerf_infer", note="clamped to 40")
    assert _healthy(client) < 30


def test_trajectory_of_the_newer_kinds(client):
    """Trajectory offers each model the tasks its kind declares (task_specs): another kind's task, or a model with no chain, is refused."""
    for label, args in [("CoopFlow inpaint", ("coopflow-fmnist", "inpaint", 0)), ("EGC translate", ("egc-fmnist", "translate", 0)),
                        ("NeRF-LEBM inpaint", (NERF, "inpaint", 0)), ("LETIT generate", ("letit-emoji", "generate", 0)),
                        ("NeRF-VAE (a Gaussian prior has no chain)", ("nerf-vae-shapes", "generate", 0)),
                        ("LETIT without a trained direction", ("letit-untrained", "translate", 0)),
                        ("NeRF-LEBM seed -1", (NERF, "generate", -1)), ("EGC seed 2**64", ("egc-fmnist", "generate", 2**64)),
                        ("CoopFlow seed 10**400", ("coopflow-fmnist", "generate", HUGE))]:
        remote_refused(client, label, *args, api="/trajectory")


# /lab_train: points (text), objective, sampler, steps, learning rate, Langevin step, HMC step, leapfrog steps, seed
LAB_OK = ("0, 0\n1, 1\n-1, 0.5", "Denoising score matching", "Langevin", 5, 0.003, 0.003, 0.08, 5, 0)
LAB_BAD = [
    ("one point", 0, "0.5, 0.5"), ("no points", 0, ""), ("points None", 0, None), ("5,001 points", 0, "0, 0\n" * 5001),
    ("a NaN point", 0, "0, 0\nnan, 1"), ("a point outside the canvas", 0, "0, 0\n7, 1"), ("an infinite point", 0, "0, 0\n1, inf"),
    ("three numbers on a line", 0, "0, 0, 0\n1, 1"), ("text for a point", 0, "0, 0\nx, y"), ("objective unknown", 1, "GAN"),
    ("sampler unknown", 2, "Gibbs"), ("steps 0", 3, 0), ("steps 2001", 3, 2001), ("learning rate 1", 4, 1.0),
    ("Langevin step 0.5", 5, 0.5), ("Langevin step None", 5, None), ("HMC step 0", 6, 0.0), ("HMC step 5", 6, 5.0),
    ("leapfrog 0", 7, 0), ("leapfrog 51", 7, 51), ("leapfrog 2.5", 7, 2.5), ("seed -1", 8, -1), ("seed text", 8, "x"),
]
# /lab_sample: chains, gradient evaluations, Langevin step, HMC step, leapfrog steps, seed
LAB_SAMPLE_OK = (16, 20, 0.003, 0.08, 5, 0)
LAB_SAMPLE_BAD = [("chains 0", 0, 0), ("chains 10**6", 0, 10**6), ("evaluations 0", 1, 0), ("evaluations 10**9", 1, 10**9),
                  ("Langevin step -1", 2, -1.0), ("HMC step 0", 3, 0.0), ("leapfrog 0", 4, 0), ("seed 2**64", 5, 2**64)]
# /playground_compare: energy, step size, gradient evaluations, HMC step, leapfrog steps, chains, first seed
COMPARE_OK = ("Double well", 0.01, 20, 0.1, 5, 4, 0)
COMPARE_BAD = [("energy unknown", 0, "Volcano"), ("step 0", 1, 0.0), ("evaluations 0", 2, 0), ("evaluations 10**6", 2, 10**6),
               ("HMC step 0", 3, 0.0), ("HMC step 9", 3, 9.0), ("leapfrog 0", 4, 0), ("leapfrog 51", 4, 51),
               ("leapfrog above the evaluations", 4, 30), ("chains 0", 5, 0), ("seed -1", 6, -1)]


def test_lab_and_sampler_comparison_endpoints(client):
    """The Energy lab (nothing is trained in this session, so sampling and export say so) and the playground's
    Langevin vs HMC comparison."""
    for label, index, value in LAB_SAMPLE_BAD:
        args = list(LAB_SAMPLE_OK)
        args[index] = value
        remote_refused(client, label, *args, api="/lab_sample")
    remote_refused(client, "sample before training", *LAB_SAMPLE_OK, api="/lab_sample", match="press Train first")
    remote_refused(client, "export before training", api="/lab_export", match="press Train first")
    for label, name, count, noise in [("preset unknown", "heart", 100, 0.1), ("preset None", None, 100, 0.1),
                                      ("count 1", "rings", 1, 0.1), ("count 5001", "rings", 5001, 0.1), ("noise 2", "rings", 100, 2.0)]:
        remote_refused(client, label, name, count, noise, api="/lab_preset")
    for label, index, value in LAB_BAD:
        args = list(LAB_OK)
        args[index] = value
        remote_refused(client, label, *args, api="/lab_train")
    for label, index, value in COMPARE_BAD:
        args = list(COMPARE_OK)
        args[index] = value
        remote_refused(client, label, *args, api="/playground_compare")


def test_inpaint_example_loader_endpoint(client):
    """The Inpaint tab's example picker is a public event too (Gradio names it /load_example_1)."""
    for label, name in [("unknown", "fmnist-test-9999-cat"), ("None", None), ("traversal", "../../README"), ("list", ["x"])]:
        remote_refused(client, label, name, api="/load_example_1")


def test_every_endpoint_is_covered(client, request):
    """Every named endpoint of the app (``view_api``) got at least one bad input above, and there are no unnamed ones."""
    api = client.view_api(print_info=False, return_format="dict")
    assert not api["unnamed_endpoints"], api["unnamed_endpoints"]
    tried = {key.split(":")[0][len("api "):] for key in TRIED if key.startswith("api /")}
    missing = sorted(set(api["named_endpoints"]) - tried)
    defined = {name for name in vars(request.module) if name.startswith("test_")}
    selected = {item.name for item in request.session.items if item.module is request.module}
    if missing and selected != defined:
        pytest.skip("needs the whole module: the tests before it exercise the endpoints")
    assert not missing, f"endpoints without a bad-input test: {missing}"


# -- the public functions, called directly (values JSON cannot carry: NaN, infinity, tensors) -----


MESSY = [None, NAN, INF, -INF, -1, 0, 10**30, 1e300, "abc", "", [], {}, True, 2.5]


VALID = {("cdrl", "w"): (0, 2.5), ("cdrl", "seed"): (0,), ("playground", "noise_std"): (0, 2.5), ("playground", "seed"): (0,),
         ("cfebm", "eta0"): (0,), ("cfebm", "seed"): (0,)}


def _valid(tab: str, name: str, v) -> bool:
    return not isinstance(v, (bool, list, dict)) and any(v == ok and type(v) is not str for ok in VALID.get((tab, name), ()))


def test_tab_functions_with_nan_and_infinity(client):
    for v in MESSY:
        for i, name in [(1, "w"), (2, "K"), (3, "seed"), (4, "n")]:
            if not _valid("cdrl", name, v):
                args = list(CDRL_OK)
                args[i] = v
                refused(f"cdrl_tab.generate {name}={v!r}", cdrl_tab.generate, *args)
        for i, name in [(1, "step_size"), (2, "noise_std"), (3, "steps"), (4, "chains"), (5, "seed")]:
            if not _valid("playground", name, v):
                args = ["Ring", 0.02, 0.2, 10, 4, 0]
                args[i] = v
                refused(f"playground {name}={v!r}", playground.run_playground, *args)
        for i, name in [(2, "steps"), (3, "eta0"), (4, "seed"), (5, "n")]:
            if not _valid("cfebm", name, v):
                args = list(CFEBM_OK)
                args[i] = v
                refused(f"cfebm_tab.generate {name}={v!r}", cfebm_tab.generate, *args)
        if v != 0:
            refused(f"cfebm_tab.denoise noise={v!r}", cfebm_tab.denoise, "cfebm-fmnist", "fmnist-test-0002-trouser", None, v, 0)
            if v is not True:  # a direct call takes True as seed 1; the API refuses booleans for numbers
                refused(f"trajectory seed={v!r}", trajectory_tab.run, "cfebm-fmnist", "generate", v)
    refused("models_tab.show_card dict", models_tab.show_card, {"name": "toy-ring"})


ARRAYS = {
    "empty array": np.zeros((0, 0, 3), np.uint8), "1-D array": np.zeros(32, np.uint8), "batch of images": np.zeros((2, 32, 32, 3), np.uint8),
    "NaN image": np.full((32, 32, 3), np.nan), "infinite image": np.full((32, 32, 3), np.inf), "7 channels": np.zeros((32, 32, 7), np.uint8),
    "text array": np.array([["a", "b"]]), "object array": np.zeros((8, 8), object), "complex image": np.zeros((8, 8), np.complex64),
    "8000x8000 array": np.zeros((8000, 8000), np.uint8), "string 'image'": "not/a/file.png", "integer": 123,
}


def test_image_and_mask_functions(client, files):
    arr = np.zeros((32, 32, 3), np.uint8)
    for label, value in ARRAYS.items():
        refused(f"masks.image_for_model {label}", masks.image_for_model, value, 32, 1)
        refused(f"inpaint_tab.inpaint_editor background {label}", inpaint_tab.inpaint_editor, CDRL_LABEL,
                {"background": value, "layers": [], "composite": value}, "centre square", "(unconditional)", 1.0, 2, 2, 0)
    for label, value in [("negative floats", np.full((32, 32, 3), -5.0)), ("bool image", np.ones((32, 32), bool)),
                         ("int64 image", np.full((32, 32), 300, np.int64)), ("float 0..1 image", np.random.default_rng(0).random((20, 20)))]:
        corrected(f"masks.image_for_model {label}", masks.image_for_model, value, 32, 1)
    for name in UPLOAD_REFUSED:
        refused(f"masks.image_for_model file {name}", masks.image_for_model, files[name], 32, 1)
    refused("masks.preset_mask unknown", masks.preset_mask, "heart", 32)
    refused("masks.mask_from_editor list", masks.mask_from_editor, [arr], 32)
    refused("masks.mask_from_editor no strokes", masks.mask_from_editor, {"background": arr, "layers": [], "composite": None}, 32)
    refused("masks.mask_from_image corrupt", masks.mask_from_image, files["corrupt PNG"], 32)
    small = np.zeros((5, 7, 4), np.uint8)
    small[1:3, 1:3, 3] = 255
    painted, notes = corrected("masks.mask_from_editor 7x5 layer for 32x32", masks.mask_from_editor,
                               {"background": arr, "layers": [small]}, 32, note="resized")
    assert painted.shape == (32, 32)
    refused("inpaint_tab.complete_with mask 16x16", inpaint_tab.complete_with, "cdrl-fmnist", arr, np.ones((16, 16), bool),
            None, 1.0, 2, 2, 0, match="Mask must be")
    refused("inpaint_tab.complete_with float mask", inpaint_tab.complete_with, "cdrl-fmnist", arr, np.ones((32, 32)),
            None, 1.0, 2, 2, 0, match="Mask must be")
    refused("inpaint_tab.inpaint_editor not a dict", inpaint_tab.inpaint_editor, CDRL_LABEL, [arr], "paint", "(unconditional)", 1.0, 2, 2, 0)
    refused("inpaint_tab.load_example traversal", inpaint_tab.load_example, "../../README")
    refused("trajectory_tab.open_chain nothing", trajectory_tab.open_chain, None, None)
    refused("trajectory_tab.open_chain index 7 of 2", trajectory_tab.open_chain, {"count": 2}, 7)


def test_library_functions(client):
    cdrl, cfebm, ring = (studio.load(n) for n in ("cdrl-fmnist", "cfebm-fmnist", "toy-ring"))
    for v in MESSY:
        if v is None or v is True or v == 0:
            continue  # None means "the default"; 0 is a valid guidance / eta0
        if v != 2.5:  # a valid guidance
            refused(f"CDRL.generate guidance={v!r}", cdrl.generate, "Bag", seeds="0-1", guidance=v, steps=2)
        refused(f"CDRL.generate steps={v!r}", cdrl.generate, "Bag", seeds="0-1", steps=v)
        refused(f"CFEBM.generate steps={v!r}", cfebm.generate, seeds="0-1", steps=v)
        if v != 2.5:  # a valid eta0
            refused(f"CFEBM.generate eta0={v!r}", cfebm.generate, seeds="0-1", steps=2, eta0=v)
        refused(f"CFEBM.denoise steps={v!r}", cfebm.denoise, torch.zeros(1, 1, 32, 32), steps=v)
        if v != 2.5:  # a valid step size and noise level
            refused(f"Ring.sample step_size={v!r}", ring.sample, seeds="0-1", steps=3, step_size=v)
            refused(f"Ring.sample noise_std={v!r}", ring.sample, seeds="0-1", steps=3, noise_std=v)
        refused(f"Ring.sample steps={v!r}", ring.sample, seeds="0-1", steps=v)
    for c in ["Zebra", 10, -1, 3.5, {"a": 1}, ["Bag"] * 3, True]:
        refused(f"CDRL.generate classes={c!r}", cdrl.generate, c, seeds="0-1", steps=2)
    for s in ["abc", -1, "0-99999", None, [], 2**64, "5-2", "1,,2", 1.5, ["a"], "9" * 30, "-", {"0": 1}]:
        refused(f"parse_seeds {s!r}", parse_seeds, s)
        refused(f"CFEBM.generate seeds={s!r}", cfebm.generate, seeds=s, steps=2)
    img, mask = torch.zeros(1, 32, 32), torch.ones(32, 32)
    for label, im, m in [("image 16x16", torch.zeros(1, 16, 16), mask), ("mask 16x16", img, torch.ones(16, 16)),
                         ("mask of 0.5", img, torch.full((32, 32), 0.5)), ("mask NaN", img, torch.full((32, 32), NAN)),
                         ("image 3 channels", torch.zeros(3, 32, 32), mask), ("numpy image", np.zeros((1, 32, 32)), mask),
                         ("numpy mask", img, np.ones((32, 32))), ("3 images for 2 seeds", torch.zeros(3, 1, 32, 32), mask),
                         ("1-D mask", img, torch.ones(1024 + 1))]:
        refused(f"CDRL.inpaint {label}", cdrl.inpaint, im, m, seeds="0-1", steps=2)
        refused(f"CFEBM.inpaint {label}", cfebm.inpaint, im, m, seeds="0-1", steps=2)
    refused("CFEBM.inpaint NaN image", cfebm.inpaint, torch.full((1, 32, 32), NAN), mask, seeds="0", steps=2)
    for label, x in [("16x16", torch.zeros(1, 1, 16, 16)), ("NaN", torch.full((1, 1, 32, 32), NAN)), ("2-D", torch.zeros(32, 32)),
                     ("numpy", np.zeros((1, 1, 32, 32))), ("empty batch", torch.zeros(0, 1, 32, 32)), ("complex", torch.zeros(1, 1, 32, 32, dtype=torch.complex64))]:
        refused(f"CFEBM.denoise {label}", cfebm.denoise, x, steps=2)
        refused(f"CFEBM.ood_score {label}", cfebm.ood_score, x)
        refused(f"CFEBM.translate {label}", cfebm.translate, x)
    corrected("CFEBM.ood_score integer images", cfebm.ood_score, torch.zeros(2, 1, 32, 32, dtype=torch.long))
    refused("CDRL.energy numpy", cdrl.energy, np.zeros((1, 1, 32, 32)))
    refused("studio.load None", studio.load, None)
    refused("studio.load unknown name", studio.load, "no-such-model")
    refused("studio.load file", studio.load, __file__)


def test_langevin_engine_arguments():
    energy = lambda x: 0.5 * x.pow(2).flatten(1).sum(1)  # noqa: E731
    x0 = torch.zeros(2, 3)
    for v in [NAN, INF, -1.0, "a", None, [1], torch.tensor([NAN])]:
        refused(f"langevin step_size={v!r}", langevin, energy, x0, steps=3, step_size=v, noise_std=0.1)
        refused(f"langevin noise_std={v!r}", langevin, energy, x0, steps=3, step_size=0.1, noise_std=v)
    for v in [-1, 1.5, "3", None, NAN]:
        refused(f"langevin steps={v!r}", langevin, energy, x0, steps=v, step_size=0.1, noise_std=0.1)
    for v in [-1, None, NAN, "x"]:
        refused(f"langevin record_every={v!r}", langevin, energy, x0, steps=3, step_size=0.1, noise_std=0.1, record_every=v)
    cases = [
        ("x0 list", dict(x0=[[0.0]])), ("x0 integer tensor", dict(x0=torch.zeros(2, 3, dtype=torch.long))),
        ("x0 NaN", dict(x0=torch.full((2, 3), NAN))),
        ("energy of the wrong shape", dict(energy_fn=lambda x: x.sum())),
        ("energy NaN", dict(energy_fn=lambda x: x.sum(1) * NAN)),
        ("energy without gradient", dict(energy_fn=lambda x: torch.zeros(x.shape[0]))),
        ("5 generators for 2 samples", dict(generator=make_generators("0-4"))),
        ("mask of the wrong size", dict(mask=torch.ones(5), known=torch.zeros(5))),
        ("mask without known", dict(mask=torch.ones(3))), ("mask of 2", dict(mask=torch.full((3,), 2.0), known=torch.zeros(3))),
        ("mask NaN", dict(mask=torch.full((3,), NAN), known=torch.zeros(3))),
        ("clamp reversed", dict(clamp=(1, -1))), ("clamp text", dict(clamp="ab")), ("clamp NaN", dict(clamp=(NAN, 1))),
        ("schedule returning NaN", dict(step_size=lambda t: NAN)),
    ]
    for label, override in cases:
        kwargs = {**dict(energy_fn=energy, x0=x0, steps=3, step_size=0.1, noise_std=0.1), **override}
        fn, start = kwargs.pop("energy_fn"), kwargs.pop("x0")
        refused(f"langevin {label}", langevin, fn, start, **kwargs)


# -- the newer tabs' handlers and library functions, called directly ---------------------------------


def _finite_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _messy_calls(prefix: str, fn, base: tuple, params: dict[int, tuple[str, object]]) -> None:
    """``fn(*base)`` with each MESSY value in each parameter; ``params``: index -> (name, valid(v)) of what is accepted."""
    for v in MESSY:
        for index, (name, valid) in params.items():
            if not valid(v):
                args = list(base)
                args[index] = v
                refused(f"{prefix} {name}={v!r}", fn, *args)


def _is(*values):
    return lambda v: any(v == ok and type(v) is type(ok) for ok in values)


def never(v) -> bool:
    return False


def _nerf_state() -> dict:
    """What nerf_sample keeps in the session's gr.State."""
    z_s, z_a = cached_model(NERF).sample_latents(1, seeds="0")
    return {"z_s": z_s.tolist(), "z_a": z_a.tolist(), "shape_seed": 0, "appearance_seed": 0, "prior": "ebm", "source": "sampled"}


def test_new_tab_functions_with_nan_and_infinity(client, files):
    """The handlers as Python calls (NaN and infinity cannot travel in JSON): a clear gr.Error for every bad value."""
    tt, nt = translate_tab, nerf_tab
    _messy_calls("translate_tab.translate", tt.translate, TRANSLATE_OK, {
        4: ("steps", never), 5: ("step_size", _is(0)), 6: ("noise", _is(0)), 7: ("seed", _is(0))})
    for direction in (["twitter->google"], {"t2g": 1}, "t2g", None):
        refused(f"translate_tab.translate direction={direction!r}", tt.translate, EMOJI, None, direction, tt.LETIT, 2, 0.05, 0.1, 0)
    _messy_calls("coopflow_tab.sample", coopflow_tab.sample, COOPFLOW_OK, {
        0: ("steps", _is(0)), 1: ("step_size", never), 2: ("seed", _is(0)), 3: ("n", never), 4: ("noise", _is(0))})
    _messy_calls("coopflow_tab.interpolate", coopflow_tab.interpolate, COOPFLOW_LINE_OK, {
        0: ("seed A", _is(0)), 1: ("seed B", _is(0)), 2: ("frames", never), 3: ("steps", _is(0)), 4: ("step_size", never),
        5: ("noise", _is(0))})
    _messy_calls("egc_tab.generate", egc_tab.generate, EGC_GENERATE_OK, {
        1: ("guidance", _is(0, 2.5)), 2: ("steps", never), 3: ("seed", _is(0)), 4: ("n", never)})
    _messy_calls("egc_tab.attack", egc_tab.attack, (None, EXAMPLE, 0.1), {2: ("eps", _is(0))})
    refused("egc_tab.classify NaN array", egc_tab.classify, np.full((32, 32), NAN), None)
    refused("egc_tab.classify 8000x8000 array", egc_tab.classify, np.zeros((8000, 8000), np.uint8), None)
    refused("egc_tab.classify empty array", egc_tab.classify, np.zeros((0, 0, 3), np.uint8), None)
    corrected("egc_tab.classify 1x1 array", egc_tab.classify, np.zeros((1, 1), np.uint8), None, note="resized from 1x1")
    # NeRF: any finite elevation is clamped to the training range (with a note), any finite azimuth in [-180, 180] is fine.
    az_ok = lambda v: _finite_number(v) and -180 <= v <= 180  # noqa: E731
    _messy_calls("nerf_tab.sample_object", nt.sample_object, NERF_SAMPLE_OK, {
        2: ("seed", _is(0)), 3: ("azimuth", az_ok), 4: ("elevation", _finite_number), 6: ("resolution", never)})
    state = _nerf_state()
    _messy_calls("nerf_tab.render_view", nt.render_view, (NERF, state, 30, 20, "RGB", 32), {
        2: ("azimuth", az_ok), 3: ("elevation", _finite_number), 5: ("resolution", never)})
    _messy_calls("nerf_tab.orbit", nt.orbit, (NERF, state, 20, 4, "RGB", 32), {2: ("elevation", _finite_number), 3: ("frames", never)})
    _messy_calls("nerf_tab.swap_grid", nt.swap_grid, (NERF, "EBM prior", 0, 2, 30, 20), {
        2: ("seed", _is(0)), 3: ("count", never), 4: ("azimuth", az_ok), 5: ("elevation", _finite_number)})
    _messy_calls("nerf_tab.infer_object", nt.infer_object, NERF_INFER_OK, {
        3: ("pose azimuth", az_ok), 4: ("pose elevation", _finite_number), 5: ("refinement", _is(0))})
    for label, bad in [("None", None), ("empty dict", {}), ("text latents", {"z_s": "abc", "z_a": "def"}),
                       ("ragged latents", {"z_s": [[0.0], [0.0, 1.0]], "z_a": [[0.0]]}), ("NaN latents", {"z_s": [[NAN] * 8], "z_a": [[0.0] * 6]}),
                       ("1-D latents", {"z_s": [0.0] * 8, "z_a": [0.0] * 6}), ("latents of different batches", {"z_s": [[0.0] * 8] * 2, "z_a": [[0.0] * 6]}),
                       ("list", [1, 2])]:
        refused(f"nerf_tab.render_view state {label}", nt.render_view, NERF, bad, 30, 20, "RGB", 32)
    for name in UPLOAD_REFUSED:
        refused(f"nerf_tab.load_upload {name}", nt.load_upload, files[name])
    for name, note in UPLOAD_CORRECTED.items():
        corrected(f"nerf_tab.load_upload {name}", nt.load_upload, files[name], note=note)
    refused("nerf_tab.load_upload missing file", nt.load_upload, "not/a/file.png")
    # Seed and opacity refuse booleans as the API does; the example index still takes True as 1 in a direct call.
    _messy_calls("saliency_tab.saliency", saliency_tab.saliency, SALIENCY_OK, {5: ("seed", _is(0)), 6: ("opacity", _is(0))})
    _messy_calls("saliency_tab.disagreement", saliency_tab.disagreement, DISAGREEMENT_OK, {
        1: ("index", _is(0, True)), 3: ("opacity", _is(0))})
    for v in MESSY:
        if not _is(0)(v):
            refused(f"saliency_tab.rerender opacity={v!r}", saliency_tab.rerender, {"input": torch.zeros(1, 32, 32),
                    "output": torch.zeros(1, 32, 32), "saliency": torch.zeros(32, 32)}, v)
    refused("saliency_tab.rerender no state", saliency_tab.rerender, None, 0.5)
    refused("saliency_tab.rerender_disagreement no state", saliency_tab.rerender_disagreement, {}, 0.5)


IMAGES = {  # (label, tensor or other) for image arguments of the library functions
    "NaN": lambda s, c: torch.full((1, c, s, s), NAN), "infinity": lambda s, c: torch.full((1, c, s, s), INF),
    "numpy": lambda s, c: np.zeros((1, c, s, s)), "wrong size": lambda s, c: torch.zeros(1, c, s + 16, s + 16),
    "wrong channels": lambda s, c: torch.zeros(1, c + 1, s, s), "empty batch": lambda s, c: torch.zeros(0, c, s, s),
    "2-D": lambda s, c: torch.zeros(s, s), "5-D": lambda s, c: torch.zeros(1, 1, c, s, s),
    "complex": lambda s, c: torch.zeros(1, c, s, s, dtype=torch.complex64), "None": lambda s, c: None,
    "nested list": lambda s, c: [[0.0] * s] * s,
}


def _messy(label: str, call, valid=never) -> None:
    """``call(v)`` for every MESSY value that ``valid`` does not accept must be refused clearly."""
    for v in MESSY:
        if not valid(v):
            refused(f"{label}={v!r}", call, v)


def _none_or(*values):
    return lambda v: v is None or _is(*values)(v)


def test_letit_library(client):
    letit, untrained = studio.load("letit-emoji"), studio.load("letit-untrained")
    x = torch.zeros(1, 3, 16, 16)
    for label, make in IMAGES.items():
        refused(f"LETIT.translate images {label}", letit.translate, make(16, 3), "t2g", steps=2)
        refused(f"LETIT.encode {label}", letit.encode, make(16, 3))
    refused("LETIT.translate 3 images for 2 seeds", letit.translate, torch.zeros(3, 3, 16, 16), "t2g", steps=2, seeds="0-1")
    for d in ["sideways", None, "T2G", "", [], {}, ["t2g"], 1]:
        refused(f"LETIT.translate direction={d!r}", letit.translate, x, d, steps=2)
    refused("LETIT.translate an untrained direction", untrained.translate, x, "t2g", steps=2, match="not been trained")
    _messy("LETIT.translate steps", lambda v: letit.translate(x, "t2g", steps=v), _none_or(0))
    # Any finite non-negative step size or noise is the caller's choice (the latent clamp bounds the chain).
    sane = lambda v: v is None or _finite_number(v) and v >= 0  # noqa: E731
    _messy("LETIT.translate step_size", lambda v: letit.translate(x, "t2g", steps=2, step_size=v), sane)
    _messy("LETIT.translate noise", lambda v: letit.translate(x, "t2g", steps=2, noise=v), sane)
    _messy("LETIT.translate record_every", lambda v: letit.translate(x, "t2g", steps=2, record_every=v), _is(0))
    _messy("LETIT.translate seeds", lambda v: letit.translate(x, "t2g", steps=2, seeds=v), _is(0))
    for label, z in [("wrong shape", torch.zeros(1, 3, 8, 8)), ("numpy", np.zeros((1, 2, 8, 8))), ("None", None), ("flat", torch.zeros(128))]:
        refused(f"LETIT.decode {label}", letit.decode, z)
        refused(f"LETIT.energy {label}", letit.energy, z, "t2g")
    refused("LETIT.energy direction unknown", letit.energy, torch.zeros(1, 2, 8, 8), "sideways")
    for d in ["x", None, ["t2g"], {}]:
        refused(f"LETIT.sampler_defaults {d!r}", letit.sampler_defaults, d)


def test_egc_library(client):
    egc = studio.load("egc-fmnist")
    x, y = torch.zeros(1, 1, 32, 32), torch.tensor([0])
    logits = lambda z: egc.logits(z, 0)  # noqa: E731
    for label, make in IMAGES.items():
        refused(f"EGC.classify {label}", egc.classify, make(32, 1))
        refused(f"EGC.predict {label}", egc.predict, make(32, 1))
        refused(f"EGC.topk {label}", egc.topk, make(32, 1))
        refused(f"fgsm images {label}", fgsm, logits, make(32, 1), y, 0.1)
        if label not in ("NaN", "infinity"):  # the free energy is the sampler's inner loop: no finiteness sync there
            refused(f"EGC.energy {label}", egc.energy, make(32, 1))
    corrected("EGC.classify integer images", egc.classify, torch.zeros(1, 1, 32, 32, dtype=torch.long))
    _messy("EGC.generate steps", lambda v: egc.generate(seeds="0", steps=v), _none_or())
    _messy("EGC.generate guidance", lambda v: egc.generate("Bag", seeds="0", steps=2, guidance=v), _none_or(0, 2.5))
    _messy("EGC.generate eta", lambda v: egc.generate(seeds="0", steps=2, eta=v), _is(0))
    _messy("EGC.generate record_every", lambda v: egc.generate(seeds="0", steps=2, record_every=v), _is(0))
    _messy("EGC.generate seeds", lambda v: egc.generate(seeds=v, steps=2), _is(0))
    _messy("EGC.generate classes", lambda v: egc.generate(v, seeds="0", steps=2), _none_or(0))
    _messy("EGC.topk k", lambda v: egc.topk(x, v))
    _messy("fgsm eps", lambda v: fgsm(logits, x, y, v), _is(0))
    _messy("EGC.fgsm_accuracy eps", lambda v: egc.fgsm_accuracy(x, y, v), _is(0))
    for c in ["Zebra", 10, -1, 3.5, {"a": 1}, ["Bag"] * 3, [None, "Bag"], "bag"]:
        refused(f"EGC.generate classes={c!r} (2 seeds)", egc.generate, c, seeds="0-1", steps=2)
    for label, labels in [("out of range", torch.tensor([99])), ("negative", torch.tensor([-1])), ("2 for 1 image", torch.tensor([0, 1])),
                          ("numpy", np.array([0])), ("float", torch.tensor([0.5])), ("2-D", torch.tensor([[0]])), ("None", None)]:
        refused(f"fgsm labels {label}", fgsm, logits, x, labels, 0.1)


def test_coopflow_library(client):
    coop = studio.load("coopflow-fmnist")
    _messy("CoopFlow.sample steps", lambda v: coop.sample("0", steps=v), _none_or(0))
    _messy("CoopFlow.sample step_size", lambda v: coop.sample("0", steps=1, step_size=v), _none_or())
    _messy("CoopFlow.sample noise", lambda v: coop.sample("0", steps=1, noise=v), _none_or(0))
    _messy("CoopFlow.sample temperature", lambda v: coop.sample("0", steps=1, temperature=v))
    _messy("CoopFlow.sample record_every", lambda v: coop.sample("0", steps=1, record_every=v), _is(0))
    _messy("CoopFlow.sample seeds", lambda v: coop.sample(v, steps=1), _is(0))
    _messy("CoopFlow.generate steps", lambda v: coop.generate("0", steps=v), _none_or(0))
    _messy("CoopFlow.interpolate seed_a", lambda v: coop.interpolate(v, 1, 2, steps=1), _is(0))
    _messy("CoopFlow.interpolate seed_b", lambda v: coop.interpolate(0, v, 2, steps=1), _is(0))
    _messy("CoopFlow.interpolate n", lambda v: coop.interpolate(0, 1, v, steps=1))
    _messy("CoopFlow.interpolate steps", lambda v: coop.interpolate(0, 1, 2, steps=v), _none_or(0))
    _messy("CoopFlow.interpolate temperature", lambda v: coop.interpolate(0, 1, 2, steps=1, temperature=v))
    for a, b in [(2**63, 0), (0, 2**63), (-1, 0), (0, 2**64)]:
        refused(f"CoopFlow.interpolate seeds {a}, {b}", coop.interpolate, a, b, 2, match=r"seed_[ab] must be a whole number")
    for label, make in IMAGES.items():
        refused(f"CoopFlow.refine {label}", coop.refine, make(32, 1), steps=1)
        refused(f"CoopFlow.nll_bits_per_dim {label}", coop.nll_bits_per_dim, make(32, 1))
        if label not in ("NaN", "infinity"):  # the energy runs inside the Langevin loop, which checks the states itself
            refused(f"CoopFlow.energy {label}", coop.energy, make(32, 1))
    for label, z in [("wrong size", torch.zeros(1, 5)), ("numpy", np.zeros((1, 1024))), ("None", None),
                     ("integer", torch.zeros(1, 1024, dtype=torch.long))]:
        refused(f"CoopFlow.decode {label}", coop.decode, z)


def test_render_library():
    field = lambda p: (p[..., 0] * 0, p * 0)  # noqa: E731  (an empty field: only the arguments matter here)
    c2w = camera_to_world(30.0, 20.0)[None]
    _messy("Camera azimuth", lambda v: Camera(azimuth=v), _finite_number)
    _messy("Camera elevation", lambda v: Camera(elevation=v), _finite_number)
    _messy("camera_to_world azimuth", lambda v: camera_to_world(v, 20.0), _finite_number)
    _messy("poses_to_c2w elevation", lambda v: poses_to_c2w(torch.tensor([0.0]), v), _finite_number)
    _messy("Camera.rays resolution", lambda v: Camera().rays(v))
    _messy("render_image resolution", lambda v: render_image(field, c2w, v, 4))
    _messy("render_image samples", lambda v: render_image(field, c2w, 8, v))
    _messy("stratified_depths samples", lambda v: stratified_depths(torch.zeros(2), torch.ones(2), v))
    _messy("orbit_angles frames", orbit_angles)
    for res in (257, 8000, 10**9):
        refused(f"render_image resolution {res} (above the cap)", render_image, field, c2w, res, 4, match="above the cap")
        refused(f"Camera.rays resolution {res} (above the cap)", Camera().rays, res, match="above the cap")
    for label, bad in [("NaN", torch.full((1, 4, 4), NAN)), ("3x3", torch.zeros(1, 3, 3)), ("numpy", np.eye(4)[None]), ("unbatched", torch.eye(4))]:
        refused(f"render_image c2w {label}", render_image, field, bad, 8, 4)
    for label, fov in [("0", 0), ("180", 180), ("NaN", NAN), ("text", "wide")]:
        refused(f"Camera fov {label}", Camera, fov=fov)
    refused("Camera radius 0", Camera, radius=0)
    refused("orbit_angles 10**9 frames (a huge list, not a render)", orbit_angles, 10**9)
    refused("orbit_angles start NaN", orbit_angles, 4, NAN)
    refused("poses_to_c2w 2 azimuths, 1 elevation", poses_to_c2w, torch.tensor([0.0, 1.0]), torch.tensor([20.0]))


def test_nerf_library(client):
    """NeRFLEBM's public methods: render with resolution above the cap or NaN angles, infer with odd images, ..."""
    nerf, vae = studio.load("nerf-lebm-shapes"), studio.load("nerf-vae-shapes")
    z_s, z_a = nerf.sample_latents(1)
    _messy("NeRFLEBM.render resolution", lambda v: nerf.render(z_s, z_a, resolution=v))
    _messy("NeRFLEBM.check_resolution", nerf.check_resolution)
    for v in (NAN, INF, -INF, 1e300, []):  # 1e300 is infinite as float32 (the renderer's precision)
        refused(f"NeRFLEBM.render azimuth={v!r}", nerf.render, z_s, z_a, azimuth=v, resolution=8)
        refused(f"NeRFLEBM.render elevation={v!r}", nerf.render, z_s, z_a, elevation=v, resolution=8)
    for v in (NAN, INF, -INF):
        refused(f"NeRFLEBM.clamp_elevation {v!r}", nerf.clamp_elevation, v)
    # samples: 0, "", [] and {} are falsy, so they mean the default; True is refused, not taken as 1.
    _messy("NeRFLEBM.render samples", lambda v: nerf.render(z_s, z_a, resolution=8, samples=v), lambda v: not v)
    _messy("NeRFLEBM.sample_latents seeds", lambda v: nerf.sample_latents(1, seeds=v), _is(0, True))
    _messy("NeRFLEBM.resample part", lambda v: nerf.resample(z_s, z_a, v, "0"))
    for v in ["uniform", "EBM", 1]:
        refused(f"NeRFLEBM.sample_latents prior={v!r}", nerf.sample_latents, 1, prior=v)
    for res in (257, 8000, 10**9):
        refused(f"NeRFLEBM.render resolution {res} (above the cap)", nerf.render, z_s, z_a, resolution=res, match="above the cap")
    refused("NeRFLEBM.render 3 azimuths for 1 object", nerf.render, z_s, z_a, azimuth=[0.0, 1.0, 2.0], resolution=8)
    refused("NeRFLEBM.render latents of different batches", nerf.render, z_s.repeat(2, 1), z_a, resolution=8)
    refused("NeRFLEBM.render 1-D latents", nerf.render, z_s[0], z_a[0], resolution=8)
    refused("NeRFLEBM.orbit 361 frames", nerf.orbit, z_s, z_a, frames=361, resolution=8)
    refused("NeRFLEBM.orbit NaN frames", nerf.orbit, z_s, z_a, frames=NAN, resolution=8)
    refused("NeRFLEBM.sample_latents n 0", nerf.sample_latents, 0)
    refused("NeRFLEBM.sample_latents 3 seeds for n 2", nerf.sample_latents, 2, seeds="0-2")
    refused("EBM prior of the Gaussian-prior checkpoint", vae.sample_latents, 1, prior="ebm")
    refused("NeRFLEBM.prior_trajectory of a Gaussian prior", vae.prior_trajectory)
    refused("NeRFLEBM.prior_trajectory 17 seeds", nerf.prior_trajectory, seeds="0-16")
    for label, make in [("NaN", lambda: torch.full((1, 3, 64, 64), NAN)), ("numpy", lambda: np.zeros((1, 3, 64, 64))),
                        ("2-D", lambda: torch.zeros(64, 64)), ("5 channels", lambda: torch.zeros(1, 5, 64, 64)), ("None", lambda: None)]:
        refused(f"NeRFLEBM.infer images {label}", nerf.infer, make(), refine_steps=0)
    # Documented in check_images: any square size is resized to 64, uint8 is scaled, RGBA is composited on white.
    for label, make in [("1x1", lambda: torch.zeros(1, 3, 1, 1)), ("uint8", lambda: torch.full((1, 3, 64, 64), 255, dtype=torch.uint8)),
                        ("RGBA 40x40", lambda: torch.ones(1, 4, 40, 40)), ("grey", lambda: torch.zeros(1, 1, 64, 64)),
                        ("4096x4096 uint8", lambda: torch.zeros(1, 1, 4096, 4096, dtype=torch.uint8)),
                        ("values outside [0, 1]", lambda: torch.full((1, 3, 64, 64), -5.0))]:
        corrected(f"NeRFLEBM.infer images {label}", nerf.infer, make(), refine_steps=0)
    for v in [NAN, INF, -1, "abc", [], {}]:
        refused(f"NeRFLEBM.infer step_size={v!r}", nerf.infer, torch.zeros(1, 3, 64, 64), refine_steps=1, step_size=v)
    refused("NeRFLEBM.infer refine_steps -1", nerf.infer, torch.zeros(1, 3, 64, 64), refine_steps=-1)


# Inputs that used to end in a TypeError/RuntimeError inside studio/nerf_lebm.py and studio/ui/saliency_tab.py.
def _library_cases():
    nerf = studio.load("nerf-lebm-shapes")
    z_s, z_a = nerf.sample_latents(1)
    x = torch.zeros(1, 3, 64, 64)
    cases = [(f"NeRFLEBM.render {k}={v!r}", nerf.render, (z_s, z_a), {k: v, "resolution": 8})
             for k in ("azimuth", "elevation") for v in (None, "abc", {})]
    cases += [(f"NeRFLEBM.clamp_elevation {v!r}", nerf.clamp_elevation, (v,), {}) for v in (None, "abc", [], {})]
    cases += [(f"NeRFLEBM.orbit frames={v!r}", nerf.orbit, (z_s, z_a), {"frames": v, "resolution": 8}) for v in (None, "abc", [])]
    cases += [(f"NeRFLEBM.sample_latents n={v!r}", nerf.sample_latents, (v,), {}) for v in (INF, 2.5, "abc", [], 10**30)]
    cases += [(f"NeRFLEBM.sample_latents steps={v!r}", nerf.sample_latents, (1,), {"steps": v}) for v in (10**30,)]
    cases += [(f"NeRFLEBM.infer {k}={v!r}", nerf.infer, (x,), {k: v, "refine_steps": 0}) for k in ("azimuth", "elevation")
              for v in (None, "abc", [], {})]
    cases += [("NeRFLEBM.infer azimuth=10**30", nerf.infer, (x,), {"azimuth": 10**30, "refine_steps": 0})]
    cases += [(f"NeRFLEBM.infer refine_steps={v!r}", nerf.infer, (x,), {"refine_steps": v}) for v in (NAN, INF, "abc", [], 10**30)]
    cases += [("NeRFLEBM.infer 2 images, 3 poses", nerf.infer, (torch.zeros(2, 3, 64, 64),), {"azimuth": [0.0, 1.0, 2.0], "refine_steps": 0}),
              ("NeRFLEBM.infer a 0x0 image", nerf.infer, (torch.zeros(1, 3, 0, 0),), {"refine_steps": 0}),
              ("NeRFLEBM.infer complex images", nerf.infer, (x.to(torch.complex64),), {"refine_steps": 0})]
    cases += [(f"NeRFLEBM.render latents {label}", nerf.render, z, {"resolution": 8}) for label, z in
              [("of the wrong size", (torch.zeros(1, 3), z_a)), ("numpy", (np.zeros((1, 8)), z_a)), ("None", (None, z_a)),
               ("integer", (z_s.long(), z_a.long())), ("empty", (z_s[:0], z_a[:0]))]]
    cases += [("NeRFLEBM.sample_latents one seed, n past the largest seed", nerf.sample_latents, (2,), {"seeds": [2**63 - 1]}),
              ("NeRFLEBM.resample latents None", nerf.resample, (None, z_a, "shape", "0"), {}),
              ("NeRFLEBM.resample 3 seeds for 1 object", nerf.resample, (z_s, z_a, "shape", "0-2"), {}),
              ("saliency_tab._opacity True", saliency_tab._opacity, (True,), {}),
              ("saliency_tab._seed True", saliency_tab._seed, (True,), {}),
              ("saliency_tab._opacity 10**400", saliency_tab.rerender, ({"input": torch.zeros(1, 8, 8), "output": torch.zeros(1, 8, 8),
                                                                          "saliency": torch.zeros(8, 8)}, HUGE), {})]
    return cases


def test_nerf_and_saliency_library_bad_inputs(client, files):
    """Direct calls the tabs check first (NeRF-LEBM poses, latents, counts; saliency seed/opacity): a clear error each."""
    unclear = []
    for label, fn, args, kwargs in _library_cases():
        try:
            fn(*args, **kwargs)
            unclear.append(f"{label}: accepted")
        except (StudioError, gr.Error) as err:
            _clear(str(err))
            TRIED[label] = "refused: " + str(err)[:160]
        except Exception as err:  # noqa: BLE001 - what is being listed
            unclear.append(f"{label}: {type(err).__name__}: {str(err)[:80]}")
    assert not unclear, "\n".join(unclear)
    # An emoji-domain upload is decoded before it is resized: the first-frame note must still come through.
    _, _, notes = corrected("inputs.model_input emoji animated GIF", model_input, {"image_size": 16, "channels": 3}, 0,
                            files["animated GIF"], "twitter", note="first frame")
    assert sum("first frame" in n for n in notes) == 1, notes

# -- property-based fuzzing of numeric parameters ----------------------------------------------------


def messy_numbers():
    """Anything a hostile API client could send for a number."""
    return st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True, allow_infinity=True),
                     st.integers(min_value=-2**70, max_value=2**70), st.text(max_size=6),
                     st.sampled_from(["1e3", "0x10", "nan", "-0", " 3 "]), st.lists(st.integers(), max_size=2))


FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))


def _fuzz_outcome(label: str, fn, *args) -> None:
    """Either a result or a clear StudioError/gr.Error; records the refused inputs."""
    try:
        result = fn(*args)
        if inspect.isgenerator(result):
            list(result)
    except (StudioError, gr.Error) as err:
        _clear(str(err))
        TRIED[f"{label}{args!r}"[:200]] = "refused: " + str(err)[:120]


@FUZZ
@given(x=messy_numbers(), lo=st.integers(-5, 5), span=st.integers(0, 10))
def test_fuzz_limit_checks(x, lo, span):
    """The validators return an in-range value of the right type, or refuse with a LimitError."""
    hi = lo + span
    for check in (limits.number, limits.integer):
        try:
            got = check("v", x, lo, hi)
        except limits.LimitError as err:
            _clear(str(err))
            TRIED[f"limits.{check.__name__}({x!r}, {lo}, {hi})"] = "refused"
            continue
        assert lo <= got <= hi and math.isfinite(got) and (check is limits.number or isinstance(got, int))


@FUZZ
@given(step=messy_numbers(), noise=messy_numbers(), steps=messy_numbers(), chains=messy_numbers(), seed=messy_numbers())
def test_fuzz_playground(client, step, noise, steps, chains, seed):
    _fuzz_outcome("playground", playground.run_playground, "Ring", step, noise, steps, chains, seed)


@settings(FUZZ, max_examples=40)
@given(w=messy_numbers(), k=messy_numbers(), seed=messy_numbers(), n=messy_numbers())
def test_fuzz_cdrl_generate(client, w, k, seed, n):
    _fuzz_outcome("cdrl_tab.generate", cdrl_tab.generate, "Bag", w, k, seed, n, True, True, False, False)


@settings(FUZZ, max_examples=40)
@given(steps=messy_numbers(), eta0=messy_numbers(), seed=messy_numbers(), n=messy_numbers())
def test_fuzz_cfebm_generate(client, steps, eta0, seed, n):
    _fuzz_outcome("cfebm_tab.generate", cfebm_tab.generate, "cfebm-fmnist", "single-scale", steps, eta0, seed, n)


@FUZZ
@given(step=messy_numbers(), noise=messy_numbers(), steps=messy_numbers(), record=messy_numbers())
def test_fuzz_langevin(step, noise, steps, record):
    energy = lambda x: 0.5 * x.pow(2).sum(1)  # noqa: E731
    if isinstance(steps, int) and not isinstance(steps, bool) and steps > 50:
        steps = steps % 50  # the engine itself has no cap (library callers choose); keep the fuzz fast
    _fuzz_outcome("langevin", lambda *a: langevin(energy, torch.zeros(2, 2), steps=a[2], step_size=a[0], noise_std=a[1],
                                                   record_every=a[3]), step, noise, steps, record)


@FUZZ
@given(spec=st.one_of(messy_numbers(), st.text(alphabet="0123456789-, ", max_size=12)))
def test_fuzz_seed_specs(spec):
    try:
        seeds = parse_seeds(spec)
    except StudioError as err:
        _clear(str(err))
        TRIED[f"parse_seeds({spec!r})"] = "refused"
        return
    assert seeds and all(isinstance(s, int) and 0 <= s < 2**63 for s in seeds)


# The newer tabs' numeric parameters: each one is valid two times in three, so most examples put one or
# two bad values among good ones and some run the (tiny) model end to end. Fewer examples, and valid step
# and sample counts kept small, as those runs cost (the caps themselves are checked through the API above).
SLOW_FUZZ = settings(FUZZ, max_examples=25)
SEEDS = st.integers(0, 2**63 - 1)


def mixed(valid):
    # Not st.one_of(valid, valid, messy): one_of flattens messy_numbers' own branches, so valid would be 2 in 9.
    return st.integers(0, 2).flatmap(lambda k: messy_numbers() if k == 0 else valid)


@SLOW_FUZZ
@given(steps=mixed(st.integers(1, 20)), step=mixed(st.floats(0, 2)), noise=mixed(st.floats(0, 1)), seed=mixed(SEEDS))
def test_fuzz_translate(client, steps, step, noise, seed):
    _fuzz_outcome("translate_tab.translate", translate_tab.translate, EMOJI, None, translate_tab.T2G, translate_tab.LETIT,
                  steps, step, noise, seed)


@SLOW_FUZZ
@given(guidance=mixed(st.floats(0, 20)), steps=mixed(st.integers(1, 10)), seed=mixed(SEEDS), n=mixed(st.integers(1, 4)))
def test_fuzz_egc_generate(client, guidance, steps, seed, n):
    _fuzz_outcome("egc_tab.generate", egc_tab.generate, "Bag", guidance, steps, seed, n)


@SLOW_FUZZ
@given(steps=mixed(st.integers(0, 20)), delta=mixed(st.floats(0.005, 0.1)), seed=mixed(SEEDS), n=mixed(st.integers(1, 8)),
       noise=mixed(st.floats(0, 1)))
def test_fuzz_coopflow(client, steps, delta, seed, n, noise):
    _fuzz_outcome("coopflow_tab.sample", coopflow_tab.sample, steps, delta, seed, n, noise)


ANGLES, ELEVATIONS = st.floats(-180, 180), st.floats(-1e6, 1e6)  # any finite elevation is clamped (with a note)


@SLOW_FUZZ
@given(seed=mixed(st.integers(0, nerf_tab.MAX_SEED)), azimuth=mixed(ANGLES), elevation=mixed(ELEVATIONS),
       resolution=mixed(st.sampled_from(nerf_tab.RESOLUTIONS)))
def test_fuzz_nerf_sample_and_render(client, seed, azimuth, elevation, resolution):
    _fuzz_outcome("nerf_tab.sample_object", nerf_tab.sample_object, NERF, "EBM prior", seed, azimuth, elevation, "RGB", resolution)
    _fuzz_outcome("nerf_tab.render_view", nerf_tab.render_view, NERF, _nerf_state(), azimuth, elevation, "Depth", resolution)


@SLOW_FUZZ
@given(elevation=mixed(ELEVATIONS), frames=mixed(st.integers(4, 6)), seed=mixed(st.integers(0, nerf_tab.MAX_SEED)),
       count=mixed(st.integers(2, 3)), azimuth=mixed(ANGLES))
def test_fuzz_nerf_orbit_and_grid(client, elevation, frames, seed, count, azimuth):
    _fuzz_outcome("nerf_tab.orbit", nerf_tab.orbit, NERF, _nerf_state(), elevation, frames, "RGB", 32)
    _fuzz_outcome("nerf_tab.swap_grid", nerf_tab.swap_grid, NERF, "EBM prior", seed, count, azimuth, elevation)


@SLOW_FUZZ
@given(pose_azimuth=mixed(ANGLES), pose_elevation=mixed(ELEVATIONS), refine=mixed(st.integers(0, 5)))
def test_fuzz_nerf_infer(client, pose_azimuth, pose_elevation, refine):
    _fuzz_outcome("nerf_tab.infer_object", nerf_tab.infer_object, NERF, nerf_tab.example_names()[0], None, pose_azimuth,
                  pose_elevation, refine, 30, 20, "RGB", 32)
