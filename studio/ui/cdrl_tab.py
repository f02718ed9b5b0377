"""Tab "CDRL": class-conditional generation with a guidance slider, compared with DRL at equal seeds."""
from __future__ import annotations

import tempfile
import time

import gradio as gr

from ..viz import energy_figure, image_grid, trajectory_gif
from ..cdrl import FASHION_CLASSES, CDRLConfig
from . import gpu, limits
from .bar_warnings import bar_warning
from ..langevin import step_listener
from .common import cached_model, model_config, user_errors
from .progress import RequestProgress, Stage

CDRL_NAME, DRL_NAME = "cdrl-fmnist", "drl-fmnist"
UNCONDITIONAL = "(unconditional)"
MAX_SAMPLES = limits.MAX_SAMPLES


def _seeds(first_seed, n) -> str:
    return limits.seed_range(first_seed, n, MAX_SAMPLES, seed_name="First seed")[0]


def _run(name: str, cls, seeds: str, w: float, k: int, noise: bool, tweedie: bool, init_only: bool, record_every: int):
    model = cached_model(name)
    start = time.perf_counter()
    x, trace = model.generate(cls, seeds=seeds, guidance=w, steps=k, noise=noise, tweedie=tweedie, init_only=init_only,
                              record_every=record_every)
    seconds = time.perf_counter() - start
    evals = model.network_evaluations(k, init_only=init_only, tweedie=tweedie, w=w if cls is not None else 0.0)
    return x, trace, seconds, evals


# 64 samples at K = 50 with guidance, then DRL at its K for comparison, and the trajectory GIF
@gpu.on_gpu(limits.MAX_SAMPLES * (limits.MAX_CDRL_STEPS + gpu.DRL_STEPS / 2) * gpu.CDRL_SAMPLE_STEP + gpu.DRAW_GIF)
@user_errors
def generate(class_name: str, guidance: float, steps: int, first_seed: float, n: int, noise: bool, tweedie: bool,
             init_only: bool, compare_drl: bool, progress=gr.Progress()):
    """CDRL samples (and DRL at the same seeds): grids, the CDRL trajectory GIF, energy chart and a summary.

    Streams: a preview grid after the top level's proposal (one network call in) and after every
    level, then the full result; API callers get the last one from ``predict``. One progress bar
    covers the whole request (every level of CDRL, then DRL's), with the level and step in its text."""
    guidance = limits.number("Guidance w", guidance, 0, limits.MAX_GUIDANCE)
    steps = limits.integer("K", steps, 1, limits.MAX_CDRL_STEPS)
    noise, tweedie, init_only, compare_drl = (limits.flag(what, v) for what, v in (
        ("Langevin noise", noise), ("Final Tweedie denoise", tweedie), ("Initializer only", init_only), ("Compare with DRL", compare_drl)))
    seeds = _seeds(first_seed, n)
    cls = None if class_name in (None, UNCONDITIONAL) else class_name
    w, k = float(guidance), int(steps)
    model = cached_model(CDRL_NAME)
    drl_k = cached_model(DRL_NAME).config.langevin_steps if compare_drl else 0
    bar = RequestProgress(_stages(model.config.num_levels, 0 if init_only else k, drl_k), progress)
    start = time.perf_counter()
    stream = model.generate_stream(cls, seeds=seeds, guidance=w, steps=k, noise=noise, tweedie=tweedie,
                                   init_only=init_only, record_every=1)
    while True:  # the stream always ends with a "done" update
        with step_listener(bar.step):  # set around each step of the stream: Gradio may resume it in another thread
            update = next(stream)
        if update.done:
            break
        yield image_grid(update.images, scale=3), None, None, None, f"Seeds used: {seeds}\nCDRL: {update.label} of {model.config.num_levels}..."
    x, trace, secs = update.images, update.trace, time.perf_counter() - start
    evals = model.network_evaluations(k, init_only=init_only, tweedie=tweedie, w=w if cls is not None else 0.0)
    gif = trajectory_gif(trace, tempfile.NamedTemporaryFile(suffix=".gif", delete=False).name, scale=2)
    summary = [f"Seeds used: {seeds}", f"CDRL: {evals} network evaluations per sample, {secs:.1f} s"]
    grid, energy = image_grid(x, scale=3), energy_figure(trace, "CDRL energy per Langevin step (levels 5 -> 0)")
    drl_img = None
    if compare_drl:
        yield grid, None, gif, energy, "\n".join([*summary, "DRL: sampling..."])
        # DRL starts each level at x_{t+1}; it needs its own training K (30) to work at all.
        with step_listener(bar.step):
            xd, _, secs_d, evals_d = _run(DRL_NAME, cls, seeds, w, drl_k, noise, tweedie, False, record_every=0)
        drl_img = image_grid(xd, scale=3)
        summary.append(f"DRL: {evals_d} network evaluations per sample, {secs_d:.1f} s")
    yield grid, drl_img, gif, energy, "\n".join(summary)


def _stages(levels: int, k: int, drl_k: int) -> list[Stage]:
    """The chains of one request in the order they run: CDRL's levels top -> 0, then DRL's (when compared)."""
    cdrl = [Stage(f"CDRL level {t} ({levels - t} of {levels})", k) for t in range(levels - 1, -1, -1)]
    return cdrl + [Stage(f"DRL level {t} ({levels - t} of {levels})", drl_k) for t in range(levels - 1, -1, -1)]


def available() -> bool:
    from ..registry import local_names

    return CDRL_NAME in local_names()


def _drl_available() -> bool:
    from ..registry import local_names

    return DRL_NAME in local_names()


def build() -> None:
    config = model_config(CDRL_NAME)  # the weights load on the first request, not at app start
    names = [UNCONDITIONAL, *config.get("class_names", FASHION_CLASSES)]
    gr.Markdown(
        "**CDRL** (cooperative diffusion recovery likelihood): at each of 6 noise levels an initializer proposes an image "
        "and K Langevin steps on the EBM refine it. Guidance w follows the paper: w = 0 is no guidance "
        "(diffusers' guidance_scale = w + 1)."
    )
    with gr.Row():
        with gr.Column(scale=1):
            cls = gr.Dropdown(names, value="Trouser", label="Class")
            w = gr.Slider(0, 5, value=1.0, step=0.1, label="Guidance w")
            k = gr.Slider(1, 50, value=config.get("langevin_steps", CDRLConfig.langevin_steps), step=1, label="Langevin steps K per level",
                          elem_id="cdrl-k")
            with gr.Row():
                seed = gr.Number(value=0, precision=0, label="First seed")
                n = gr.Slider(1, MAX_SAMPLES, value=16, step=1, label="Samples", elem_id="cdrl-n")
            with gr.Row():
                noise = gr.Checkbox(value=True, label="Langevin noise")
                tweedie = gr.Checkbox(value=True, label="Final Tweedie denoise")
            with gr.Row():
                init_only = gr.Checkbox(value=False, label="Initializer only")
                compare = gr.Checkbox(value=False, label="Compare with DRL", visible=_drl_available())
            go = gr.Button("Generate", variant="primary")
            bar_warning(CDRL_NAME, "generate")
            info = gr.Textbox(label="Run summary", lines=3, interactive=False, elem_id="cdrl-summary")
        with gr.Column(scale=2):
            with gr.Row():
                grid = gr.Image(label="CDRL samples", format="png", type="pil", elem_id="cdrl-grid")
                drl_grid = gr.Image(label="DRL at the same seeds", format="png", type="pil", elem_id="cdrl-drl-grid")
            gif = gr.Image(label="Trajectory: each level's proposal and Langevin steps", format="gif", type="filepath")
            energy = gr.Plot(label="Energy per step")
    # The request's one progress bar sits on the CDRL grid (the DRL panel has none: with DRL off it has nothing to
    # wait for; with DRL on, the bar's text says when DRL runs).
    go.click(generate, [cls, w, k, seed, n, noise, tweedie, init_only, compare], [grid, drl_grid, gif, energy, info],
             api_name="cdrl_generate", show_progress_on=[grid])
