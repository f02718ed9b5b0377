"""Tab "Energy lab": place points (a preset or clicks on a canvas), train a small energy on them live, watch
the landscape learn, then sample it with Langevin and HMC side by side and download the checkpoint.

Training is ``studio.lab.train_stream``; this module only turns the page's values into its arguments and
its updates into figures. One run per session: a new Train (from the API; the button itself ignores
clicks while its run is going) or Stop ends the session's current run at its next step, and that run
still reports where it stopped. The lab trains and samples on the CPU (see ``studio.lab``), so its handlers
ask for no ZeroGPU slice.
"""
from __future__ import annotations

import math
import re
import tempfile
import time
import zipfile
from pathlib import Path

import gradio as gr
import torch

from ..lab import MAX_SECONDS, MAX_STEPS, OBJECTIVES, RANGES, SAMPLERS, LabConfig, fraction_near, train_stream
from ..lab_io import export_checkpoint
from ..pointsets import CANVAS, MAX_POINTS, PRESETS, PointSetError, check_points, preset
from ..toy import langevin_vs_hmc
from . import limits
from .common import user_errors
from .lab_figures import canvas_image, from_pixels, landscape_figure, loss_figure, sampler_comparison_figure

OBJECTIVE_CHOICES = {label: key for key, label in OBJECTIVES.items()}
SAMPLER_CHOICES = {label: key for key, label in SAMPLERS.items()}
CLICK_MODES = ["Place points", "Erase points"]
ERASE_RADIUS = 0.3  # canvas units around a click
SPRAY = 0.12  # standard deviation of the points a click places around itself
MAX_PER_CLICK = 50
MAX_SAMPLE_CHAINS = 1000
MAX_SAMPLE_EVALS = 2000  # gradient evaluations per chain when sampling a trained energy
NEAR = 0.2  # a sample "lands on the data" within this distance of a data point


# -- points ----------------------------------------------------------------------------------------


def points_to_text(points: torch.Tensor) -> str:
    return "\n".join(f"{x:.3f}, {y:.3f}" for x, y in points.tolist())


def points_from_text(text, strict: bool = True) -> torch.Tensor:
    """The points of the text box ("x, y" per line; blank lines and lines starting with # are skipped).
    ``strict`` refuses unreadable lines and runs ``check_points``; otherwise they are skipped (for drawing)."""
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise PointSetError(f"Points must be text with one 'x, y' pair per line; got {type(text).__name__}.")
    lines = [(i, line.strip()) for i, line in enumerate(text.splitlines(), 1)]
    lines = [(i, line) for i, line in lines if line and not line.startswith("#")]
    if strict and len(lines) > MAX_POINTS:
        raise PointSetError(f"Points: {len(lines):,} points given; at most {MAX_POINTS:,} are allowed.")
    rows = []
    for i, line in lines:
        parts = [p for p in re.split(r"[,\s;]+", line) if p]
        try:
            if len(parts) != 2:
                raise ValueError
            rows.append((float(parts[0]), float(parts[1])))
        except ValueError:
            if strict:
                raise PointSetError(f"Points: line {i} ({line[:40]!r}) is not two numbers 'x, y'.") from None
    if not strict:
        pts = torch.tensor(rows, dtype=torch.float32).reshape(-1, 2)
        return pts[torch.isfinite(pts).all(1) & (pts.abs() <= CANVAS).all(1)][:MAX_POINTS]
    if not rows:
        raise PointSetError("Points: no points given; place at least 2 (click on the canvas or load a preset).")
    return check_points(rows)


@user_errors
def load_preset(name: str, count: int, noise: float):
    """The points of a preset (seed 0) as text, and the canvas drawn with them."""
    name = limits.choice("preset", name, PRESETS)
    count = limits.integer("Number of points", count, 2, MAX_POINTS)
    noise = limits.number("Noise", noise, 0.0, 0.5)
    points = preset(name, count, seed=0, noise=noise)
    return points_to_text(points), canvas_image(points)


def click_canvas(text: str, mode: str, per_click: float, evt: gr.SelectData):
    """Place a few points around the click (or erase the points near it); returns the text and the canvas."""
    index = getattr(evt, "index", None)
    if not (isinstance(index, (list, tuple)) and len(index) == 2 and all(isinstance(v, (int, float)) for v in index)):
        return gr.update(), gr.update()
    points = points_from_text(text, strict=False)
    cx, cy = from_pixels(float(index[0]), float(index[1]))
    cx, cy = max(-CANVAS, min(CANVAS, cx)), max(-CANVAS, min(CANVAS, cy))
    if mode == CLICK_MODES[1]:
        keep = (points - torch.tensor([cx, cy])).norm(dim=1) > ERASE_RADIUS
        points = points[keep]
    else:
        try:
            n = int(limits.integer("Points per click", per_click, 1, MAX_PER_CLICK))
        except limits.LimitError:
            n = 1
        n = min(n, MAX_POINTS - len(points))
        if n <= 0:
            gr.Warning(f"The canvas holds at most {MAX_POINTS:,} points.")
            return gr.update(), gr.update()
        # the spray depends on where and when the click lands, so a session replays exactly
        g = torch.Generator().manual_seed(int(abs(cx) * 1e4) * 7919 + int(abs(cy) * 1e4) * 104729 + len(points))
        spray = torch.tensor([[cx, cy]]) + (SPRAY * torch.randn(n, 2, generator=g) if n > 1 else torch.zeros(1, 2))
        points = torch.cat([points, spray.clamp(-CANVAS, CANVAS)])
    return points_to_text(points), canvas_image(points)


def redraw(text: str):
    """Redraw the canvas from the text box (lines that cannot be read are skipped until Train says so)."""
    return canvas_image(points_from_text(text, strict=False))


# -- training --------------------------------------------------------------------------------------


def _config(objective, sampler, steps, learning_rate, step_size, hmc_step_size, leapfrog_steps, seed) -> LabConfig:
    """The page's values as a LabConfig, each checked against the lab's ranges under its label on the page."""
    objective = limits.choice("objective", objective, OBJECTIVE_CHOICES)
    sampler = limits.choice("sampler", sampler, SAMPLER_CHOICES)
    return LabConfig(
        objective=OBJECTIVE_CHOICES[objective], sampler=SAMPLER_CHOICES[sampler],
        steps=limits.integer("Training steps", steps, *map(int, RANGES["steps"])),
        learning_rate=limits.number("Learning rate", learning_rate, *RANGES["learning_rate"]),
        step_size=limits.number("Langevin step size", step_size, *RANGES["step_size"]),
        hmc_step_size=limits.number("HMC step size", hmc_step_size, *RANGES["hmc_step_size"]),
        leapfrog_steps=limits.integer("Leapfrog steps", leapfrog_steps, *map(int, RANGES["leapfrog_steps"])),
        seed=limits.seed(seed),
    )


def _status(update, objective_label: str) -> str:
    loss = f"{update.losses[-1]:.4g}" if update.losses else "-"
    head = f"**{objective_label}**, step {update.step} of {update.total_steps}: loss {loss}, {update.seconds:.1f} s of compute"
    if not update.done:
        return head + " ..."
    if update.message:
        return f"{head}.\n\n**{update.message}**"
    return f"{head}. Done: sample it below, or download the checkpoint."


@user_errors
def train_energy(text: str, objective: str, sampler: str, steps: float, learning_rate: float, step_size: float,
                 hmc_step_size: float, leapfrog_steps: float, seed: float, session: dict | None = None):
    """Stream (landscape, loss curve, status) while training; the finished run is kept in the session."""
    cfg = _config(objective, sampler, steps, learning_rate, step_size, hmc_step_size, leapfrog_steps, seed)
    points = points_from_text(text)
    session = session if isinstance(session, dict) else {}
    run = session["run"] = session.get("run", 0) + 1  # any earlier run of this session stops at its next step
    label = OBJECTIVES[cfg.objective]
    negatives = "negative samples" if cfg.objective in ("cd", "pcd") else "model samples"
    for update in train_stream(points, cfg, should_stop=lambda: session.get("run") != run):
        title = f"{label}: step {update.step}"
        if update.done:
            session["result"] = update
            if update.diverged:
                gr.Warning(update.message)
        yield (landscape_figure(update.axis, update.energy, update.data, update.negatives, title, negatives),
               loss_figure(update.losses), _status(update, label))


def stop_training(session: dict | None):
    if isinstance(session, dict):
        session["run"] = session.get("run", 0) + 1


# -- sampling and export ---------------------------------------------------------------------------


def _trained(session) -> object:
    result = session.get("result") if isinstance(session, dict) else None
    if result is None or result.model is None:
        raise limits.LimitError("There is no trained energy in this session yet: press Train first.")
    return result


@user_errors
def sample_energy(chains: float, evaluations: float, step_size: float, hmc_step_size: float, leapfrog_steps: float,
                  seed: float, session: dict | None = None):
    """Langevin and HMC on the trained energy from the same starting points at equal gradient evaluations."""
    n = limits.integer("Chains", chains, 1, MAX_SAMPLE_CHAINS)
    budget = limits.integer("Gradient evaluations per chain", evaluations, 1, MAX_SAMPLE_EVALS)
    step_size = limits.number("Langevin step size", step_size, *RANGES["step_size"])
    hmc_step_size = limits.number("HMC step size", hmc_step_size, *RANGES["hmc_step_size"])
    leap = limits.integer("Leapfrog steps", leapfrog_steps, 1, min(int(RANGES["leapfrog_steps"][1]), budget))
    seeds, _, _ = limits.seed_range(seed, n, MAX_SAMPLE_CHAINS, what="Chains", seed_name="Seed")
    result = _trained(session)
    model = result.model
    start = time.perf_counter()
    (x_l, t_l), (x_h, t_h) = langevin_vs_hmc(model, seeds, budget, step_size, hmc_step_size, leap)
    seconds = time.perf_counter() - start
    axis, energy = result.axis, result.energy
    figs = [landscape_figure(axis, energy, result.data, x, f"{name}: {n} chains, {budget} gradient evaluations each", "samples")
            for name, x in (("Langevin", x_l), ("HMC", x_h))]
    rows = ["| sampler | samples within 0.2 of a data point | mean final energy | acceptance |", "|---|---|---|---|"]
    for name, x, trace in (("Langevin", x_l, t_l), ("HMC", x_h, t_h)):
        acc = f"{trace.mean_accept_prob():.3f}" if name == "HMC" else "- (no test)"
        final = float(model(x).mean()) if len(x) else math.nan
        rows.append(f"| {name} | {fraction_near(x, result.data, NEAR):.3f} | {final:.3f} | {acc} |")
    note = (f"{n} chains from N(0, {model.init_scale:g}^2) at the same seeds; Langevin {budget} steps of size {step_size:g}, "
            f"HMC {budget // leap} steps of {leap} leapfrog steps of size {hmc_step_size:g} ({seconds:.1f} s).")
    return (*figs, sampler_comparison_figure(t_l, t_h, "Energy per gradient evaluation (same cost at the same x)"),
            "\n".join(rows) + "\n\n" + note)


@user_errors
def export_energy(session: dict | None = None):
    """The trained energy as a zipped checkpoint folder (unzip, then studio.load("lab-energy"))."""
    result = _trained(session)
    folder = Path(tempfile.mkdtemp(prefix="studio-lab-"))
    directory = export_checkpoint(result, folder / "lab-energy")
    archive = folder / "lab-energy.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(directory.iterdir()):
            zf.write(file, f"lab-energy/{file.name}")
    return str(archive)


# -- layout ----------------------------------------------------------------------------------------


def _warm_up() -> None:
    """Pay a first run's one-off costs when the app starts, not after the first Train: torch's first Adam
    imports torch._dynamo (~2 s of CPU) and plotly loads its trace classes on first use."""
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    landscape_figure(torch.linspace(-1, 1, 2), torch.zeros(2, 2), torch.zeros(2, 2), torch.zeros(1, 2))
    loss_figure([1.0] * 30)


def build() -> dict:
    _warm_up()
    defaults = LabConfig()
    first = preset("two moons", 500, seed=0)
    gr.Markdown(
        "Train an energy-based model on points you place, **live**: a small MLP energy E(x) learns to put low energy "
        "(dark basins) on your points. Pick a preset or click on the canvas, choose an objective and a sampler, and press "
        f"**Train** (at most {MAX_STEPS:,} steps and {MAX_SECONDS:g} s of compute per run). Then sample the trained "
        "energy with Langevin and HMC at equal cost, and download it as a checkpoint that `studio.load` reads.")
    session = gr.State({"run": 0, "result": None})
    with gr.Row():
        with gr.Column(scale=1):
            with gr.Row():
                preset_name = gr.Dropdown(list(PRESETS), value="two moons", label="Preset")
                count = gr.Slider(2, MAX_POINTS, value=500, step=1, label="Number of points")
            noise = gr.Slider(0.0, 0.5, value=0.1, step=0.01, label="Noise")
            load = gr.Button("Load preset")
            canvas = gr.Image(canvas_image(first), type="pil", interactive=False, label="Canvas: click to place or erase points",
                              elem_id="lab-canvas", buttons=[], format="png")
            with gr.Row():
                mode = gr.Radio(CLICK_MODES, value=CLICK_MODES[0], label="A click")
                per_click = gr.Slider(1, MAX_PER_CLICK, value=10, step=1, label="Points per click")
            clear = gr.Button("Clear the canvas")
            with gr.Accordion("Points as text (x, y per line; paste your own)", open=False):
                points = gr.Textbox(points_to_text(first), lines=8, max_lines=16, label="Points", elem_id="lab-points")
            objective = gr.Dropdown(list(OBJECTIVE_CHOICES), value=OBJECTIVES[defaults.objective], label="Objective")
            sampler = gr.Radio(list(SAMPLER_CHOICES), value=SAMPLERS[defaults.sampler], label="Sampler (negatives and samples)")
            with gr.Accordion("Training settings", open=False):
                steps = gr.Slider(1, MAX_STEPS, value=defaults.steps, step=1, label="Training steps", elem_id="lab-steps")
                learning_rate = gr.Slider(*RANGES["learning_rate"], value=defaults.learning_rate, label="Learning rate")
                step_size = gr.Slider(*RANGES["step_size"], value=defaults.step_size, label="Langevin step size")
                hmc_step_size = gr.Slider(*RANGES["hmc_step_size"], value=defaults.hmc_step_size, label="HMC step size")
                leapfrog = gr.Slider(*RANGES["leapfrog_steps"], value=defaults.leapfrog_steps, step=1, label="Leapfrog steps")
                seed = gr.Number(value=0, precision=0, label="Seed")
            with gr.Row():
                train_btn = gr.Button("Train", variant="primary", elem_id="lab-train")
                stop_btn = gr.Button("Stop", elem_id="lab-stop")
        with gr.Column(scale=2):
            landscape = gr.Plot(label="Energy landscape", elem_id="lab-landscape")
            loss = gr.Plot(label="Loss", elem_id="lab-loss")
            status = gr.Markdown("Press **Train**.", elem_id="lab-status")
            with gr.Accordion("Sample the trained energy: Langevin vs HMC", open=True):
                with gr.Row():
                    chains = gr.Slider(1, MAX_SAMPLE_CHAINS, value=500, step=1, label="Chains")
                    evaluations = gr.Slider(10, MAX_SAMPLE_EVALS, value=500, step=10, label="Gradient evaluations per chain")
                    sample_seed = gr.Number(value=0, precision=0, label="Seed")
                sample_btn = gr.Button("Sample with both samplers")
                with gr.Row():
                    langevin_plot = gr.Plot(label="Langevin samples")
                    hmc_plot = gr.Plot(label="HMC samples")
                compare = gr.Plot(label="Energy per gradient evaluation")
                summary = gr.Markdown(elem_id="lab-summary")
            export_btn = gr.Button("Download the trained energy (checkpoint)")
            checkpoint = gr.File(label="Checkpoint (unzip, then studio.load('lab-energy'))", elem_id="lab-checkpoint")
    # Layout-only events stay out of the API.
    load.click(load_preset, [preset_name, count, noise], [points, canvas], api_name="lab_preset")
    canvas.select(click_canvas, [points, mode, per_click], [points, canvas], api_visibility="private")
    clear.click(lambda: ("", canvas_image(None)), None, [points, canvas], api_visibility="private")
    points.input(redraw, points, canvas, api_visibility="private", trigger_mode="always_last")
    train_inputs = [points, objective, sampler, steps, learning_rate, step_size, hmc_step_size, leapfrog, seed, session]
    run = train_btn.click(train_energy, train_inputs, [landscape, loss, status], api_name="lab_train", trigger_mode="once")
    stop_btn.click(stop_training, session, None, api_visibility="private", queue=False)
    sample_btn.click(sample_energy, [chains, evaluations, step_size, hmc_step_size, leapfrog, sample_seed, session],
                     [langevin_plot, hmc_plot, compare, summary], api_name="lab_sample")
    export_btn.click(export_energy, session, checkpoint, api_name="lab_export")
    return {"points": points, "canvas": canvas, "train": run, "landscape": landscape}
