"""Tab "Langevin playground": chains on an analytic 2-D energy, through the real engine."""
from __future__ import annotations

import gradio as gr

from ..viz import chains_figure, energy_figure
from . import gpu, limits
from .common import cached_model, user_errors

TOYS = {"Mixture of 8 Gaussians": "toy-gaussian-mixture", "Ring": "toy-ring"}
LIMITS = {"steps": (1, limits.MAX_PLAYGROUND_STEPS), "chains": (1, limits.MAX_CHAINS), "step_size": (1e-5, 1.0), "noise_std": (0.0, 3.0)}


@gpu.on_gpu(limits.MAX_PLAYGROUND_STEPS * gpu.TOY_STEP_512)
@user_errors
def run_playground(energy: str, step_size: float, noise_std: float, steps: int, chains: int, seed: int, progress=gr.Progress(track_tqdm=True)):
    """Sample ``chains`` chains (seeds seed..seed+chains-1); return the chain plot, the energy curve and the seeds."""
    energy = limits.choice("energy", energy, TOYS)
    step_size = limits.number("step_size", step_size, *LIMITS["step_size"])
    noise_std = limits.number("noise_std", noise_std, *LIMITS["noise_std"])
    steps = limits.integer("steps", steps, *LIMITS["steps"])
    seeds, seed, chains = limits.seed_range(seed, chains, LIMITS["chains"][1], what="Chains", seed_name="First seed")
    model = cached_model(TOYS[energy])
    x, trace = model.sample(seeds=seeds, steps=steps, step_size=step_size, noise_std=noise_std, record_every=max(1, steps // 200), progress=True)
    chains_fig = chains_figure(model.density_grid(), trace, x, title=f"{energy}: {chains} chains, {steps} steps")
    return chains_fig, energy_figure(trace), f"Seeds used: {seeds}"


def build() -> None:
    gr.Markdown(
        "Langevin dynamics on a 2-D energy, run by the same engine as every image model: "
        "`x <- x - step_size * grad E(x) + noise_std * eps`. "
        "With `noise_std = sqrt(2 * step_size)` the chains sample exp(-E); with no noise they only descend."
    )
    with gr.Row():
        with gr.Column(scale=1):
            energy = gr.Dropdown(list(TOYS), value="Mixture of 8 Gaussians", label="Energy")
            step_size = gr.Slider(0.001, 0.2, value=0.02, step=0.001, label="Step size")
            noise = gr.Slider(0.0, 1.0, value=0.2, step=0.01, label="Noise std")
            steps = gr.Slider(1, 1000, value=200, step=1, label="Steps")
            chains = gr.Slider(1, 256, value=64, step=1, label="Chains")
            seed = gr.Number(value=0, precision=0, label="First seed")
            run = gr.Button("Run chains", variant="primary")
            seeds_used = gr.Textbox(label="Seeds", interactive=False)
        with gr.Column(scale=2):
            chains_plot = gr.Plot(label="Chains over the density")
            energy_plot = gr.Plot(label="Energy and gradient norm per step")
    run.click(run_playground, [energy, step_size, noise, steps, chains, seed], [chains_plot, energy_plot, seeds_used],
              api_name="playground")
