"""Tab "CoopFlow": flow samples side by side with the same samples after T Langevin steps on the EBM, and a
straight line between two flow latents, shown as flow outputs and after the same refinement."""
from __future__ import annotations

import time

import gradio as gr

from ..coopflow import sampler_defaults_from
from ..viz import energy_figure, image_grid
from . import gpu, limits
from .bar_warnings import bar_warning
from .common import cached_model, model_skeleton, user_errors

COOPFLOW_NAME = "coopflow-fmnist"
MAX_SAMPLES, MAX_STEPS, MAX_FRAMES = 64, 200, 16
DELTA_RANGE, NOISE_RANGE = (0.005, 0.1), (0.0, 1.0)


def available() -> bool:
    from ..registry import local_names

    return COOPFLOW_NAME in local_names()


def steps_warning(trained: int, steps: int) -> str | None:
    """The warning for a T past the trained one (None within it)."""
    if steps <= trained:
        return None
    return (f"T = {steps} is past the T = {trained} the EBM was trained with. A short-run EBM is not a convergent sampler: "
            "past its trained T the samples usually degrade (oversaturated or collapsed onto a few shapes).")


def steps_note(trained: int, steps) -> dict:
    """The note under the T slider, updated as it moves (hidden within the trained T; a value the sampler would refuse
    gets its message when the button is pressed)."""
    try:
        warning = steps_warning(trained, limits.integer("Langevin steps T", steps, 0, MAX_STEPS))
    except limits.LimitError:
        warning = None
    return gr.update(value=f"**Warning:** {warning}" if warning else "", visible=bool(warning))


def _settings(steps, step_size, noise) -> tuple[int, float, float]:
    return (limits.integer("Langevin steps T", steps, 0, MAX_STEPS), limits.number("Step size delta", step_size, *DELTA_RANGE),
            limits.number("Langevin noise", noise, *NOISE_RANGE))


def _chain_line(steps: int, delta: float, noise: float, seconds: float) -> str:
    return (f"T = {steps} Langevin steps, delta = {delta:g} (update x += delta^2/2 grad f(x)"
            + (f" + {noise:g} delta noise" if noise else ", no noise") + f"); {seconds:.1f} s")


def _trained_line(model) -> str:
    c, d = model.config, model.sampler_defaults()
    return (f"Trained with T = {model.trained_steps}, delta = {c.train_step_size:g}. Sampler defaults: T = {d['steps']}, "
            f"delta = {d['step_size']:g}, noise = {d['noise']:g}.")


def _warn(model, steps: int, lines: list[str]) -> None:
    """gr.Warning toast and the summary's first line when T is past the trained T."""
    warning = steps_warning(model.trained_steps, steps)
    if warning:
        gr.Warning(warning)
        lines.insert(0, f"Warning: {warning}")


@gpu.on_gpu(MAX_SAMPLES * MAX_STEPS * gpu.COOPFLOW_SAMPLE_STEP)
@user_errors
def sample(steps: float, step_size: float, first_seed: float, n: float, noise: float, progress=gr.Progress(track_tqdm=True)):
    """Flow proposals and their Langevin refinement at the same seeds, the energy per step and a summary."""
    model = cached_model(COOPFLOW_NAME)
    steps, delta, noise = _settings(steps, step_size, noise)
    count = limits.integer("Number of samples", n, 1, MAX_SAMPLES)
    seeds, _, _ = limits.seed_range(first_seed, count, MAX_SAMPLES, seed_name="First seed")
    start = time.perf_counter()
    out = model.sample(seeds, steps=steps, step_size=delta, noise=noise, progress=True)
    seconds = time.perf_counter() - start
    change = (out.refined - out.flow).abs().mean()
    lines = [f"Seeds used: {seeds}", _chain_line(steps, delta, noise, seconds),
             f"Mean |refined - flow| per pixel: {float(change):.3f} (pixels in [-1, 1])", _trained_line(model)]
    if out.trace.num_steps:
        e = out.trace.energy_matrix()
        lines.insert(2, f"Mean energy: {float(e[0].mean()):.4g} (flow) -> {float(model.energy(out.refined).mean()):.4g} (refined)")
    _warn(model, steps, lines)
    figure = energy_figure(out.trace, "Energy of the flow's samples along the Langevin flow")
    return image_grid(out.flow, scale=3), image_grid(out.refined, scale=3), figure, "\n".join(lines)


@gpu.on_gpu(MAX_FRAMES * MAX_STEPS * gpu.COOPFLOW_SAMPLE_STEP)
@user_errors
def interpolate(seed_a: float, seed_b: float, frames: float, steps: float, step_size: float, noise: float,
                progress=gr.Progress(track_tqdm=True)):
    """A straight line between the flow latents of two seeds: the flow's outputs in one row, the same frames after
    the Langevin flow in the other, and a summary."""
    model = cached_model(COOPFLOW_NAME)
    a, b = limits.seed(seed_a, "Seed A"), limits.seed(seed_b, "Seed B")
    n = limits.integer("Frames", frames, 2, MAX_FRAMES)
    steps, delta, noise = _settings(steps, step_size, noise)
    start = time.perf_counter()
    out = model.interpolate(a, b, n, steps=steps, step_size=delta, noise=noise, progress=True)
    lines = [f"Line from seed {a} to seed {b} in {n} frames: z = (1 - a) z_A + a z_B, a = 0, {1 / (n - 1):.3g}, ..., 1.",
             _chain_line(steps, delta, noise, time.perf_counter() - start),
             f"Mean |refined - flow| per pixel: {float((out.refined - out.flow).abs().mean()):.3f} (pixels in [-1, 1])",
             _trained_line(model)]
    _warn(model, steps, lines)
    return image_grid(out.flow, ncols=n, scale=3), image_grid(out.refined, ncols=n, scale=3), "\n".join(lines)


def build() -> None:
    from ..hub import read_config, resolve

    c = model_skeleton(COOPFLOW_NAME).config  # config only: the weights load on the first request
    defaults = sampler_defaults_from(c, read_config(resolve(COOPFLOW_NAME).path))
    trained = c.langevin_steps
    gr.Markdown(
        "**CoopFlow**: a normalizing flow proposes images in one pass; a short-run Langevin flow on an energy-based model "
        "refines them. The two were trained together: the flow learned from the refined samples, the EBM from data vs "
        "refined samples. Left: the flow's samples; right: the same samples after T Langevin steps. T = 0 shows the flow alone."
    )
    with gr.Row():
        with gr.Column(scale=1):
            steps = gr.Slider(0, MAX_STEPS, value=defaults["steps"], step=1, label="Langevin steps T", elem_id="coopflow-steps",
                              info=f"The EBM was trained with T = {trained}; longer chains are past what it learned.")
            steps_md = gr.Markdown(**_note_kwargs(steps_note(trained, defaults["steps"])), elem_id="coopflow-steps-note")
            delta = gr.Slider(*DELTA_RANGE, value=defaults["step_size"], step=0.001, label="Step size delta", elem_id="coopflow-delta",
                              info=f"Trained with delta = {c.train_step_size:g}.")
            with gr.Row():
                seed = gr.Number(value=0, precision=0, label="First seed", elem_id="coopflow-seed")
                n = gr.Slider(1, MAX_SAMPLES, value=16, step=1, label="Samples", elem_id="coopflow-count")
            noise = gr.Slider(*NOISE_RANGE, value=defaults["noise"], step=0.05,
                              label="Langevin noise (fraction of delta; the paper uses 0)", elem_id="coopflow-noise")
            go = gr.Button("Sample", variant="primary")
            bar_warning(COOPFLOW_NAME, "generate")
            info = gr.Textbox(label="Run summary", lines=5, interactive=False, elem_id="coopflow-summary")
        with gr.Column(scale=2):
            with gr.Row():
                flow_grid = gr.Image(label="Flow samples", format="png", type="pil", elem_id="coopflow-flow")
                refined_grid = gr.Image(label="After T Langevin steps", format="png", type="pil", elem_id="coopflow-refined")
            energy = gr.Plot(label="Energy per step")
    gr.Markdown(
        "### Interpolation\nA straight line between the flow latents of two seeds, z = (1 - a) z_A + a z_B. An invertible "
        "flow maps every point of it to one image, so the row shows a continuous path between two samples; the second row "
        "is the same frames after the Langevin flow (T, delta and noise from the controls above)."
    )
    with gr.Row():
        seed_a = gr.Number(value=0, precision=0, label="Seed A", elem_id="coopflow-seed-a")
        seed_b = gr.Number(value=1, precision=0, label="Seed B", elem_id="coopflow-seed-b")
        frames = gr.Slider(2, MAX_FRAMES, value=8, step=1, label="Frames", elem_id="coopflow-frames")
        go_line = gr.Button("Interpolate", variant="primary", elem_id="coopflow-interpolate")
    line_flow = gr.Image(label="Flow outputs along the line", format="png", type="pil", elem_id="coopflow-line-flow")
    line_refined = gr.Image(label="The same frames after T Langevin steps", format="png", type="pil", elem_id="coopflow-line-refined")
    line_info = gr.Textbox(label="Interpolation summary", lines=4, interactive=False, elem_id="coopflow-line-summary")
    steps.change(lambda t: steps_note(trained, t), steps, steps_md, api_visibility="private")
    go.click(sample, [steps, delta, seed, n, noise], [flow_grid, refined_grid, energy, info], api_name="coopflow_sample")
    go_line.click(interpolate, [seed_a, seed_b, frames, steps, delta, noise], [line_flow, line_refined, line_info],
                  api_name="coopflow_interpolate")


def _note_kwargs(update: dict) -> dict:
    """A component's constructor arguments from an update dict (its value and visibility)."""
    return {"value": update["value"], "visible": update["visible"]}
