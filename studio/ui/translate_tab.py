"""Tab "Translate": Twitter <-> Google emoji by latent transport (LETIT) or pixel transport (CF-EBM).

Only what is trained is offered: LETIT in the directions whose latent EBM its checkpoint holds
(``LETIT.trained_directions``), the CF-EBM pixel baseline in the one direction it was trained for.
Everything shown comes from one run: the strip, shifts and energies are read from its Trace.
LETIT runs also report the re-encode check (PSNR of an image to Dec(Enc(image)): a clean drawing is a
near fixed point of the autoencoder) for the output, the input and the true drawing, and can project the
latent chain back onto the decoder's manifold every k steps (``LETIT.translate(project_every=k)``).
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import gradio as gr
import numpy as np
import plotly.graph_objects as go
import torch
from PIL import Image, ImageDraw

from .. import checks
from ..errors import SamplingError, StudioError
from ..metrics import psnr
from ..paths import assets_dir
from ..viz import energy_figure, to_uint8
from .bar_warnings import BarWarning, bar_warning
from . import gpu, limits
from .common import cached_model, user_errors
from .masks import animated_note, image_for_model, to_array

LETIT_NAME, CFEBM_NAME = "letit-emoji", "cfebm-emoji-t2g"
LETIT, PIXEL = "LETIT", "CF-EBM pixel"
T2G, G2T = "twitter->google", "google->twitter"
CODES = {T2G: "t2g", G2T: "g2t"}
STYLES = {"t2g": ("twitter", "google"), "g2t": ("google", "twitter")}  # (source, target)
MAX_STEPS, MAX_STEP_SIZE, MAX_NOISE, MAX_SEED = 200, 2.0, 1.0, 2**63 - 1
STRIP_FRAMES, SHOW = 11, 128  # frames in the trajectory strip (incl. both ends); displayed image size (2x of 64 px)
STRIP_COLUMNS, STRIP_TILE = 6, 96  # the strip wraps into rows so each frame stays at least 1.5x
# Reference-CPU seconds of one projection Enc(Dec(z)) of one 64 px image (letit-emoji): 0.021 s of CPU time with
# one thread on a loaded machine where a default 24-step translation took 0.069 s against gpu.LETIT_STEP's 0.044 s,
# scaled by that ratio. At most one per step, so it bounds the extra cost of projecting every step.
LETIT_PROJECTION = 0.013
EMOJI_DIR = assets_dir() / "examples" / "emoji"


# -- what is available -----------------------------------------------------------------------------


def _config(name: str) -> tuple[str, dict] | None:
    """(kind, config) from a local checkpoint's config.json, without loading weights; None if absent or unreadable."""
    from ..hub import checkpoints_dir, read_config
    from ..registry import local_names

    if name not in local_names():
        return None
    try:
        payload = read_config(checkpoints_dir() / name)
    except StudioError:
        return None
    return str(payload["kind"]), dict(payload["config"])


def offered() -> dict[str, list[str]]:
    """Method -> the directions (labels) it can translate with the local checkpoints; untrained ones are left out."""
    out = {}
    letit = _config(LETIT_NAME)
    if letit and letit[0] == "letit":
        trained = [label for label, code in CODES.items() if code in (letit[1].get("directions") or {})]
        if trained:
            out[LETIT] = trained
    pixel = _config(CFEBM_NAME)
    if pixel and pixel[0] == "cfebm":
        pair = (pixel[1].get("source_domain"), pixel[1].get("target_domain"))
        trained = [label for label, code in CODES.items() if STYLES[code] == pair]
        if trained:
            out[PIXEL] = trained
    return out


def available() -> bool:
    return bool(offered())


def directions() -> list[str]:
    """Directions at least one method can translate, in a fixed order."""
    methods = offered()
    return [d for d in CODES if any(d in ds for ds in methods.values())]


def methods_for(direction: str) -> list[str]:
    return [m for m, ds in offered().items() if direction in ds]


def _direction(value) -> str:
    if not isinstance(value, str) or value not in CODES:  # a list or dict is unhashable: no TypeError
        raise SamplingError(f"Unknown direction {value!r}: choose '{T2G}' or '{G2T}'.")
    return CODES[value]


def _model(method, direction: str):
    """The checkpoint for (method, direction label); a clear error for anything not trained."""
    methods = offered()
    if method not in (LETIT, PIXEL):
        raise SamplingError(f"Unknown method {method!r}: choose '{LETIT}' or '{PIXEL}'.")
    if method not in methods:
        name = LETIT_NAME if method == LETIT else CFEBM_NAME
        raise SamplingError(f"{method} is not available: checkpoints/{name} is missing or has no trained direction.")
    if direction not in methods[method]:
        if method == PIXEL:
            raise SamplingError(f"The CF-EBM pixel baseline ({CFEBM_NAME}) was trained for {', '.join(methods[method])} only; "
                                f"choose {LETIT} for {direction}.")
        raise SamplingError(f"The {CODES[direction]} latent EBM of {LETIT_NAME} has not been trained yet "
                            f"(trained: {', '.join(methods[method])}).")
    return cached_model(LETIT_NAME if method == LETIT else CFEBM_NAME)


def _size(model) -> int:
    return int(getattr(model.config, "image_size", 0) or model.config.resolution)


def sampler_defaults(method: str, direction: str) -> dict:
    """Steps, step size, noise and manifold projection (every k steps, 0 = off) the chosen model translates
    with by default (CF-EBM: its translation defaults; it has no latent, so no projection)."""
    model = _model(method, direction)
    if method == LETIT:
        d = model.sampler_defaults(CODES[direction])
        return {"steps": int(d["steps"]), "step_size": float(d["step_size"]), "noise": float(d["noise"]),
                "project_every": int(model.config.project_every)}
    return {"steps": model.trained_steps(), "step_size": float(model.config.grad_step), "noise": float(model.config.translate_eta0),
            "project_every": 0}


# -- inputs ----------------------------------------------------------------------------------------


def example_names() -> list[str]:
    """Shipped held-out pairs (both styles present), e.g. 'emoji-test-000-0023-fe0f-20e3'."""
    return [p.name[: -len("-twitter.png")] for p in sorted(EMOJI_DIR.glob("emoji-test-*-twitter.png"))
            if (EMOJI_DIR / p.name.replace("-twitter.png", "-google.png")).is_file()]


def example_path(name: str, style: str) -> Path:
    return EMOJI_DIR / f"{name}-{style}.png"


def _rgb_on_white(image) -> tuple[np.ndarray, list[str]]:
    """Any image -> uint8 H x W x 3 with transparency composited on white (how the emoji data were prepared)."""
    arr = to_array(image)
    notes = []
    if arr.shape[2] in (2, 4):
        alpha = arr[..., -1:].astype(np.float32) / 255
        if (alpha < 1).any():
            notes.append("Transparent pixels were composited on white (as the emoji training data are).")
        arr = (arr[..., :-1] * alpha + 255 * (1 - alpha)).round().astype(np.uint8)
    if arr.shape[2] == 1:
        notes.append("The greyscale image was converted to RGB.")
        arr = np.repeat(arr, 3, axis=2)
    return arr, notes


def _image(source, size: int) -> tuple[torch.Tensor, list[str]]:
    arr, notes = _rgb_on_white(source)
    x, more = image_for_model(arr, size, 3)
    return x, animated_note(source) + notes + more  # read from the file: the array no longer knows


def inputs(example, upload, code: str, size: int) -> tuple[torch.Tensor, torch.Tensor | None, str, list[str]]:
    """(source image [3, S, S], ground truth or None, description, notes). An upload wins over the example."""
    source_style, target_style = STYLES[code]
    if upload is not None:
        x, notes = _image(upload, size)
        return x, None, "your upload", notes + [f"It was treated as a {source_style}-style emoji at {size}x{size} RGB; "
                                                "there is no ground truth for an upload."]
    if example not in example_names():
        raise SamplingError(f"Pick a held-out example or upload an image; got example {example!r}.")
    x, _ = _image(example_path(example, source_style), size)
    truth, _ = _image(example_path(example, target_style), size)
    return x, truth, f"held-out pair {example} ({source_style} style; the {target_style} drawing is the ground truth)", []


# -- argument checks -----------------------------------------------------------------------------


def _in_range(what: str, value, lo: float, hi: float) -> float:
    return checks.number(what, value, lo, hi)


def _steps(value) -> int:
    return checks.integer("Steps", value, 1, MAX_STEPS)


def _project_every(value) -> int:
    return checks.integer("Project every (steps)", value, 0, MAX_STEPS)  # named as the slider is


def _seed(value) -> int:
    return limits.seed(value, error=SamplingError)


# -- figures ---------------------------------------------------------------------------------------

# A dark-to-bright ramp (black -> purple -> orange -> pale yellow) for shift maps: still locations stay dark.
RAMP_STOPS = np.array([0.0, 0.35, 0.7, 1.0])
RAMP = np.array([[0, 0, 4], [120, 28, 109], [237, 105, 37], [252, 255, 164]], dtype=np.float64)


def _show(x: torch.Tensor) -> Image.Image:
    return Image.fromarray(to_uint8(x.reshape(1, *x.shape[-3:]))[0]).resize((SHOW, SHOW), Image.NEAREST)


def shift_image(shift_map: torch.Tensor) -> Image.Image:
    """[h, w] non-negative shifts -> a colour image (scaled by the maximum), enlarged to SHOW px."""
    s = shift_map.double().numpy()
    s = s / s.max() if s.max() > 0 else s
    rgb = np.stack([np.interp(s, RAMP_STOPS, RAMP[:, c]) for c in range(3)], axis=-1).round().astype(np.uint8)
    return Image.fromarray(rgb).resize((SHOW, SHOW), Image.NEAREST)


def strip(frames: list[torch.Tensor], steps: list[int], size: int = STRIP_TILE, columns: int = STRIP_COLUMNS) -> Image.Image:
    """Frames [3, S, S] (enlarged to ``size``) in rows of ``columns``, each captioned with its step *below*
    the tile (a caption on top would sit under the panel's own label)."""
    pad, caption = 4, 14
    cols = max(1, min(columns, len(frames)))
    rows = -(-len(frames) // cols)
    canvas = Image.new("RGB", (cols * (size + pad) + pad, rows * (size + caption + pad) + pad), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i, (f, s) in enumerate(zip(frames, steps)):
        tile = Image.fromarray(to_uint8(f[None])[0]).resize((size, size), Image.NEAREST)
        r, c = divmod(i, cols)
        x, y = pad + c * (size + pad), pad + r * (size + caption + pad)
        canvas.paste(tile, (x, y))
        draw.text((x + 2, y + size + 1), f"step {s}", fill=(0, 0, 0))
    return canvas


def shift_figure(per_channel: torch.Tensor, labels: list[str], title: str, yaxis: str) -> go.Figure:
    fig = go.Figure(go.Bar(x=labels, y=per_channel.tolist(), marker_color="rgb(31,119,180)",
                           hovertemplate="%{x}: %{y:.4g}<extra></extra>"))
    fig.update_layout(title=dict(text=title, font=dict(size=13)), xaxis_title="channel", yaxis_title=yaxis, height=320,
                      margin=dict(l=10, r=10, t=70, b=10))
    return fig


def _strip_indices(frame_steps: list[int], every: int) -> list[int]:
    """Frames at multiples of ``every`` plus the last one (CF-EBM records every step for its pixel shift)."""
    last = len(frame_steps) - 1
    return [i for i, s in enumerate(frame_steps) if s % every == 0 and i != last] + [last]


# -- translate -------------------------------------------------------------------------------------


@gpu.on_gpu(MAX_STEPS * max(gpu.LETIT_STEP + LETIT_PROJECTION, gpu.PIXEL_STEP_64))
@user_errors
def translate(example, upload, direction, method, steps, step_size, noise, seed, project_every=None,
              progress=gr.Progress(track_tqdm=True)):
    """Translate one emoji: images, trajectory strip, shift chart and map, energy plot and a note.
    ``project_every`` (LETIT only): replace the latent by Enc(Dec(z)) every k steps and at the end; 0 = off,
    None = the model's default."""
    code = _direction(direction)
    model = _model(method, direction)
    steps = _steps(steps)
    step_size = _in_range("Step size", step_size, 0.0, MAX_STEP_SIZE)
    noise = _in_range("Noise", noise, 0.0, MAX_NOISE)
    seed = _seed(seed)
    trained = sampler_defaults(method, direction)
    project_every = trained["project_every"] if project_every is None else _project_every(project_every)
    size = _size(model)
    x, truth, source, notes = inputs(example, upload, code, size)
    src_style, tgt_style = STYLES[code]
    every = max(1, math.ceil(steps / (STRIP_FRAMES - 1)))
    start = time.perf_counter()
    if method == LETIT:
        r = model.translate(x, code, steps=steps, step_size=step_size, noise=noise, seeds=str(seed), record_every=every,
                            progress=True, project_every=project_every)
        out, recon, trace = r.outputs[0], r.reconstructions[0], r.trace
        shown = list(range(len(r.frames)))
        frames, frame_steps = r.frames, r.frame_steps
        per_channel, where = r.shift_per_channel()[0], r.shift_map()[0]
        channels = [f"z{c}" for c in range(len(per_channel))]
        chart = shift_figure(per_channel, channels, "LETIT latent shift per channel:<br>sum over steps of |z(t+1) - z(t)|",
                             "shift (normalised latent units)")
        lat = r.latent_shift
        shift_note = (f"Latent shift: {float(lat.sum()):.3g} in total over {lat[0].numel()} latent numbers; the map is its "
                      f"sum over channels at each of the {where.shape[-2]}x{where.shape[-1]} latent locations.")
        sampler = f"{steps} latent Langevin steps, step size {step_size:g}, noise std {noise:g}"
        if project_every:
            sampler += (", the latent projected onto the decoder's manifold (z <- Enc(Dec(z))) "
                        + (f"every {project_every} steps and at the end" if project_every < steps else "at the end"))
    else:
        if project_every:
            notes.append(f"CF-EBM works on pixels and has no latent to project, so 'Project every' ({project_every}) was not used.")
        if step_size != trained["step_size"]:
            notes.append(f"CF-EBM's step size is fixed at its trained value {trained['step_size']:g} (its translate() has "
                         f"no step-size argument), so the {step_size:g} given was not used.")
            step_size = trained["step_size"]
        # Every step is recorded (pixel frames are cheap) so the pixel shift sum_t |x(t+1) - x(t)| is exact.
        y, trace = model.translate(x, seeds=str(seed), steps=steps, eta0=noise, record_every=1, progress=True)
        out, recon = y[0].cpu(), None
        path = torch.stack(trace.frames)[:, 0]
        moved = (path[1:] - path[:-1]).abs().sum(0)
        frame_steps = list(trace.frame_steps)
        shown = _strip_indices(frame_steps, every)
        frames = [f[0] for f in trace.frames]
        per_channel, where = moved.sum((1, 2)), moved.sum(0)
        chart = shift_figure(per_channel, ["R", "G", "B"], "CF-EBM pixel shift per colour channel:<br>sum over steps of "
                             "|x(t+1) - x(t)| (no latent: it works on pixels)", "shift (pixel units, images in [-1, 1])")
        shift_note = (f"Pixel shift: {float(moved.sum()):.3g} in total over {moved.numel()} pixel values; the map is its "
                      f"sum over colour channels at each of the {size}x{size} pixels.")
        sampler = f"{steps} pixel Langevin steps, step size {step_size:g}, eta0 {noise:g} (noise variance decaying to 0)"
    seconds = time.perf_counter() - start
    frames = [frames[i] if frames[i].dim() == 3 else frames[i][0] for i in shown]
    lines = [f"Input: {source}. {method} {direction} on {size}x{size} RGB: {sampler}, seed {seed}, {seconds:.1f} s."]
    if steps > trained["steps"]:
        lines.append(f"**Warning: {steps} steps exceed the {trained['steps']} this model was trained with; "
                     "a short-run EBM can overshoot beyond its trained chain length.**")
    if truth is not None:
        p_out, p_id = float(psnr(out[None], truth[None])[0]), float(psnr(x[None], truth[None])[0])
        lines.append(f"PSNR to the true {tgt_style} drawing: output **{p_out:.2f} dB**, untranslated input {p_id:.2f} dB.")
    if recon is not None:
        lines.append(f"Autoencoder reconstruction vs input: {float(psnr(recon[None], x[None])[0]):.2f} dB "
                     "(the ceiling: the chain can only reach what the decoder can draw).")
        lines.append(reencode_line(model, out, x, truth, src_style, tgt_style))
    lines.append(shift_note)
    lines.append(f"The strip shows {len(frames)} frames of the same run (" + ("every step)." if every == 1 else
                 f"every {every} steps and the last)."))
    title = f"{method} {direction}: energy of the {tgt_style} style per step<br>(lower = more {tgt_style}-like)"
    # The reconstruction panel's visibility follows the method radio (``_controls``); the API gets None for CF-EBM.
    return (_show(x), None if recon is None else _show(recon), _show(out), None if truth is None else _show(truth),
            strip(frames, [frame_steps[i] for i in shown]), chart, shift_image(where), energy_figure(trace, title),
            "\n\n".join(notes + lines))


def reencode_line(model, out: torch.Tensor, x: torch.Tensor, truth: torch.Tensor | None, src_style: str, tgt_style: str) -> str:
    """The on-manifold check of a LETIT output beside the same check of the input and of the true drawing."""
    images = torch.stack([out, x] + ([truth] if truth is not None else []))
    values = [float(v) for v in model.reencode_psnr(images)]
    refs = f"your {src_style} input {values[1]:.1f} dB" + (f", the true {tgt_style} drawing {values[2]:.1f} dB" if truth is not None else "")
    return (f"Re-encode check, PSNR of an image to Dec(Enc(image)) (a clean drawing is a near fixed point of the "
            f"autoencoder): output **{values[0]:.1f} dB**; {refs}.")


# -- layout ----------------------------------------------------------------------------------------

PARAMS = {"steps": "Steps", "step_size": "Step size", "noise": "Noise", "project_every": "Project every"}
RANGES = {"steps": (1, MAX_STEPS), "step_size": (0.0, MAX_STEP_SIZE), "noise": (0.0, MAX_NOISE), "project_every": (0, MAX_STEPS)}
FIXED_FOR_PIXEL = ("step_size", "project_every")  # CF-EBM's translate() takes neither: they stay at its values


def settings_for(method: str, direction: str, current: dict, touched: dict) -> tuple[dict, list[str]]:
    """The sampler settings after a change of method or direction, and a note for every value that changed.

    A value the user set (``touched``) is kept while the new method accepts it; CF-EBM's step size is fixed
    at its trained value and it has no latent to project (``FIXED_FOR_PIXEL``). A value the user never set follows the new model's trained default. A value the
    user set that had to give way comes back when the method accepts it again (it stays in ``touched``)."""
    trained = sampler_defaults(method, direction)
    values, notes = {}, []
    for key, label in PARAMS.items():
        lo, hi = RANGES[key]
        mine = touched.get(key)
        fixed = method == PIXEL and key in FIXED_FOR_PIXEL
        if mine is not None and not fixed and lo <= mine <= hi:
            value, why = mine, "your value"
        else:
            value = min(trained[key], hi)
            why = (f"{method} uses its trained value; yours ({_fmt(mine)}) is kept for when it applies again" if fixed and mine is not None
                   else f"the default of {method} {direction}" + (", fixed" if fixed else ""))
        values[key] = int(value) if key in ("steps", "project_every") else float(value)
        old = current.get(key)
        if old is not None and not _same(old, values[key]):
            notes.append(f"{label}: {_fmt(old)} -> {_fmt(values[key])} ({why}).")
    return values, notes


def _fmt(v) -> str:
    return "-" if v is None else f"{float(v):g}"


def _same(a, b) -> bool:
    try:
        return abs(float(a) - float(b)) < 1e-9
    except (TypeError, ValueError):
        return False


PROJECT_INFO = {LETIT: "Replace the latent by Enc(Dec(z)) every k steps and at the end (0 = off).",
                PIXEL: "LETIT only: CF-EBM works on pixels and has no latent to project."}


def _controls(method: str, direction: str, current: dict, touched: dict, extra: list[str]) -> tuple:
    """Updates of steps, step size, noise, projection, the settings note, the reconstruction panel and the bar warning."""
    values, notes = settings_for(method, direction, current, touched)
    if method == LETIT:
        size = gr.update(value=values["step_size"], interactive=True, info="Latent step size (the EBM was trained with this value).")
        noise = gr.update(value=values["noise"], info="Noise std added per latent step.")
    else:
        size = gr.update(value=values["step_size"], interactive=False, info="Fixed for CF-EBM (its trained grad_step).")
        noise = gr.update(value=values["noise"], info="CF-EBM eta0: initial noise variance, decaying to 0 at the last step.")
    project = gr.update(value=values["project_every"], interactive=method == LETIT, info=PROJECT_INFO[method])
    note = " ".join(extra + notes)
    return (gr.update(value=values["steps"]), size, noise, project, gr.update(value=note, visible=bool(note)),
            gr.update(visible=method == LETIT), *BarWarning.update(*_bar_subject(method, direction)))


def _bar_subject(method: str, direction: str) -> tuple[str, str]:
    """(checkpoint, studio.bars use) of a method and direction, for the bar warning."""
    return (LETIT_NAME if method == LETIT else CFEBM_NAME), CODES.get(direction, "t2g")


def _gallery(direction: str) -> list[tuple[str, str]]:
    style = STYLES[_direction(direction)][0]
    return [(str(example_path(n, style)), "#" + n.split("-")[2]) for n in example_names()]


def _direction_changed(direction: str, method: str, touched: dict | None, steps, step_size, noise, project_every):
    """Keep the method if it translates this direction, else switch to one that does (and say so)."""
    _direction(direction)
    methods = methods_for(direction)
    keep = method if method in methods else methods[0]
    extra = [] if keep == method else [f"{method} does not translate {direction}, so the method is now {keep}."]
    current = {"steps": steps, "step_size": step_size, "noise": noise, "project_every": project_every}
    return (gr.update() if keep == method else gr.update(value=keep),
            *_controls(keep, direction, current, touched or {}, extra), gr.update(value=_gallery(direction)))


def _method_changed(direction: str, method: str, touched: dict | None, steps, step_size, noise, project_every):
    """Keep the direction if this method translates it, else switch to the method's first trained direction (and say so)."""
    dirs = offered().get(method, [])
    if not dirs:
        raise SamplingError(f"Unknown method {method!r}.")
    keep = direction if direction in dirs else dirs[0]
    extra = [] if keep == direction else [f"{method} translates {', '.join(dirs)} only, so the direction is now {keep}."]
    current = {"steps": steps, "step_size": step_size, "noise": noise, "project_every": project_every}
    return (gr.update() if keep == direction else gr.update(value=keep), *_controls(method, keep, current, touched or {}, extra),
            gr.update() if keep == direction else gr.update(value=_gallery(keep)))


def _touch(key: str):
    """Remember a value the user set by hand (slider input events only: programmatic updates do not count)."""
    def remember(touched: dict | None, value):
        return {**(touched or {}), key: value}
    return remember


def _pick(evt: gr.SelectData):
    names = example_names()
    return names[evt.index] if 0 <= evt.index < len(names) else gr.update()


def _image_panel(caption: str) -> gr.Image:
    image = gr.Image(label=caption, show_label=False, buttons=[], format="png", type="pil", height=SHOW + 8,
                     elem_classes=["pixelated"])
    gr.Markdown(f"<center>{caption}</center>", elem_classes=["panel-caption"])
    return image


def _panel(caption: str, elem_id: str) -> gr.Image:
    """An image panel with its caption below it (a column with ``elem_id``); returns the image."""
    with gr.Column(min_width=SHOW + 16, elem_id=elem_id):
        return _image_panel(caption)


def build() -> None:
    dirs = directions()
    direction0 = dirs[0]
    method0 = methods_for(direction0)[0]
    d = sampler_defaults(method0, direction0)
    examples = example_names()
    methods = offered()
    gr.Markdown(
        "**Translate** an emoji between the Twitter and Google styles. **LETIT** (latent energy transport) encodes the "
        "image, runs Langevin dynamics on its code under an EBM of the target style's latents and decodes the end; "
        "**CF-EBM pixel** runs Langevin on the pixels under a target-style EBM. Held-out examples come with the "
        "other style's drawing of the same emoji, so the output can be compared with ground truth. Only trained "
        "methods and directions are offered.")
    touched = gr.State({})
    with gr.Row():
        with gr.Column(scale=1):
            example = gr.Dropdown(examples, value=examples[0] if examples else None, label="Held-out example (emoji test split)")
            gallery = gr.Gallery(_gallery(direction0), columns=5, height=200,
                                 allow_preview=False, label="Click to pick an example", format="png")
            upload = gr.Image(type="filepath", image_mode=None, label="Or upload an image (any size; converted to 64x64 RGB)", height=180)
            direction = gr.Radio(dirs, value=direction0, label="Direction", elem_id="translate-direction")
            method = gr.Radio(list(methods), value=method0, label="Method", elem_id="translate-method",
                              info="; ".join(f"{m}: {', '.join(ds)}" for m, ds in methods.items()))
            steps = gr.Slider(1, MAX_STEPS, value=min(d["steps"], MAX_STEPS), step=1, label="Langevin steps", elem_id="translate-steps")
            step_size = gr.Slider(0, MAX_STEP_SIZE, value=d["step_size"], step=0.001, label="Step size",
                                  interactive=method0 == LETIT)
            noise = gr.Slider(0, MAX_NOISE, value=d["noise"], step=0.001, label="Noise")
            project = gr.Slider(0, MAX_STEPS, value=d["project_every"], step=1, label="Project every (steps)",
                                info=PROJECT_INFO[method0], interactive=method0 == LETIT, elem_id="translate-project")
            settings_note = gr.Markdown(visible=False, elem_id="translate-settings-note")
            seed = gr.Number(value=0, precision=0, label="Seed")
            go_btn = gr.Button("Translate", variant="primary")
            warning = bar_warning(*_bar_subject(method0, direction0))
            note = gr.Markdown(elem_id="translate-note")
        with gr.Column(scale=2):
            # Each 64x64 image is sent at 2x (SHOW px) and drawn pixelated, captioned below: Gradio's own label and
            # toolbar would sit on top of the emoji.
            with gr.Row():
                shown_in = _panel("Input", "translate-input")
                with gr.Column(min_width=SHOW + 16, visible=method0 == LETIT, elem_id="translate-recon") as recon_panel:
                    recon = _image_panel("Reconstruction (LETIT autoencoder)")
                out = _panel("Output", "translate-output")
                truth = _panel("Ground truth (held-out pair)", "translate-truth")
            strip_img = gr.Image(label="Trajectory (frames of the same run; LETIT's decoded from the latent chain)",
                                 format="png", type="pil", elem_classes=["pixelated"], elem_id="translate-strip")
            with gr.Row():
                chart = gr.Plot(label="Shift per channel", elem_id="translate-shift")
                shift_map = gr.Image(label="Shift per location (bright = moved more)", format="png", type="pil",
                                     height=SHOW + 130, elem_classes=["pixelated"])
            energy = gr.Plot(label="Energy per step", elem_id="translate-energy")
    # Layout-only events stay out of the API. Direction and method react to the user's clicks (``input``):
    # each handler sets every control that depends on it, so neither re-triggers the other.
    example.change(lambda _: None, example, upload, api_visibility="private")
    gallery.select(_pick, None, example, api_visibility="private")
    for key, slider in (("steps", steps), ("step_size", step_size), ("noise", noise), ("project_every", project)):
        slider.input(_touch(key), [touched, slider], touched, api_visibility="private", show_progress="hidden")
    controls = [steps, step_size, noise, project, settings_note, recon_panel, *warning.outputs]
    direction.input(user_errors(_direction_changed), [direction, method, touched, steps, step_size, noise, project],
                    [method, *controls, gallery], api_visibility="private")
    method.input(user_errors(_method_changed), [direction, method, touched, steps, step_size, noise, project],
                 [direction, *controls, gallery], api_visibility="private")
    # The projection slider comes last, after the seed, so API calls that stop at the seed keep working
    # (gradio_client fills it with the slider's default).
    go_btn.click(translate, [example, upload, direction, method, steps, step_size, noise, seed, project],
                 [shown_in, recon, out, truth, strip_img, chart, shift_map, energy, note], api_name="translate")
