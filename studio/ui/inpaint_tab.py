"""Tab "Inpaint": paint over an image (or pick a preset mask) and get several completions.

Every local checkpoint whose kind offers an "inpaint" task (``studio.protocol``: its ``task_specs``, read from
config.json) is listed as "Title (name)"; the class and guidance controls apply to models whose task takes
``classes`` and ``guidance``. A new kind needs no edit here.
"""
from __future__ import annotations

import gradio as gr
import numpy as np
import torch
from PIL import Image

from ..errors import SamplingError
from ..paths import assets_dir
from ..viz import to_uint8
from . import gpu, limits
from .common import cached_model, user_errors
from .inputs import local_offers, offer
from .masks import image_for_model, mask_from_editor, mask_from_image, preset_mask, undo_enlargement

EXAMPLES_DIR = assets_dir() / "examples"
PRESETS = ["paint", "centre square", "left half", "random strokes"]
CANVAS = 256  # examples are shown enlarged so small images are easy to paint
UNCONDITIONAL = "(unconditional)"
# ZeroGPU duration: up to 8 completions with CDRL (K <= 50) or CF-EBM (up to 200 steps), whichever costs more
GPU_COST = limits.MAX_COMPLETIONS * max(limits.MAX_CDRL_STEPS * gpu.CDRL_SAMPLE_STEP, limits.MAX_STEPS * gpu.CFEBM_SAMPLE_STEP)


def available_models() -> dict[str, str]:
    """Label ("CDRL (cdrl-fmnist)") -> checkpoint name of every local checkpoint that offers inpainting."""
    return {f"{o.title} ({name})": name for name, o in local_offers().items() if _inpaint_task(o.tasks) is not None}


def _inpaint_task(tasks):
    return next((t for t in tasks if t.task == "inpaint" and t.inputs <= {"image", "mask"}), None)


def max_steps(levels: int) -> int:
    """The most steps per chain a request may ask for: ``limits.MAX_STEPS`` for one chain per sample, fewer per level
    for a sampler that runs one chain per noise level (CDRL's 6: ``limits.MAX_CDRL_STEPS``)."""
    return limits.MAX_STEPS if levels <= 1 else limits.MAX_CDRL_STEPS


def available() -> bool:
    return bool(available_models())


def example_names() -> list[str]:
    return sorted(p.stem for p in EXAMPLES_DIR.glob("*.png"))


def load_example(name: str) -> dict:
    """An example enlarged (nearest) onto the editor canvas, with no strokes yet."""
    if name not in example_names():
        raise SamplingError(f"Unknown example '{name}'.")
    img = Image.open(EXAMPLES_DIR / f"{name}.png").convert("RGB").resize((CANVAS, CANVAS), Image.NEAREST)
    arr = np.asarray(img)
    return {"background": arr, "layers": [], "composite": arr}


def complete(model_label: str, image, painted: np.ndarray, class_name: str, guidance: float, n: int, steps: int, seed: int,
             traces: dict | None = None):
    """Run the chosen model's inpainting; returns (pairs of masked input and completion, note)."""
    models = available_models()
    if model_label not in models:
        raise SamplingError(f"Model '{model_label}' is not available. Choose one of: {', '.join(models) or 'none'}.")
    return complete_with(models[model_label], image, painted, class_name, guidance, n, steps, seed, traces)


def selected_completion(evt: gr.SelectData) -> int | None:
    """Gallery index -> completion index (the first tile is the masked input)."""
    return None if evt.index in (None, 0) else int(evt.index) - 1


def complete_with(name: str, image, painted: np.ndarray, class_name: str, guidance: float, n: int, steps: int, seed: int,
                  traces: dict | None = None):
    """``complete`` for a checkpoint name (other tabs call this with their own model).

    Every step is recorded; pass a dict as ``traces`` to receive the Trace, so the chain of any
    completion can be shown later without running it again."""
    spec = _inpaint_task(offer(name).tasks)
    if spec is None:
        raise SamplingError(f"Model '{name}' does not inpaint.")
    model = cached_model(name)
    cfg = model.config
    size = cfg.image_size if hasattr(cfg, "image_size") else cfg.resolution
    x, notes = image_for_model(image, size, cfg.channels)
    painted = np.asarray(painted)
    if painted.shape != (size, size) or painted.dtype != bool:
        raise SamplingError(f"Mask must be a {size}x{size} boolean array; got {painted.dtype} of shape {painted.shape}.")
    seeds, seed, n = limits.seed_range(seed, n, limits.MAX_COMPLETIONS, what="Number of completions", seed_name="First seed")
    steps = limits.integer("Langevin steps", steps, 1, max_steps(spec.levels))
    known = torch.from_numpy(~painted).float()
    params = {"steps": steps} if "steps" in spec.params else {}
    if "classes" in spec.params:  # a class-conditional model: the class, and guidance towards it
        cls = None if class_name in (None, "", UNCONDITIONAL) else class_name
        params["classes"] = cls
        if "guidance" in spec.params:
            params["guidance"] = limits.number("Guidance w", guidance, 0, limits.MAX_GUIDANCE) if cls else 0.0
    out, trace = model.run(spec.name, image=x, mask=known, seeds=seeds, progress=True, record_every=1, **params)
    if traces is not None:
        traces.update(trace=trace, name=name, count=len(out), seeds=[int(seed) + i for i in range(len(out))])
    masked = x.clone()
    masked[:, torch.from_numpy(painted)] = 0.0  # grey marks the hole
    shown = [Image.fromarray(to_uint8(masked[None])[0]).resize((128, 128), Image.NEAREST)]
    shown += [Image.fromarray(a).resize((128, 128), Image.NEAREST) for a in to_uint8(out)]
    captions = ["masked input"] + [f"seed {int(seed) + i}" for i in range(len(out))]
    notes.append(f"Seeds used: {seeds}. Known pixels are kept exactly; {int(painted.sum())} of {size * size} pixels were replaced.")
    return list(zip(shown, captions)), "\n".join(notes)


@gpu.on_gpu(GPU_COST)
@user_errors
def inpaint_editor(model_label, editor_value, preset, class_name, guidance, n, steps, seed, progress=gr.Progress(track_tqdm=True)):
    if not isinstance(editor_value, dict) or editor_value.get("background") is None:
        raise SamplingError("Pick an example or upload an image first.")
    size = _model_size(model_label)
    painted, notes = editor_mask(editor_value, preset, size, seed)
    traces: dict = {}
    # A held-out example sits on the canvas as an exact enlargement: use its original pixels (not resampled,
    # and no "resized" note for an image that never was).
    image = undo_enlargement(editor_value["background"], size, CANVAS)
    gallery, more = complete(model_label, image, painted, class_name, guidance, n, steps, seed, traces)
    return gallery, "\n".join([*notes, more]), traces, None


def editor_mask(editor_value, preset: str, size: int, seed) -> tuple[np.ndarray, list[str]]:
    """The region to replace (True) from the painted strokes or a preset, with notes."""
    if preset == "paint":
        return mask_from_editor(editor_value, size)
    preset = limits.choice("mask preset", preset, PRESETS)
    return preset_mask(preset, size, limits.seed(seed or 0, "First seed")), [f"Preset mask: {preset}."]


@gpu.on_gpu(GPU_COST)
@user_errors
def inpaint_image(model_label, image, mask_image, class_name, guidance, n, steps, seed):
    """Script API: a plain image plus a mask image (white = replace)."""
    painted, notes = mask_from_image(mask_image, _model_size(model_label))
    gallery, more = complete(model_label, image, painted, class_name, guidance, n, steps, seed)
    return gallery, "\n".join([*notes, more])


def _model_size(label: str) -> int:
    models = available_models()
    if label not in models:
        raise SamplingError(f"Model '{label}' is not available. Choose one of: {', '.join(models) or 'none'}.")
    cfg = cached_model(models[label]).config
    return cfg.image_size if hasattr(cfg, "image_size") else cfg.resolution


def _class_names() -> list[str]:
    """Class names of the first listed model whose inpainting takes a class (config.json only: no weights load)."""
    for name in available_models().values():
        o = offer(name)
        if "classes" in _inpaint_task(o.tasks).params:
            return list(o.raw.get("class_names") or [])
    return []


def build() -> dict:
    models = list(available_models())
    examples = example_names()
    gr.Markdown("Paint over the part of the image to replace (or choose a preset mask), then get several completions. "
                "Known pixels are kept exactly; each seed gives a different completion.")
    with gr.Row():
        with gr.Column(scale=1):
            model = gr.Dropdown(models, value=models[0], label="Model", elem_id="inpaint-model")
            example = gr.Dropdown(examples, value=examples[0] if examples else None, label="Held-out example")
            editor = gr.ImageEditor(value=load_example(examples[0]) if examples else None, type="numpy", layers=False,
                                    brush=gr.Brush(colors=["#ff3030"], default_size=24), label="Paint the region to replace",
                                    height=320, canvas_size=(CANVAS, CANVAS))
            preset = gr.Radio(PRESETS, value="paint", label="Mask", elem_id="inpaint-mask")
        with gr.Column(scale=1):
            names = _class_names()
            cls = gr.Dropdown([UNCONDITIONAL, *names], value=UNCONDITIONAL, label="Class (class-conditional models)")
            guidance = gr.Slider(0, 5, value=1.0, step=0.1, label="Guidance w (class-conditional models, with a class)")
            n = gr.Slider(1, 8, value=4, step=1, label="Completions")
            steps = gr.Slider(1, 50, value=10, step=1, label="Langevin steps")
            seed = gr.Number(value=0, precision=0, label="First seed")
            run = gr.Button("Inpaint", variant="primary")
            notes = gr.Textbox(label="Notes", lines=3, interactive=False, elem_id="inpaint-notes")
    gallery = gr.Gallery(label="Masked input and completions (select one, then show its chain)", columns=9, height=260, format="png")
    show_chain = gr.Button("Show the chain of the selected completion in Trajectory")
    traces, selected = gr.State(), gr.State()
    example.change(user_errors(load_example), example, editor)
    run.click(inpaint_editor, [model, editor, preset, cls, guidance, n, steps, seed], [gallery, notes, traces, selected],
              api_name="inpaint")
    gallery.select(selected_completion, None, selected, api_visibility="private")
    # A hidden endpoint for scripts: plain image + mask image.
    img_in = gr.Image(visible=False, type="numpy")
    mask_in = gr.Image(visible=False, type="numpy")
    gr.Button(visible=False).click(inpaint_image, [model, img_in, mask_in, cls, guidance, n, steps, seed], [gallery, notes],
                                   api_name="inpaint_image")
    return {"show_chain": show_chain, "inputs": [traces, selected]}
