"""Tab "CoopFlow": flow samples side by side with the same samples after T Langevin steps on the EBM."""
from __future__ import annotations

import time

import gradio as gr

from ..viz import energy_figure, image_grid
from . import gpu, limits
from .bar_warnings import bar_warning
from .common import cached_model, model_skeleton, user_errors

COOPFLOW_NAME = "coopflow-fmnist"
MAX_SAMPLES, MAX_STEPS = 64, 200


def available() -> bool:
    from ..registry import local_names

    return COOPFLOW_NAME in local_names()


@gpu.on_gpu(MAX_SAMPLES * MAX_STEPS * gpu.COOPFLOW_SAMPLE_STEP)
@user_errors
def sample(steps: float, step_size: float, first_seed: float, n: float, noise: float, progress=gr.Progress(track_tqdm=True)):
    """Flow proposals and their Langevin refinement at the same seeds, the energy per step and a summary."""
    model = cached_model(COOPFLOW_NAME)
    steps = limits.integer("Langevin steps T", steps, 0, MAX_STEPS)
    delta = limits.number("Step size delta", step_size, 0.005, 0.1)
    noise = limits.number("Langevin noise", noise, 0.0, 1.0)
    count = limits.integer("Number of samples", n, 1, MAX_SAMPLES)
    seeds, _, _ = limits.seed_range(first_seed, count, MAX_SAMPLES, seed_name="First seed")
    start = time.perf_counter()
    out = model.sample(seeds, steps=steps, step_size=delta, noise=noise, progress=True)
    seconds = time.perf_counter() - start
    c = model.config
    change = (out.refined - out.flow).abs().mean()
    lines = [f"Seeds used: {seeds}",
             f"T = {steps} Langevin steps, delta = {delta:g} (update x += delta^2/2 grad f(x)"
             + (f" + {noise:g} delta noise" if noise else ", no noise") + f"); {seconds:.1f} s",
             f"Mean |refined - flow| per pixel: {float(change):.3f} (pixels in [-1, 1])",
             f"Trained with T = {c.langevin_steps}, delta = {c.train_step_size:g}; the default delta {c.step_size:g} is the paper's 4/3 of it."]
    if out.trace.num_steps:
        e = out.trace.energy_matrix()
        lines.insert(2, f"Mean energy: {float(e[0].mean()):.4g} (flow) -> {float(model.energy(out.refined).mean()):.4g} (refined)")
    figure = energy_figure(out.trace, "Energy of the flow's samples along the Langevin flow")
    return image_grid(out.flow, scale=3), image_grid(out.refined, scale=3), figure, "\n".join(lines)


def build() -> None:
    c = model_skeleton(COOPFLOW_NAME).config  # config only: the weights load on the first request
    gr.Markdown(
        "**CoopFlow**: a normalizing flow proposes images in one pass; a short-run Langevin flow on an energy-based model "
        "refines them. The two were trained together: the flow learned from the refined samples, the EBM from data vs "
        "refined samples. Left: the flow's samples; right: the same samples after T Langevin steps. T = 0 shows the flow alone."
    )
    with gr.Row():
        with gr.Column(scale=1):
            steps = gr.Slider(0, MAX_STEPS, value=c.langevin_steps, step=1, label="Langevin steps T", elem_id="coopflow-steps")
            delta = gr.Slider(0.005, 0.1, value=c.step_size, step=0.001, label="Step size delta", elem_id="coopflow-delta")
            with gr.Row():
                seed = gr.Number(value=0, precision=0, label="First seed", elem_id="coopflow-seed")
                n = gr.Slider(1, MAX_SAMPLES, value=16, step=1, label="Samples", elem_id="coopflow-count")
            noise = gr.Slider(0.0, 1.0, value=c.noise, step=0.05, label="Langevin noise (fraction of delta; the paper uses 0)")
            go = gr.Button("Sample", variant="primary")
            bar_warning(COOPFLOW_NAME, "generate")
            info = gr.Textbox(label="Run summary", lines=5, interactive=False, elem_id="coopflow-summary")
        with gr.Column(scale=2):
            with gr.Row():
                flow_grid = gr.Image(label="Flow samples", format="png", type="pil", elem_id="coopflow-flow")
                refined_grid = gr.Image(label="After T Langevin steps", format="png", type="pil", elem_id="coopflow-refined")
            energy = gr.Plot(label="Energy per step")
    go.click(sample, [steps, delta, seed, n, noise], [flow_grid, refined_grid, energy, info], api_name="coopflow_sample")
