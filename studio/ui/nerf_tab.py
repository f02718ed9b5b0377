"""Tab "3D (NeRF-LEBM)": sample 3D objects from EBM or Gaussian priors, turn the camera, resample shape or
appearance alone, swap them in a grid, orbit, and infer an object from a single 64x64 view."""
from __future__ import annotations

import functools
import tempfile

import gradio as gr
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .. import checks
from ..data import shapes3d
from ..errors import SamplingError
from ..nerf_lebm import ELEVATION_RANGE, NeRFError
from ..render import orbit_angles
from ..viz import image_grid
from . import gpu, limits
from .bar_warnings import BarWarning, bar_warning
from .common import cached_model, user_errors
from .masks import MaskError, frame_count, to_array

LEBM_NAME, VAE_NAME = "nerf-lebm-shapes", "nerf-vae-shapes"
EBM, GAUSSIAN = "EBM prior", "Gaussian prior"
RGB, DEPTH, OPACITY = "RGB", "Depth", "Opacity"
VIEWS = [RGB, DEPTH, OPACITY]
RESOLUTIONS = [32, 64, 128]
PREVIEW_RES, DISPLAY = 32, 256  # drags render at 32 px; everything is shown enlarged to 256 px
MAX_FRAMES, MAX_GRID, MAX_REFINE = 48, 4, 100
MAX_SEED = limits.MAX_SEED
N_EXAMPLES = 12
_TEST_FIRST = 10_000_000  # shapes3d test object ids (never seen in training)


def model_names() -> list[str]:
    from ..registry import local_names

    local = set(local_names())
    return [n for n in (LEBM_NAME, VAE_NAME) if n in local]


def available() -> bool:
    from ..registry import local_names

    return LEBM_NAME in local_names()


def _model(name: str):
    names = model_names()
    if name not in names:
        raise SamplingError(f"Model '{name}' is not available. Choose one of: {', '.join(names) or 'none'}.")
    return cached_model(name)


def _prior(model, prior: str) -> str:
    if prior not in (EBM, GAUSSIAN):
        raise SamplingError(f"Prior must be '{EBM}' or '{GAUSSIAN}'; got {prior!r}.")
    if prior == EBM and model.config.prior != "ebm":
        raise SamplingError("This model was trained with a Gaussian prior (NeRF-VAE): choose 'Gaussian prior'.")
    return "ebm" if prior == EBM else "gaussian"


def _seed(value) -> int:
    return limits.seed(value, error=SamplingError)


def _number(what: str, value, lo: float, hi: float) -> float:
    """A finite float in [lo, hi]; None, text, booleans, NaN, infinity and ints beyond float range are refused."""
    return checks.number(what, value, lo, hi)


def _integer(what: str, value, lo: int, hi: int) -> int:
    """A whole number in [lo, hi] (4.5 frames is refused rather than silently truncated)."""
    return checks.integer(what, value, lo, hi)


def _resolution(value) -> int:
    try:
        res = checks.integer("Resolution", value, -2**63, 2**63)
    except SamplingError:
        raise SamplingError(f"Resolution must be one of {RESOLUTIONS}; got {value}.") from None
    if res not in RESOLUTIONS:
        raise NeRFError(f"Resolution {res} is not offered: choose one of {RESOLUTIONS} (the cap is {max(RESOLUTIONS)}).")
    return res


def _elevation(value) -> tuple[float, str]:
    try:
        if isinstance(value, bool):
            raise TypeError
        e = float(value)
    except (TypeError, ValueError, OverflowError):
        raise SamplingError(f"Elevation must be a number; got {value}.") from None
    from ..nerf_lebm import NeRFLEBM

    return NeRFLEBM.clamp_elevation(e)


def _latents(state) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(state, dict) or "z_s" not in state:
        raise SamplingError("No object yet: press 'Sample object' or 'Infer from image' first.")
    try:  # the state is the server's own, but direct callers can pass anything
        z_s, z_a = (torch.as_tensor(state[k], dtype=torch.float32) for k in ("z_s", "z_a"))
    except (KeyError, TypeError, ValueError, RuntimeError):
        raise SamplingError("The object state is malformed: sample or infer an object again.") from None
    if z_s.dim() != 2 or z_a.dim() != 2 or len(z_s) != len(z_a) or not (torch.isfinite(z_s).all() and torch.isfinite(z_a).all()):
        raise SamplingError("The object state is malformed: sample or infer an object again.")
    return z_s, z_a


def _to_pil(img: torch.Tensor, size: int = DISPLAY) -> Image.Image:
    """[3, H, W] in [0, 1] -> an enlarged PNG-ready image (nearest, so pixels stay honest)."""
    arr = (img.detach().cpu().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    return Image.fromarray(arr).resize((size, size), Image.NEAREST)


def view_image(out: dict, view: str, index: int = 0) -> torch.Tensor:
    """The chosen channel as an RGB image [3, H, W]: colour, depth (near = bright, background black) or opacity."""
    if view == RGB:
        return out["rgb"][index]
    op = out["opacity"][index]
    if view == OPACITY:
        return op.expand(3, -1, -1)
    if view == DEPTH:
        d = out["depth"][index] / op.clamp_min(1e-3)  # expected depth of what is there
        near = ((4.0 - d) / 2.0).clamp(0, 1) * (op > 0.05)  # the object box spans depths ~2..4
        return near.expand(3, -1, -1)
    raise SamplingError(f"View must be one of {VIEWS}; got {view!r}.")


def _render(name, state, azimuth, elevation, view, resolution) -> tuple[Image.Image, str]:
    model = _model(name)
    z_s, z_a = _latents(state)
    az = _number("Azimuth", azimuth, -180, 180)
    el, note = _elevation(elevation)
    out = model.render(z_s, z_a, az, el, resolution=resolution)
    return _to_pil(view_image(out, view)), note


@gpu.on_gpu(gpu.NERF_VIEW_128)
@user_errors
def render_view(name: str, state: dict, azimuth: float, elevation: float, view: str, resolution) -> tuple:
    """Render the current object from the sliders' camera."""
    image, note = _render(name, state, azimuth, elevation, view, _resolution(resolution))
    return image, note or f"Azimuth {float(azimuth):g}, elevation {float(elevation):g}, {int(resolution)} px."


@gpu.on_gpu(0)  # one low-resolution view
@user_errors
def preview_view(name: str, state: dict, azimuth: float, elevation: float, view: str) -> Image.Image:
    """A fast 32 px render while a slider moves (the full render follows on release)."""
    if not _has_object(state):
        return gr.update()
    return _render(name, state, azimuth, elevation, view, PREVIEW_RES)[0]


def _has_object(state) -> bool:
    return isinstance(state, dict) and "z_s" in state


@gpu.on_gpu(gpu.NERF_VIEW_128)
@user_errors
def follow_view(name: str, state: dict, azimuth: float, elevation: float, view: str, resolution) -> tuple:
    """Re-render after a passive change (camera released, view or resolution picked): before the first
    object there is nothing to re-render, so nothing happens, quietly. Explicit actions still say
    "No object yet"."""
    if not _has_object(state):
        return gr.update(), gr.update()
    return render_view(name, state, azimuth, elevation, view, resolution)


@gpu.on_gpu(gpu.NERF_VIEW_128)  # two short prior chains and a view
@user_errors
def prior_changed(name: str, prior: str, state: dict, azimuth, elevation, view, resolution) -> tuple:
    """The prior radio and the object must agree: a sampled object is drawn again from the chosen prior with
    the same shape and appearance seeds (an inferred one does not come from a prior and stays)."""
    return _redraw(name, prior, state, azimuth, elevation, view, resolution)


def _redraw(name: str, prior: str, state: dict, azimuth, elevation, view, resolution) -> tuple:
    if not _has_object(state) or state.get("source") != "sampled":
        return gr.update(), gr.update(), gr.update()
    model = _model(name)
    p = _prior(model, prior)
    if p == state.get("prior") and state.get("model") == name:
        return gr.update(), gr.update(), gr.update()
    shape_seed, app_seed = _seed(state["shape_seed"]), _seed(state["appearance_seed"])
    z_s, z_a = model.sample_shape([shape_seed], p), model.sample_appearance([app_seed], p)
    new = _state(name, z_s, z_a, shape_seed, app_seed, p, "sampled")
    image, note = _render(name, new, azimuth, elevation, view, _resolution(resolution))
    where = f"{name}'s {p} prior" if state.get("model") != name else f"the {p} prior"
    return new, image, " ".join(filter(None, [f"Drawn again from {where} (same seeds).", _describe(new), note]))


def _state(model_name: str, z_s, z_a, shape_seed, appearance_seed, prior: str, source: str) -> dict:
    return {"z_s": z_s.tolist(), "z_a": z_a.tolist(), "shape_seed": shape_seed, "appearance_seed": appearance_seed,
            "prior": prior, "source": source, "model": model_name}


def _describe(state: dict) -> str:
    if state["source"] == "inferred":
        return "Object inferred from an image" + (f"; shape seed {state['shape_seed']}" if state["shape_seed"] is not None else "") + \
            (f"; appearance seed {state['appearance_seed']}" if state["appearance_seed"] is not None else "") + "."
    return f"Shape seed {state['shape_seed']}, appearance seed {state['appearance_seed']} ({state['prior']} prior)."


@gpu.on_gpu(gpu.NERF_VIEW_128)  # two short prior chains and a view
@user_errors
def sample_object(name: str, prior: str, seed, azimuth, elevation, view, resolution) -> tuple:
    """A new object: shape and appearance latents from the chosen prior, seeded by ``seed``."""
    model = _model(name)
    p = _prior(model, prior)
    s = _seed(seed)
    z_s, z_a = model.sample_latents(1, prior=p, seeds=[s])
    state = _state(name, z_s, z_a, s, s, p, "sampled")
    image, note = _render(name, state, azimuth, elevation, view, _resolution(resolution))
    return state, image, " ".join(filter(None, [_describe(state), note]))


@gpu.on_gpu(gpu.NERF_VIEW_128)
@user_errors
def resample(name: str, prior: str, state: dict, part: str, azimuth, elevation, view, resolution) -> tuple:
    """Replace only the shape or only the appearance latent (the next seed of that part); the other stays."""
    model = _model(name)
    p = _prior(model, prior)
    z_s, z_a = _latents(state)
    if part not in ("shape", "appearance"):
        raise SamplingError(f"part must be 'shape' or 'appearance'; got {part!r}.")
    key = f"{part}_seed"
    new_seed = (state.get(key) + 1) if state.get(key) is not None else 0
    z_s, z_a = model.resample(z_s, z_a, part, seeds=[_seed(new_seed)], prior=p)
    new = {**_state(name, z_s, z_a, state.get("shape_seed"), state.get("appearance_seed"), p, state["source"]), key: new_seed}
    image, note = _render(name, new, azimuth, elevation, view, _resolution(resolution))
    kept = "appearance" if part == "shape" else "shape"
    return new, image, " ".join(filter(None, [f"New {part} (seed {new_seed}); the {kept} latent is unchanged.", _describe(new), note]))


def resample_shape(name, prior, state, azimuth, elevation, view, resolution) -> tuple:
    """"Resample shape": a new shape latent, the same appearance latent."""
    return resample(name, prior, state, "shape", azimuth, elevation, view, resolution)


def resample_appearance(name, prior, state, azimuth, elevation, view, resolution) -> tuple:
    """"Resample appearance": new colours on the same shape."""
    return resample(name, prior, state, "appearance", azimuth, elevation, view, resolution)


@gpu.on_gpu(MAX_FRAMES * gpu.NERF_VIEW_64)  # orbits render at 64 px at most
@user_errors
def orbit(name: str, state: dict, elevation, frames, view, resolution) -> tuple:
    """A turntable GIF of the current object (``frames`` azimuths over 360 degrees)."""
    model = _model(name)
    z_s, z_a = _latents(state)
    n = _integer("Frames", frames, 4, MAX_FRAMES)
    el, note = _elevation(elevation)
    res = min(_resolution(resolution), 64)  # orbits render many frames: 64 px at most keeps them quick
    views = [view_image(model.render(z_s, z_a, az, el, resolution=res), view) for az in orbit_angles(n)]
    images = [_to_pil(v) for v in torch.stack(views).cpu()]  # one copy to the host for the whole orbit
    path = tempfile.NamedTemporaryFile(suffix=".gif", delete=False).name
    images[0].save(path, save_all=True, append_images=images[1:], duration=80, loop=0)
    return path, " ".join(filter(None, [f"{n} frames at elevation {el:g}, {res} px.", note]))


@gpu.on_gpu(MAX_GRID**2 * gpu.NERF_VIEW_64)
@user_errors
def swap_grid(name: str, prior: str, seed, count, azimuth, elevation) -> tuple:
    """Shape x appearance grid: row i uses shape seed seed+i, column j appearance seed seed+j."""
    model = _model(name)
    p = _prior(model, prior)
    s, n = _seed(seed), _integer("Grid size", count, 2, MAX_GRID)
    limits.seed_range(s, n, MAX_GRID, what="Grid size", error=SamplingError)  # the last row's seed, worded as everywhere
    seeds = list(range(s, s + n))
    shapes, apps = model.sample_shape(seeds, p), model.sample_appearance(seeds, p)
    el, note = _elevation(elevation)
    az = _number("Azimuth", azimuth, -180, 180)
    z_s = shapes.repeat_interleave(n, 0)  # row-major: shape i, appearance j
    z_a = apps.repeat(n, 1)
    out = model.render(z_s, z_a, az, el, resolution=64)
    grid = image_grid(out["rgb"] * 2 - 1, ncols=n, scale=2)
    return grid, " ".join(filter(None, [f"Rows: shape seeds {s}..{s + n - 1}; columns: appearance seeds {s}..{s + n - 1}. "
                                        "Each row keeps its geometry, each column its colours.", note]))


# -- inference from an image ---------------------------------------------------------------------


def example_names() -> list[str]:
    return [f"Test object {k} ({shapes3d.CATEGORIES[(_TEST_FIRST + k) % 6]})" for k in range(N_EXAMPLES)]


@functools.lru_cache(maxsize=N_EXAMPLES)
def example_view(name: str) -> tuple[np.ndarray, float, float]:
    """A held-out shapes3d view (test object, view 0) rendered on the fly: uint8 [64, 64, 3], azimuth, elevation."""
    names = example_names()
    if name not in names:
        raise SamplingError(f"Unknown example {name!r}.")
    oid = _TEST_FIRST + names.index(name)
    obj, _ = shapes3d.make_object(oid, 0)
    az, el = shapes3d.view_angles(oid, shapes3d.VIEWS, 0)
    a, e = float(az[0]), float(el[0])
    out = shapes3d.render_object(obj, shapes3d.camera_to_world(a, e), shapes3d.IMAGE_SIZE)
    arr = (out["rgb"] * 255).round().byte().permute(1, 2, 0).numpy()
    return arr, ((a + 180) % 360) - 180, e


@user_errors
def pick_example(name: str) -> tuple:
    """Show a held-out example and put its pose into the pose fields."""
    if not name:
        return None, gr.update(), gr.update()
    arr, az, el = example_view(name)
    return Image.fromarray(arr), round(az, 1), round(el, 1)


def load_upload(path) -> tuple[torch.Tensor, list[str]]:
    """Any image file -> ([1, 3, 64, 64] in [0, 1], notes): transparency composited onto white, centre-cropped square.

    Read by ``masks.to_array``, as every other upload: the pixel count is checked before decoding,
    16-bit images are scaled (not clipped), NaN images are refused and animated ones give their first frame."""
    try:
        arr = to_array(path)
    except MaskError as err:
        raise SamplingError(str(err)) from None
    notes = ["The animated image's first frame was used."] if frame_count(path) > 1 else []
    x = torch.from_numpy(arr.astype(np.float32) / 255).permute(2, 0, 1)
    if x.shape[0] in (2, 4):  # alpha onto the white background the model was trained with
        x = x[:-1] * x[-1:] + (1 - x[-1:])
    x = x.expand(3, -1, -1) if x.shape[0] == 1 else x
    h, w = x.shape[1:]
    side = min(h, w)
    if h != w:
        notes.append(f"The {w}x{h} image was centre-cropped to {side}x{side}.")
    top, left = (h - side) // 2, (w - side) // 2
    x = x[None, :, top : top + side, left : left + side]
    if side != 64:
        notes.append(f"It was resized from {side}x{side} to 64x64.")
    return F.interpolate(x, size=(64, 64), mode="area" if side > 64 else "bilinear", align_corners=None if side > 64 else False).clamp(0, 1), notes


@gpu.on_gpu(MAX_REFINE * gpu.NERF_REFINE_STEP + gpu.NERF_VIEW_128)
@user_errors
def infer_object(name: str, example: str, upload, pose_azimuth, pose_elevation, refine_steps, azimuth, elevation,
                 view, resolution) -> tuple:
    """Latents of the object in an uploaded (or example) view with its pose; then render it from the sliders' camera."""
    model = _model(name)
    notes = []
    if upload:
        (x, notes), source = load_upload(upload), "the uploaded image"
    elif example:
        arr, _, _ = example_view(example)
        x, source = torch.from_numpy(arr).permute(2, 0, 1)[None].float() / 255, example
    else:
        raise SamplingError("Upload a 64x64 view or pick a held-out example first.")
    az_in = _number("Pose azimuth", pose_azimuth, -180, 180)
    el_in, pose_note = _elevation(pose_elevation)
    steps = _integer("Refinement steps", refine_steps, 0, MAX_REFINE)
    z_s, z_a = model.infer(x, az_in, el_in, refine_steps=steps)
    state = _state(name, z_s, z_a, None, None, model.config.prior, "inferred")
    image, note = _render(name, state, azimuth, elevation, view, _resolution(resolution))
    how = "amortised encoder" + (f" + {steps} refinement steps" if steps else "")
    return state, _to_pil(x[0]), image, " ".join(filter(None, [f"Inferred from {source} ({how}).", *notes, pose_note, note]))


@gpu.on_gpu(gpu.NERF_VIEW_128)
@user_errors
def model_changed(name: str, state: dict, azimuth, elevation, view, resolution) -> tuple:
    """Another model: the prior radio shows its prior, and a sampled object is drawn again by it (same seeds)."""
    prior = EBM if _model(name).config.prior == "ebm" else GAUSSIAN
    if not _has_object(state) or state.get("source") != "sampled" or state.get("model") == name:
        return gr.update(value=prior), gr.update(), gr.update(), gr.update()
    return (gr.update(value=prior), *_redraw(name, prior, state, azimuth, elevation, view, resolution))


def build() -> dict:
    names = model_names()
    model = cached_model(names[0])
    examples = example_names()
    lo, hi = ELEVATION_RANGE
    gr.Markdown(
        "**NeRF-LEBM** (Zhu, 2024): a radiance field conditioned on a *shape* latent (density) and an *appearance* "
        "latent (colour only), each with its own energy-based prior learned by maximum likelihood. Sample an object, "
        "turn the camera, resample only its shape or only its colours, or infer an object from one view. "
        + (f"`{VAE_NAME}` is the Gaussian-prior baseline." if VAE_NAME in names else ""))
    state = gr.State()
    with gr.Row():
        with gr.Column(scale=1):
            name = gr.Dropdown(names, value=names[0], label="Model")
            prior = gr.Radio([EBM, GAUSSIAN], value=EBM if model.config.prior == "ebm" else GAUSSIAN, label="Prior",
                             elem_id="nerf-prior")
            seed = gr.Number(value=0, precision=0, label="Seed")
            sample_btn = gr.Button("Sample object", variant="primary")
            warning = bar_warning(names[0], "generate")
            with gr.Row():
                shape_btn = gr.Button("Resample shape")
                app_btn = gr.Button("Resample appearance")
            azimuth = gr.Slider(-180, 180, value=30, step=1, label="Azimuth (degrees)", elem_id="nerf-azimuth")
            elevation = gr.Slider(lo, hi, value=20, step=1, label=f"Elevation (degrees, training range {lo:g}..{hi:g})",
                                  elem_id="nerf-elevation")
            view = gr.Radio(VIEWS, value=RGB, label="Show", elem_id="nerf-show")
            resolution = gr.Radio(RESOLUTIONS, value=64, label="Resolution (px)", elem_id="nerf-resolution")
        with gr.Column(scale=1):
            image = gr.Image(label="View", format="png", type="pil", elem_id="nerf-view", height=DISPLAY + 40)
            note = gr.Textbox(label="Note", interactive=False, elem_id="nerf-note")
            with gr.Row():
                frames = gr.Slider(4, MAX_FRAMES, value=24, step=1, label="Orbit frames")
                orbit_btn = gr.Button("Orbit")
            gif = gr.Image(label="Orbit", format="gif", type="filepath", elem_id="nerf-orbit")
    with gr.Accordion("Shape x appearance swap grid", open=False):
        with gr.Row():
            grid_n = gr.Slider(2, MAX_GRID, value=3, step=1, label="Shapes and appearances")
            grid_btn = gr.Button("Make grid")
        grid = gr.Image(label="Rows: shapes; columns: appearances", format="png", type="pil")
        grid_note = gr.Markdown()
    with gr.Accordion("Infer from image", open=False):
        with gr.Row():
            with gr.Column():
                example = gr.Dropdown(examples, value=None, label="Held-out example (pose filled in)", elem_id="nerf-example")
                upload = gr.Image(type="filepath", image_mode=None, label="Or upload a view (any size; resized to 64x64)")
            with gr.Column():
                pose_az = gr.Number(value=0, label="Pose azimuth of the view")
                pose_el = gr.Number(value=20, label="Pose elevation of the view")
                refine = gr.Slider(0, MAX_REFINE, value=model.config.refine_steps, step=1, label="Refinement steps (0 = encoder only)")
                infer_btn = gr.Button("Infer from image", variant="primary")
            shown = gr.Image(label="Input view", format="png", type="pil", elem_id="nerf-input-view")
    render_in = [name, state, azimuth, elevation, view, resolution]
    sample_btn.click(sample_object, [name, prior, seed, azimuth, elevation, view, resolution], [state, image, note],
                     api_name="nerf_sample")
    shape_btn.click(resample_shape, [name, prior, state, azimuth, elevation, view, resolution],
                    [state, image, note], api_name="nerf_resample_shape")
    app_btn.click(resample_appearance, [name, prior, state, azimuth, elevation, view, resolution],
                  [state, image, note], api_name="nerf_resample_appearance")
    for slider in (azimuth, elevation):
        slider.input(preview_view, [name, state, azimuth, elevation, view], image, trigger_mode="always_last",
                     show_progress="hidden", api_visibility="private")
        slider.release(follow_view, render_in, [image, note], trigger_mode="always_last", api_visibility="private")
    for control in (view, resolution):
        control.input(follow_view, render_in, [image, note], api_visibility="private")
    # The explicit render (API): with no object yet it says so.
    gr.Button(visible=False).click(render_view, render_in, [image, note], api_name="nerf_render")
    prior.input(prior_changed, [name, prior, state, azimuth, elevation, view, resolution], [state, image, note],
                api_visibility="private")
    orbit_btn.click(orbit, [name, state, elevation, frames, view, resolution], [gif, note], api_name="nerf_orbit")
    grid_btn.click(swap_grid, [name, prior, seed, grid_n, azimuth, elevation], [grid, grid_note], api_name="nerf_grid")
    example.change(pick_example, example, [shown, pose_az, pose_el], api_visibility="private")
    upload.change(lambda _: None, upload, example, api_visibility="private")
    infer_btn.click(infer_object, [name, example, upload, pose_az, pose_el, refine, azimuth, elevation, view, resolution],
                    [state, shown, image, note], api_name="nerf_infer")
    name.change(model_changed, [name, state, azimuth, elevation, view, resolution], [prior, state, image, note],
                api_visibility="private")
    name.change(lambda n: BarWarning.update(n, "generate"), name, warning.outputs, api_visibility="private")
    return {"state": state}

