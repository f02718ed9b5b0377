"""Tab "Langevin playground": chains on an analytic 2-D energy, through the real engine, and Langevin vs HMC
(``studio.hmc``) side by side at equal gradient evaluations, judged by each energy's sampler checks."""
from __future__ import annotations

import functools

import gradio as gr

from ..toy import POTENTIALS, langevin_vs_hmc, potential
from ..viz import chains_figure, energy_figure
from .lab_figures import sampler_comparison_figure
from . import gpu, limits
from .common import cached_model, user_errors

TOYS = {"Mixture of 8 Gaussians": "toy-gaussian-mixture", "Ring": "toy-ring", "Double well": "toy-double-well",
        "Rosenbrock (banana)": "toy-rosenbrock", "Rastrigin": "toy-rastrigin", "Two moons": "toy-two-moons",
        "Checkerboard": "toy-checkerboard"}
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
    model = toy(TOYS[energy])
    x, trace = model.sample(seeds=seeds, steps=steps, step_size=step_size, noise_std=noise_std, record_every=max(1, steps // 200), progress=True)
    chains_fig = chains_figure(model.density_grid(), trace, x, title=f"{energy}: {chains} chains, {steps} steps")
    return chains_fig, energy_figure(trace), f"Seeds used: {seeds}"


def toy(name: str):
    """The 2-D energy of that name: an analytic potential is built once from its default config (it has no
    weights to load); the others come from their checkpoints."""
    return _potential(name) if name in POTENTIALS else cached_model(name)


_potential = functools.lru_cache(maxsize=None)(potential)


# Settings each energy samples well with: (Langevin step size, HMC step size, leapfrog steps). Picking an energy sets
# them (the Langevin noise becomes sqrt(2 x step size)); the Rosenbrock ridge, for one, makes Langevin diverge at 0.02.
SUGGESTED = {"toy-gaussian-mixture": (0.02, 0.1, 10), "toy-ring": (0.02, 0.1, 10), "toy-double-well": (0.01, 0.15, 10),
             "toy-rosenbrock": (0.002, 0.05, 20), "toy-rastrigin": (0.005, 0.1, 10), "toy-two-moons": (0.005, 0.1, 10),
             "toy-checkerboard": (0.005, 0.1, 10)}


def suggested_settings(energy: str):
    """Step size, noise, HMC step size and leapfrog steps for the chosen energy (unchanged for an unknown one)."""
    if energy not in TOYS:
        return gr.update(), gr.update(), gr.update(), gr.update()
    step, hmc_step, leap = SUGGESTED[TOYS[energy]]
    return step, round((2 * step) ** 0.5, 2), hmc_step, leap


COMPARE_LIMITS = {"evaluations": (10, limits.MAX_PLAYGROUND_STEPS), "hmc_step_size": (1e-3, 1.0), "leapfrog_steps": (1, 50)}


# Langevin and HMC, each at most MAX_PLAYGROUND_STEPS gradient evaluations of up to 512 chains
@gpu.on_gpu(2 * limits.MAX_PLAYGROUND_STEPS * gpu.TOY_STEP_512)
@user_errors
def compare_samplers(energy: str, step_size: float, evaluations: int, hmc_step_size: float, leapfrog_steps: int,
                     chains: int, seed: int, progress=gr.Progress(track_tqdm=True)):
    """Langevin (noise sqrt(2 step_size), so it samples exp(-E)) and HMC from the same starting points at equal
    gradient evaluations: both chain plots, energy per gradient evaluation, and each energy's sampler checks."""
    energy = limits.choice("energy", energy, TOYS)
    step_size = limits.number("Step size", step_size, *LIMITS["step_size"])
    budget = limits.integer("Gradient evaluations per chain", evaluations, *COMPARE_LIMITS["evaluations"])
    hmc_step = limits.number("HMC step size", hmc_step_size, *COMPARE_LIMITS["hmc_step_size"])
    leap = limits.integer("Leapfrog steps", leapfrog_steps, COMPARE_LIMITS["leapfrog_steps"][0],
                          min(COMPARE_LIMITS["leapfrog_steps"][1], budget))
    seeds, seed, chains = limits.seed_range(seed, chains, LIMITS["chains"][1], what="Chains", seed_name="First seed")
    model = toy(TOYS[energy])
    (x_l, t_l), (x_h, t_h) = langevin_vs_hmc(model, seeds, budget, step_size, hmc_step, leap,
                                             record_every=max(leap, budget // 200))
    density = model.density_grid()
    figs = [chains_figure(density, trace, x, title=f"{name}: {chains} chains, {budget} gradient evaluations each")
            for name, x, trace in (("Langevin", x_l, t_l), ("HMC", x_h, t_h))]
    checks_l, checks_h = model.sampler_checks(x_l), model.sampler_checks(x_h)
    rows = ["| check | target | Langevin | HMC |", "|---|---|---|---|"]
    for a, b in zip(checks_l, checks_h):
        want = f">= {a.target - a.tolerance:.3g}" if a.at_least else f"{a.target:.3g} ± {a.tolerance:.3g}"
        rows.append(f"| {a.name} | {want} | {a.value:.3g} {'✓' if a.passed else '✗'} | {b.value:.3g} {'✓' if b.passed else '✗'} |")
    note = (f"Langevin: {budget} steps of size {step_size:g} (noise sqrt(2 x step size)). HMC: {budget // leap} steps of {leap} "
            f"leapfrog steps of size {hmc_step:g}, mean acceptance probability {t_h.mean_accept_prob():.3f}. Seeds used: {seeds}.")
    return (*figs, sampler_comparison_figure(t_l, t_h), "\n".join(rows) + "\n\n" + note)


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
    with gr.Accordion("Langevin vs HMC at equal gradient evaluations", open=False):
        gr.Markdown("Both samplers start from the same points (the seeds above). Langevin takes one gradient per step and "
                    "uses the step size above with noise sqrt(2 x step size); HMC takes `leapfrog steps` gradients per step "
                    "and accepts or rejects each proposal (Metropolis). The table holds what exact samples of this "
                    "energy would show: its moments, and how its modes share the mass.")
        with gr.Row():
            evaluations = gr.Slider(*COMPARE_LIMITS["evaluations"], value=500, step=10, label="Gradient evaluations per chain")
            hmc_step = gr.Slider(0.005, 0.5, value=0.1, step=0.005, label="HMC step size")
            leapfrog = gr.Slider(*COMPARE_LIMITS["leapfrog_steps"], value=10, step=1, label="Leapfrog steps")
        compare = gr.Button("Compare samplers")
        with gr.Row():
            langevin_plot = gr.Plot(label="Langevin", elem_id="playground-langevin")
            hmc_plot = gr.Plot(label="HMC", elem_id="playground-hmc")
        comparison = gr.Plot(label="Energy per gradient evaluation, HMC acceptance")
        checks_table = gr.Markdown(elem_id="playground-checks")
    energy.change(suggested_settings, energy, [step_size, noise, hmc_step, leapfrog], api_visibility="private")
    compare.click(compare_samplers, [energy, step_size, evaluations, hmc_step, leapfrog, chains, seed],
                  [langevin_plot, hmc_plot, comparison, checks_table], api_name="playground_compare")
