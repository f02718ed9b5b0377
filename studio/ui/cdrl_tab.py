"""Tab "CDRL": class-conditional generation with a guidance slider, compared with DRL at equal seeds."""
from __future__ import annotations

import tempfile
import time

import gradio as gr

from ..viz import energy_figure, image_grid, trajectory_gif
from ..cdrl import FASHION_CLASSES, CDRLConfig
from . import limits
from .common import cached_model, model_config, user_errors

CDRL_NAME, DRL_NAME = "cdrl-fmnist", "drl-fmnist"
UNCONDITIONAL = "(unconditional)"
MAX_SAMPLES = limits.MAX_SAMPLES


def _seeds(first_seed, n) -> str:
    return limits.seed_range(first_seed, n, MAX_SAMPLES)[0]


def _run(name: str, cls, seeds: str, w: float, k: int, noise: bool, tweedie: bool, init_only: bool, record_every: int):
    model = cached_model(name)
    start = time.perf_counter()
    x, trace = model.generate(cls, seeds=seeds, guidance=w, steps=k, noise=noise, tweedie=tweedie, init_only=init_only,
                              record_every=record_every, progress=True)
    seconds = time.perf_counter() - start
    evals = model.network_evaluations(k, init_only=init_only, tweedie=tweedie, w=w if cls is not None else 0.0)
    return x, trace, seconds, evals


@user_errors
def generate(class_name: str, guidance: float, steps: int, first_seed: float, n: int, noise: bool, tweedie: bool,
             init_only: bool, compare_drl: bool, progress=gr.Progress(track_tqdm=True)):
    """CDRL samples (and DRL at the same seeds): grids, the CDRL trajectory GIF, energy chart and a summary.

    Streams: a preview grid after the top level's proposal (one network call in) and after every
    level, then the full result; API callers get the last one from ``predict``."""
    guidance = limits.number("Guidance w", guidance, 0, limits.MAX_GUIDANCE)
    steps = limits.integer("K", steps, 1, limits.MAX_CDRL_STEPS)
    noise, tweedie, init_only, compare_drl = (limits.flag(what, v) for what, v in (
        ("Langevin noise", noise), ("Final Tweedie denoise", tweedie), ("Initializer only", init_only), ("Compare with DRL", compare_drl)))
    seeds = _seeds(first_seed, n)
    cls = None if class_name in (None, UNCONDITIONAL) else class_name
    w, k = float(guidance), int(steps)
    model = cached_model(CDRL_NAME)
    start = time.perf_counter()
    for update in model.generate_stream(cls, seeds=seeds, guidance=w, steps=k, noise=noise, tweedie=tweedie,
                                        init_only=init_only, record_every=1, progress=True):
        if not update.done:
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
        xd, _, secs_d, evals_d = _run(DRL_NAME, cls, seeds, w, cached_model(DRL_NAME).config.langevin_steps,
                                      noise, tweedie, False, record_every=0)
        drl_img = image_grid(xd, scale=3)
        summary.append(f"DRL: {evals_d} network evaluations per sample, {secs_d:.1f} s")
    yield grid, drl_img, gif, energy, "\n".join(summary)


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
            k = gr.Slider(1, 50, value=config.get("langevin_steps", CDRLConfig.langevin_steps), step=1, label="Langevin steps K per level")
            with gr.Row():
                seed = gr.Number(value=0, precision=0, label="First seed")
                n = gr.Slider(1, MAX_SAMPLES, value=16, step=1, label="Samples")
            with gr.Row():
                noise = gr.Checkbox(value=True, label="Langevin noise")
                tweedie = gr.Checkbox(value=True, label="Final Tweedie denoise")
            with gr.Row():
                init_only = gr.Checkbox(value=False, label="Initializer only")
                compare = gr.Checkbox(value=False, label="Compare with DRL", visible=_drl_available())
            go = gr.Button("Generate", variant="primary")
            info = gr.Textbox(label="Run summary", lines=3, interactive=False)
        with gr.Column(scale=2):
            with gr.Row():
                grid = gr.Image(label="CDRL samples", format="png", type="pil")
                drl_grid = gr.Image(label="DRL at the same seeds", format="png", type="pil")
            gif = gr.Image(label="Trajectory: each level's proposal and Langevin steps", format="gif", type="filepath")
            energy = gr.Plot(label="Energy per step")
    go.click(generate, [cls, w, k, seed, n, noise, tweedie, init_only, compare], [grid, drl_grid, gif, energy, info],
             api_name="cdrl_generate")
