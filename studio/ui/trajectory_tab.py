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
from ..nerf_lebm import TRAJECTORY_FRAMES, TRAJECTORY_POSE, TRAJECTORY_RES
from ..paths import assets_dir
from ..viz import energy_figure, to_uint8, trajectory_gif
from . import gpu, limits
from .common import cached_model, user_errors
from .inputs import LETIT_TASKS, chain_tasks, checkpoint_config, held_out, local_kinds, task_choices, translation_domains
from .masks import preset_mask

MAX_FRAMES = 240
# NeRF-LEBM frames are renders of the chain's latents (16 at 32 px: ~0.5 s on a 2-core CPU): the model's
# defaults, named here for the note.
NERF_FRAMES, NERF_RES, NERF_POSE = TRAJECTORY_FRAMES, TRAJECTORY_RES, TRAJECTORY_POSE
EXAMPLE = assets_dir() / "examples" / "fmnist-test-0002-trouser.png"
TRANSLATE_EXAMPLE = 0  # held-out emoji #0 of the source domain (shipped in assets/examples/emoji)


def trajectory_models() -> list[str]:
    """Local checkpoints whose kind (from their config.json) has a trajectory-capable task (``inputs.CHAIN_TASKS``)."""
    return [name for name, (kind, config) in local_kinds().items() if chain_tasks(kind, config)]


def available() -> bool:
    return bool(trajectory_models())


def _example(model) -> torch.Tensor:
    cfg = model.config
    size = getattr(cfg, "image_size", None) or cfg.resolution
    img = Image.open(EXAMPLE).convert("L").resize((size, size), Image.NEAREST)
    return torch.from_numpy(np.asarray(img, dtype=np.float32))[None] / 127.5 - 1


def _decoded(result) -> Trace:
    """A LETIT chain's Trace with its latent frames replaced by the decoded images translate() made of them."""
    t = result.trace
    return Trace(energies=list(t.energies), grad_norms=list(t.grad_norms), frames=list(result.frames),
                 frame_steps=list(result.frame_steps), frame_labels=list(t.frame_labels), grad_sum=t.grad_sum,
                 segments=list(t.segments))


def _translate(name: str, kind: str, config: dict, model, task: str, seeds: str) -> tuple[Trace, str]:
    source, target = translation_domains(kind, config, task)
    image, label = held_out(config, TRANSLATE_EXAMPLE, source)
    if kind == "letit":
        result = model.translate(image, LETIT_TASKS[task], seeds=seeds, record_every=1)
        return _decoded(result), (f"Translating {label} to {target} style: the latent chain, each frame decoded, "
                                  f"seed {seeds}.")
    _, trace = model.translate(image, seeds=seeds, record_every=1)
    return trace, f"Translating {label} to {target} style, seed {seeds}."


def _generate(model, seeds: str) -> tuple[Trace, str]:
    """The common sampler contract (``generate(seeds=..., record_every=...) -> (images, Trace)``), unconditional."""
    _, trace = model.generate(seeds=seeds, record_every=1)
    return trace, f"Unconditional sample, seed {seeds}."


def _coopflow(model, seeds: str) -> tuple[Trace, str]:
    _, trace = model.generate(seeds=seeds, record_every=1)
    return trace, (f"CoopFlow sample, seed {seeds}: frame 0 is the normalizing flow's proposal, the rest its "
                   f"{trace.num_steps} Langevin refinement steps under the EBM.")


def _egc(model, seeds: str) -> tuple[Trace, str]:
    _, trace = model.generate(seeds=seeds, record_every=1)
    return trace, (f"Unconditional EGC sample, seed {seeds}: {trace.num_steps} DDIM steps from Gaussian noise along "
                   "eps = -grad logsumexp f; the energy is the free energy -logsumexp f(x_t, t) at each step's noise "
                   "level (so it is not one fixed energy along the chain).")


def _nerf_prior(model, seeds: str) -> tuple[Trace, str]:
    _, _, trace = model.prior_trajectory(seeds, record_every=1, max_frames=NERF_FRAMES, resolution=NERF_RES,
                                         azimuth=NERF_POSE[0], elevation=NERF_POSE[1])
    states = trace.num_steps + 1
    shown = (f"all {states} states are rendered" if len(trace.frames) == states else
             f"{len(trace.frames)} of its {states} states, evenly spaced, are rendered (each frame is a render)")
    return trace, (f"EBM prior chain of the shape and appearance latents, seed {seeds}: {trace.num_steps} Langevin steps "
                   f"on E_s(z_s) + E_a(z_a) + |z|^2/2 (the energy charted); {shown}, each at {NERF_RES} px from azimuth "
                   f"{NERF_POSE[0]:g}, elevation {NERF_POSE[1]:g} degrees.")


# kind -> how its "generate" chain is recorded; other kinds follow the common contract (``_generate``).
GENERATORS = {"coopflow": _coopflow, "egc": _egc, "nerf_lebm": _nerf_prior}


def record(name: str, task: str, seed: int) -> tuple[Trace, str]:
    """Run one chain with a frame at every step and return its Trace (and a note)."""
    names = trajectory_models()
    if name not in names:
        raise SamplingError(f"Model '{name}' has no trajectory view. Choose one of: {', '.join(names) or 'none'}.")
    kind, config = checkpoint_config(name)
    tasks = chain_tasks(kind, config)
    if task not in tasks:
        raise SamplingError(f"{name} supports {', '.join(tasks)}, not '{task}'.")
    seeds = str(limits.seed(seed, error=SamplingError))
    model = cached_model(name)
    if task.startswith("translate"):
        return _translate(name, kind, config, model, task, seeds)
    if task == "generate":
        return GENERATORS.get(kind, _generate)(model, seeds)
    image = _example(model)
    known = torch.from_numpy(~preset_mask("centre square", image.shape[-1])).float()
    _, trace = model.inpaint(image, known, seeds=seeds, record_every=1)
    return trace, f"Inpainting the centre square of a held-out trouser, seed {seeds}."


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
    kind, config = checkpoint_config(name)
    tasks = chain_tasks(kind, config)
    return (gr.update(value=name), gr.update(choices=task_choices(kind, config, tasks), value=task if task in tasks else tasks[0]),
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
    """The chosen model's tasks (translation models translate; others generate and inpaint)."""
    names = trajectory_models()
    if name not in names:
        raise SamplingError(f"Model '{name}' has no trajectory view. Choose one of: {', '.join(names) or 'none'}.")
    kind, config = checkpoint_config(name)
    tasks = chain_tasks(kind, config)
    return gr.update(choices=task_choices(kind, config, tasks), value=task if task in tasks else tasks[0])


def build() -> dict:
    names = trajectory_models()
    gr.Markdown("Every sample is the end of a chain that descends an energy. Pick a model and a task, then scrub "
                "through the recorded frames; the chart marks the step you are looking at.")
    state = gr.State()
    kind, config = checkpoint_config(names[0])
    tasks = chain_tasks(kind, config)
    with gr.Row():
        with gr.Column(scale=1):
            model = gr.Dropdown(names, value=names[0], label="Model", elem_id="trajectory-model")
            # Not a closed choice list: API calls may ask for any model's task; record() checks it.
            task = gr.Dropdown(task_choices(kind, config, tasks), value=tasks[0], label="Task", allow_custom_value=True,
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
