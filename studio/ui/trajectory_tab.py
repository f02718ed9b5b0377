"""Tab "Trajectory": watch a chain descend its energy, frame by frame (read from the sampler's Trace)."""
from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

import gradio as gr
import numpy as np
import torch
from PIL import Image

from ..errors import SamplingError
from ..langevin import Trace
from ..paths import assets_dir
from ..protocol import TaskSpec
from ..viz import energy_figure, to_uint8, trajectory_gif
from . import gpu, limits
from .common import cached_model, user_errors
from .inputs import chain_tasks, held_out, local_offers, offer, task_choices
from .masks import preset_mask

MAX_FRAMES = 240
EXAMPLE = assets_dir() / "examples" / "fmnist-test-0002-trouser.png"
TRANSLATE_EXAMPLE = 0  # held-out emoji #0 of the source domain (shipped in assets/examples/emoji)


def trajectory_models() -> list[str]:
    """Local checkpoints with a chain task the tab can run (``inputs.chain_tasks``, from each kind's ``task_specs``)."""
    return [name for name, offered in local_offers().items() if chain_tasks(offered)]


def available() -> bool:
    return bool(trajectory_models())


def _chain_tasks(name: str) -> tuple[object, list[TaskSpec]]:
    """(the checkpoint's Offer, its chain tasks); a model without any is refused by name."""
    names = trajectory_models()
    if name not in names:
        raise SamplingError(f"Model '{name}' has no trajectory view. Choose one of: {', '.join(names) or 'none'}.")
    offered = offer(name)
    return offered, chain_tasks(offered)


def _example(model) -> torch.Tensor:
    cfg = model.config
    size = getattr(cfg, "image_size", None) or cfg.resolution
    img = Image.open(EXAMPLE).convert("L").resize((size, size), Image.NEAREST)
    return torch.from_numpy(np.asarray(img, dtype=np.float32))[None] / 127.5 - 1


def _sentence(head: str, detail: str) -> str:
    detail = detail.strip().rstrip(".")
    return f"{head}: {detail}." if detail else f"{head}."


def record(name: str, task: str, seed: int) -> tuple[Trace, str]:
    """Run one chain with a frame at every step (``model.run``) and return its Trace (and a note)."""
    offered, tasks = _chain_tasks(name)
    spec = next((t for t in tasks if t.name == task), None)
    if spec is None:
        raise SamplingError(f"{name} supports {', '.join(t.name for t in tasks)}, not '{task}'.")
    seeds = str(limits.seed(seed, error=SamplingError))
    model = cached_model(name)
    if spec.task == "translate":
        source, target = spec.domains
        image, label = held_out(offered.raw, TRANSLATE_EXAMPLE, source)
        out = model.run(spec.name, image=image, seeds=seeds, record_every=1)
        return out.trace, _sentence(f"Translating {label} to {target} style, seed {seeds}", spec.describe)
    if spec.task == "generate":
        out = model.run(spec.name, seeds=seeds, record_every=1)
        return out.trace, _sentence(f"Unconditional sample, seed {seeds}", " ".join(out.notes) or spec.describe)
    image = _example(model)
    known = torch.from_numpy(~preset_mask("centre square", image.shape[-1])).float()
    out = model.run(spec.name, image=image, mask=known, seeds=seeds, record_every=1)
    return out.trace, f"Inpainting the centre square of a held-out trouser, seed {seeds}."


def _frames(trace: Trace) -> tuple[list[np.ndarray], list[str], list[int], str]:
    idx = np.arange(len(trace.frames))
    note = ""
    if len(idx) > MAX_FRAMES:
        idx = np.unique(np.linspace(0, len(idx) - 1, MAX_FRAMES).round().astype(int))
        note = f" {len(trace.frames)} frames were subsampled to {len(idx)} for display."
    frames = [to_uint8(trace.frames[i][:1])[0] for i in idx]
    return frames, [trace.frame_labels[i] for i in idx], [trace.frame_steps[i] for i in idx], note


# One chain of at most MAX_FRAMES recorded steps (bounded by CDRL's, the costliest step), then its frames drawn
@gpu.on_gpu(MAX_FRAMES * gpu.CDRL_SAMPLE_STEP + gpu.DRAW_TRAJECTORY)
@user_errors
def run(name: str, task: str, seed: float, progress=gr.Progress(track_tqdm=True)):
    return present(*record(name, task, seed))


@user_errors
def open_chain(traces: dict | None, selected: int | None):
    """The Inpaint tab's "show the chain": the recorded Trace of the selected completion (no re-run).

    The tab's controls are set to what was shown (model, task "inpaint", the completion's seed), so they
    never describe another chain; "Record chain" then re-runs that model and seed on the tab's own input."""
    if not traces:
        raise SamplingError("Run an inpainting first.")
    index = 0 if selected is None else int(selected)
    if not 0 <= index < traces["count"]:
        raise SamplingError("Select one of the completions (not the masked input) first.")
    trace = traces["trace"].select(index)
    name, seed = traces["name"], int(traces["seeds"][index])
    note = (f"{name}: inpainting chain of completion {index + 1} (seed {seed}), recorded by the Inpaint tab on your "
            "image and mask. 'Record chain' re-runs this model and seed on the held-out trouser with a centre-square mask.")
    return (*present(trace, note), *_controls_for(name, "inpaint", seed), gr.Tabs(selected="Trajectory"))


def _controls_for(name: str, task: str, seed: int) -> tuple:
    """Updates that set the model, task and seed controls to a chain shown from elsewhere."""
    if name not in trajectory_models():
        return gr.update(), gr.update(), gr.update()
    _, tasks = _chain_tasks(name)
    names = [t.name for t in tasks]
    return (gr.update(value=name), gr.update(choices=task_choices(tasks), value=task if task in names else names[0]),
            gr.update(value=seed))


def present(trace: Trace, note: str) -> tuple:
    """Everything the tab shows for a recorded Trace: state, GIF, slider, frame, chart, caption, zip, note."""
    frames, labels, steps, more = _frames(trace)
    gif = trajectory_gif(trace, tempfile.NamedTemporaryFile(suffix=".gif", delete=False).name, scale=6, max_frames=MAX_FRAMES)
    zpath = Path(tempfile.mkdtemp()) / "frames.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for i, (f, lab) in enumerate(zip(frames, labels)):
            buf = io.BytesIO()
            Image.fromarray(f).save(buf, format="png")
            zf.writestr(f"{i:04d}-{lab.replace(' ', '_')}.png", buf.getvalue())
    state = {"frames": frames, "labels": labels, "steps": steps, "trace": trace}
    slider = gr.Slider(0, len(frames) - 1, value=len(frames) - 1, step=1, label="Frame")
    first = show_frame(state, len(frames) - 1)
    return (state, gif, slider, *first, str(zpath), note + more)


def show_frame(state: dict | None, index: float):
    """One frame (clamped to the recorded range) and the energy chart with a marker at its step."""
    if not state:
        raise gr.Error("Run a chain first.")
    i = int(min(max(int(index or 0), 0), len(state["frames"]) - 1))
    img = Image.fromarray(state["frames"][i]).resize((192, 192), Image.NEAREST)
    fig = energy_figure(state["trace"], "Energy and |grad E| per step", marker_step=state["steps"][i])
    label, step = state["labels"][i], state["steps"][i]
    return img, fig, f"frame {i}: {label}" + ("" if label == f"step {step}" else f" (step {step})")


def _tasks(name: str, task: str | None = None):
    """The chosen model's chain tasks (from its kind's ``task_specs``)."""
    _, tasks = _chain_tasks(name)
    names = [t.name for t in tasks]
    return gr.update(choices=task_choices(tasks), value=task if task in names else names[0])


def build() -> dict:
    names = trajectory_models()
    gr.Markdown("Every sample is the end of a chain that descends an energy. Pick a model and a task, then scrub "
                "through the recorded frames; the chart marks the step you are looking at.")
    state = gr.State()
    _, tasks = _chain_tasks(names[0])
    with gr.Row():
        with gr.Column(scale=1):
            model = gr.Dropdown(names, value=names[0], label="Model", elem_id="trajectory-model")
            # Not a closed choice list: API calls may ask for any model's task; record() checks it.
            task = gr.Dropdown(task_choices(tasks), value=tasks[0].name, label="Task", allow_custom_value=True,
                               elem_id="trajectory-task")
            seed = gr.Number(value=0, precision=0, label="Seed", elem_id="trajectory-seed")
            go = gr.Button("Record chain", variant="primary")
            note = gr.Textbox(label="Notes", interactive=False, elem_id="trajectory-notes")
            zipped = gr.File(label="Download frames (PNG zip)")
        with gr.Column(scale=2):
            with gr.Row():
                gif = gr.Image(label="Chain animation", format="gif", type="filepath")
                frame = gr.Image(label="Selected frame", format="png", type="pil")
            scrub = gr.Slider(0, 1, value=0, step=1, label="Frame")
            caption = gr.Textbox(label="Frame", interactive=False)
            chart = gr.Plot(label="Energy per step")
    # The user's pick of a model (``input``): a model set from another tab (open_chain) comes with its task.
    model.input(user_errors(_tasks), [model, task], task, api_visibility="private")
    go.click(run, [model, task, seed], [state, gif, scrub, frame, chart, caption, zipped, note], api_name="trajectory")
    scrub.release(show_frame, [state, scrub], [frame, chart, caption], api_name="trajectory_frame")
    # Other tabs send a recorded chain here (see studio.ui.build_app).
    return {"outputs": [state, gif, scrub, frame, chart, caption, zipped, note], "controls": [model, task, seed]}
