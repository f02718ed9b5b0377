"""Tab "Saliency": which pixels the energy pushed along a chain, and where a model disagrees with an image.

* Generative saliency (CF-EBM, section 6): the per-pixel L2 norm over channels of sum_t grad E(x_t) along
  the chain that made the output, min-max normalised. It is read from the sampler's Trace
  (``Trace.saliency``), so no chain is run again to draw it; the opacity slider only re-blends the stored
  map (``gr.State``).
* LETIT moves a latent code, not pixels: its saliency is the decoded difference |Dec(z_T) - Dec(z_0)| per
  pixel (the translation minus the autoencoder's own reconstruction, so reconstruction error does not
  count), shown with the latent shift sum_t |z_(t+1) - z_t| per channel and per location.
* Disagreement: |grad_x E(x)| per pixel for one image under a model's public energy, i.e. where a small
  change would lower the energy most.

Which tasks a model offers comes from ``inputs.CHAIN_TASKS`` (shared with the Trajectory tab); ``TASKS``
holds how this tab runs each one. A new kind adds ``"kind": {"task": Task(runner)}``; a runner takes a
``Request`` and returns a ``Result``. ``ENERGIES`` does the same for the disagreement map. Models whose
kind has no applicable task are not offered.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import gradio as gr
import plotly.graph_objects as go
import torch
from PIL import Image
from torch import Tensor

from .. import checks
from ..device import module_device
from ..errors import SamplingError
from ..viz import energy_figure, latent_shift_figure, pixel_map, saliency_overlay, to_uint8
from . import gpu, limits
from .common import cached_model, user_errors
from .inputs import (LETIT_TASKS, chain_tasks, checkpoint_config, is_translation, local_kinds, model_input, task_choices,
                     translation_domains)
from .masks import preset_mask

DISPLAY = 192  # every image is shown enlarged (nearest neighbour) to this size
MAX_SEED = limits.MAX_SEED
MASKS = ["centre square", "left half", "random strokes"]
ENDS_ONLY = 10**9  # record_every large enough that a chain keeps only its first and last frames


# -- tasks ---------------------------------------------------------------------------------------


@dataclass
class Request:
    """What the user asked for; ``image()`` reads the example or upload only for tasks that use one."""

    name: str
    kind: str
    task: str
    model: Any
    config: dict
    seed: int
    index: Any = 0
    upload: Any = None
    mask: str = MASKS[0]

    @property
    def domains(self) -> tuple[str, str] | None:
        return translation_domains(self.kind, self.config, self.task) if self.task.startswith("translate") else None

    def image(self) -> tuple[Tensor, str, list[str]]:
        return model_input(self.config, self.index, self.upload, self.domains[0] if self.domains else None)

    @property
    def size(self) -> int:
        return int(self.config.get("image_size") or self.config["resolution"])


@dataclass
class Result:
    """One chain's input and output [C, H, W] in [-1, 1], its saliency [H, W] in [0, 1], notes and a chart;
    optionally a reference image (LETIT's reconstruction, against which its saliency is measured)."""

    input: Tensor
    output: Tensor
    saliency: Tensor
    notes: list[str]
    figure: go.Figure | None = None
    labels: tuple[str, str] = ("Input", "Output")
    reference: Tensor | None = None
    reference_label: str = ""


@dataclass(frozen=True)
class Task:
    run: Callable[[Request], Result]
    inputs: frozenset = field(default_factory=frozenset)  # "image", "mask": which controls matter


SALIENCY_NOTE = ("Saliency: per-pixel L2 norm over channels of the energy gradients summed along the chain (only the "
                 "parts that could move a pixel count), min-max normalised; bright = where the energy pushed most.")


def _chain_result(req: Request, start: Tensor, out: Tensor, trace, what: str, notes: list[str],
                  labels: tuple[str, str] = ("Input", "Output")) -> Result:
    notes = [*notes, f"{what} {trace.num_steps} Langevin steps in all, seed {req.seed}.", SALIENCY_NOTE]
    figure = energy_figure(trace, f"{req.name}: energy and |grad E| per step")
    return Result(start, out[0].detach().cpu(), trace.saliency()[0], notes, figure, labels)


def _translate(req: Request) -> Result:
    x, source, notes = req.image()
    src, tgt = req.domains
    out, trace = req.model.translate(x, seeds=str(req.seed), progress=True)
    what = (f"Translated {source} from {src} to {tgt} style: the chain starts at the image and descends the "
            f"{tgt} energy,")
    return _chain_result(req, x, out, trace, what, notes, (f"Input ({src})", f"Translation ({tgt})"))


def _masked(x: Tensor, painted) -> Tensor:
    shown = x.clone()
    shown[:, torch.from_numpy(painted)] = 0.0  # grey marks the hole
    return shown


def _inpaint(req: Request) -> Result:
    x, source, notes = req.image()
    if req.mask not in MASKS:
        raise SamplingError(f"Mask must be one of: {', '.join(MASKS)}; got {req.mask!r}.")
    painted = preset_mask(req.mask, req.size, req.seed)
    known = torch.from_numpy(~painted).float()
    kwargs = {"progress": True} if req.kind in ("cdrl", "drl") else {}
    out, trace = req.model.inpaint(x, known, seeds=str(req.seed), **kwargs)
    what = (f"Inpainted the {req.mask} ({int(painted.sum())} of {painted.size} pixels) of {source}; known pixels are "
            "kept, so their saliency is 0;")
    return _chain_result(req, _masked(x, painted), out, trace, what, notes, ("Masked input", "Completion"))


def _generate(req: Request) -> Result:
    if req.kind in ("cdrl", "drl"):
        out, trace = req.model.generate(classes=None, seeds=str(req.seed), record_every=ENDS_ONLY, progress=True)
        what = ("Unconditional sample through every noise level, starting at the top level's proposal (shown as the "
                "input); saliency is summed over the levels:")
        labels = ("Chain start (top-level proposal)", "Sample")
    else:
        out, trace = req.model.generate(seeds=str(req.seed), record_every=ENDS_ONLY, progress=True)
        what = "Unconditional sample: the chain starts at uniform noise (shown as the input),"
        labels = ("Chain start (noise)", "Sample")
    return _chain_result(req, trace.frames[0][0], out, trace, what, [], labels)


def _letit_translate(req: Request) -> Result:
    x, source, notes = req.image()
    src, tgt = req.domains
    r = req.model.translate(x, LETIT_TASKS[req.task], seeds=str(req.seed), progress=True)
    out, rec = r.outputs[0], r.reconstructions[0]
    from ..metrics import psnr

    rec_psnr = float(psnr(rec[None], x[None].to(rec)))
    shift = r.latent_shift[0]
    per_location = r.shift_map()[0] if shift.dim() == 3 else None
    figure = latent_shift_figure(r.shift_per_channel()[0], per_location,
                                 f"{req.name}: latent shift along the {src} -> {tgt} chain")
    latent = "x".join(map(str, shift.shape))
    notes = [*notes,
             f"Translated {source} from {src} to {tgt} style with LETIT: the image is encoded to a {latent} latent, "
             f"{r.steps} Langevin steps (step size {r.step_size:g}, noise {r.noise:g}, seed {req.seed}) run under the "
             f"{tgt} latent EBM, and the end of the chain is decoded.",
             "Saliency: per-pixel L2 norm over channels of the decoded difference |Dec(z_T) - Dec(z_0)|, the translation "
             "minus the autoencoder's reconstruction (so reconstruction error does not count), min-max normalised. "
             f"The chart shows the latent shift sum_t |z_(t+1) - z_t| (total {float(shift.sum()):.4g}).",
             f"Reconstruction PSNR {rec_psnr:.2f} dB: what the autoencoder alone makes of the image, the ceiling of "
             "every translation."]
    if float((out - rec).abs().max()) == 0.0:
        notes.append("The chain did not change the decoded image, so the saliency map is empty.")
    return Result(x, out, pixel_map(out - rec), notes, figure, (f"Input ({src})", f"Translation ({tgt})"),
                  rec, "Reconstruction Dec(Enc(x))")


_CHAIN_TASKS = {"generate": Task(_generate), "inpaint": Task(_inpaint, frozenset({"image", "mask"}))}
TASKS: dict[str, dict[str, Task]] = {
    "cfebm": {"translate": Task(_translate, frozenset({"image"})), **_CHAIN_TASKS},
    "cdrl": dict(_CHAIN_TASKS),
    "drl": dict(_CHAIN_TASKS),
    "letit": {task: Task(_letit_translate, frozenset({"image"})) for task in LETIT_TASKS},
}


# -- energies for the disagreement map ----------------------------------------------------------------


@dataclass(frozen=True)
class Energy:
    """How one kind scores an image: ``fn(model, config, x [B, C, H, W]) -> [B]`` through public methods,
    the input domain (an emoji style, or None for the model's own data) and a phrase for the notes."""

    fn: Callable[[Any, dict, Tensor], Tensor]
    source: Callable[[dict], str | None] = lambda config: None  # noqa: E731
    describe: Callable[[dict], str] = lambda config: ""  # noqa: E731
    applies: Callable[[dict], bool] = lambda config: True  # noqa: E731


def _cdrl_energy(model, config: dict, x: Tensor) -> Tensor:
    """The marginal energy of the clean image at the lowest noise level (CDRL's public ``image_energy``)."""
    return model.image_energy(x)


def _letit_direction(config: dict) -> str:
    """The direction whose energy scores images: t2g when trained (the cfebm-emoji-t2g direction), else g2t."""
    return next(d for t, d in LETIT_TASKS.items() if d in (config.get("directions") or {}))


def _letit_domains(config: dict) -> tuple[str, str]:
    return translation_domains("letit", config, next(t for t, d in LETIT_TASKS.items() if d == _letit_direction(config)))


ENERGIES: dict[str, Energy] = {
    "cfebm": Energy(lambda model, config, x: model.energy(x),
                    source=lambda c: (c.get("source_domain") or "twitter") if is_translation(c) else None,
                    describe=lambda c: f" (the energy of {c['target_domain']}-style images)" if is_translation(c) else ""),
    "cdrl": Energy(_cdrl_energy, describe=lambda c: " at the lowest noise level"),
    "drl": Energy(_cdrl_energy, describe=lambda c: " at the lowest noise level"),
    # Pixels reach a latent EBM through the encoder: E(Enc(x)), differentiated with respect to x.
    "letit": Energy(lambda model, config, x: model.energy(model.encode(x), _letit_direction(config)),
                    source=lambda c: _letit_domains(c)[0],
                    describe=lambda c: (f" (the {_letit_domains(c)[1]} latent energy of the encoded image, "
                                        f"E_{_letit_direction(c)}(Enc(x)))"),
                    applies=lambda c: bool(set(c.get("directions") or {}) & set(LETIT_TASKS.values()))),
}


def tasks_for_config(kind: str, config: dict) -> list[str]:
    return [t for t in chain_tasks(kind, config) if t in TASKS.get(kind, {})]


def saliency_tasks(name: str) -> list[str]:
    """The saliency-capable tasks of a local checkpoint (empty when it has none)."""
    return tasks_for_config(*checkpoint_config(name))


def saliency_models() -> list[str]:
    return [n for n, (kind, cfg) in local_kinds().items() if tasks_for_config(kind, cfg)]


def disagreement_models() -> list[str]:
    return [n for n, (kind, cfg) in local_kinds().items() if kind in ENERGIES and ENERGIES[kind].applies(cfg)]


def available() -> bool:
    return bool(saliency_models() or disagreement_models())


# -- argument checks and display -------------------------------------------------------------------


def _seed(value) -> int:
    return limits.seed(value, error=SamplingError)


def _opacity(value) -> float:
    # checks.number refuses booleans, NaN and ints beyond float range (10**400 overflows float()).
    return checks.number("Opacity", value, 0.0, 1.0)


def _big(image: Tensor | Image.Image) -> Image.Image:
    img = image if isinstance(image, Image.Image) else Image.fromarray(to_uint8(image[None])[0])
    return img.resize((DISPLAY, DISPLAY), Image.NEAREST)


def _overlay(image: Tensor, saliency: Tensor, opacity: float) -> Image.Image:
    return _big(saliency_overlay(image, saliency, opacity))


# -- generative saliency -----------------------------------------------------------------------------


def compute(name: str, task: str, index=0, upload=None, mask: str = MASKS[0], seed=0) -> Result:
    """Run the task's chain once (recording its Trace) and return its saliency."""
    names = saliency_models()
    if name not in names:
        raise SamplingError(f"Model '{name}' has no saliency view. Choose one of: {', '.join(names) or 'none'}.")
    kind, config = checkpoint_config(name)
    tasks = tasks_for_config(kind, config)
    if task not in tasks:
        raise SamplingError(f"{name} supports {', '.join(tasks)}, not '{task}'.")
    req = Request(name, kind, task, cached_model(name), config, _seed(seed), index, upload, mask)
    return TASKS[kind][task].run(req)


# One chain of up to 200 steps (LETIT, CF-EBM or CDRL, whichever costs most per step)
@gpu.on_gpu(limits.MAX_STEPS * max(gpu.LETIT_STEP, gpu.PIXEL_STEP_64, gpu.CDRL_SAMPLE_STEP))
@user_errors
def saliency(name: str, task: str, index, upload, mask: str, seed, opacity, progress=gr.Progress(track_tqdm=True)):
    """State, input, output, reference, saliency over the input and over the output, chart and notes."""
    alpha = _opacity(opacity)
    res = compute(name, task, index, upload, mask, seed)
    state = {"input": res.input, "output": res.output, "saliency": res.saliency}
    ref = res.reference
    return (state, gr.Image(_big(res.input), label=res.labels[0]), gr.Image(_big(res.output), label=res.labels[1]),
            gr.Image(None if ref is None else _big(ref), label=res.reference_label or "Reference", visible=ref is not None),
            *rerender(state, alpha), gr.Plot(res.figure, visible=res.figure is not None), "\n\n".join(res.notes))


@user_errors
def rerender(state: dict | None, opacity):
    """Re-blend the stored saliency at a new opacity (no chain is run)."""
    if not state:
        raise SamplingError("Run a chain first: the opacity applies to its saliency map.")
    alpha = _opacity(opacity)
    return _overlay(state["input"], state["saliency"], alpha), _overlay(state["output"], state["saliency"], alpha)


# -- disagreement ------------------------------------------------------------------------------------


def energy_gradient(model, kind: str, config: dict, image: Tensor) -> tuple[float, Tensor]:
    """E(x) and grad_x E(x) [C, H, W] for one image [C, H, W], through the model's public energy."""
    if kind not in ENERGIES:
        raise SamplingError(f"Models of kind '{kind}' have no disagreement map.")
    # Gradients with respect to the image only; the parameters stay as they are (and get no .grad).
    with torch.inference_mode(False), torch.enable_grad():
        x = image[None].detach().float().to(module_device(model)).clone().requires_grad_(True)
        energy = ENERGIES[kind].fn(model, config, x)
        (grad,) = torch.autograd.grad(energy.sum(), x)
    if not (torch.isfinite(energy).all() and torch.isfinite(grad).all()):
        raise SamplingError("The energy or its gradient is not finite for this image.")
    return float(energy.detach()[0]), grad[0].detach().cpu()


def disagreement_map(model, kind: str, config: dict, image: Tensor) -> tuple[Tensor, Tensor, float]:
    """(|grad E(x)| per pixel [H, W] (L2 over channels), the same min-max normalised to [0, 1], E(x))."""
    energy, grad = energy_gradient(model, kind, config, image)
    return grad.pow(2).sum(0).sqrt(), pixel_map(grad), energy


@gpu.on_gpu(0)  # one energy gradient
@user_errors
def disagreement(name: str, index, upload, opacity):
    """State, the image and |grad E(x)| over it, and notes."""
    alpha = _opacity(opacity)
    names = disagreement_models()
    if name not in names:
        raise SamplingError(f"Model '{name}' has no disagreement map. Choose one of: {', '.join(names) or 'none'}.")
    kind, config = checkpoint_config(name)
    spec = ENERGIES[kind]
    x, source, notes = model_input(config, index, upload, spec.source(config))
    raw, shown, energy = disagreement_map(cached_model(name), kind, config, x)
    notes += [f"Image: {source}. Energy under {name}{spec.describe(config)}: E(x) = {energy:.4g}.",
              f"Map: |grad_x E(x)| per pixel (L2 over channels), min-max normalised; raw values from {float(raw.min()):.3g} "
              f"to {float(raw.max()):.3g}. Bright = where a small change lowers the energy most, i.e. where the model "
              "disagrees with the image. Deterministic: no seed, no sampling."]
    state = {"image": x, "map": shown}
    return state, _big(x), _overlay(x, shown, alpha), "\n\n".join(notes)


@user_errors
def rerender_disagreement(state: dict | None, opacity):
    if not state:
        raise SamplingError("Compute a map first: the opacity applies to it.")
    return _overlay(state["image"], state["map"], _opacity(opacity))


# -- layout ----------------------------------------------------------------------------------------


def _task_controls(name: str, task: str | None = None):
    """The task list of the chosen model, and which input controls the chosen task uses."""
    names = saliency_models()
    if name not in names:
        raise SamplingError(f"Model '{name}' has no saliency view. Choose one of: {', '.join(names) or 'none'}.")
    kind, config = checkpoint_config(name)
    tasks = tasks_for_config(kind, config)
    task = task if task in tasks else tasks[0]
    uses = TASKS[kind][task].inputs
    image = gr.update(visible="image" in uses)
    return (gr.update(choices=task_choices(kind, config, tasks), value=task), image, image,
            gr.update(visible="mask" in uses))


def build() -> dict:
    names, d_names = saliency_models(), disagreement_models()
    gr.Markdown("Energy-based models explain themselves: every output is the end of a chain that descends an energy, "
                "and each step's gradient says which pixels the model wanted to change. **Generative saliency** sums "
                "those gradients along the chain (LETIT, which moves a latent code, shows the decoded change and the "
                "latent shift instead); no chain is re-run to draw it, the opacity slider only re-blends. "
                "**Disagreement** shows |grad E(x)| of a single image under a model.")
    out = {}
    with gr.Tabs():
        if names:
            with gr.Tab("Generative saliency"):
                state = gr.State()
                kind, config = checkpoint_config(names[0])
                tasks = tasks_for_config(kind, config)
                uses = TASKS[kind][tasks[0]].inputs
                with gr.Row():
                    with gr.Column(scale=1):
                        model = gr.Dropdown(names, value=names[0], label="Model", elem_id="saliency-model")
                        # Tasks differ per model; the API must accept every model's tasks, so the list is not a
                        # closed set of choices (a Radio would check API calls against its first model's list):
                        # compute() says which tasks a model supports.
                        task = gr.Dropdown(task_choices(kind, config, tasks), value=tasks[0], label="Task",
                                           allow_custom_value=True, elem_id="saliency-task")
                        index = gr.Number(value=0, precision=0, minimum=0, label="Held-out example (test-split index)",
                                          visible="image" in uses, elem_id="saliency-index")
                        upload = gr.Image(type="filepath", image_mode=None, label="Or upload an image (used instead of the index)",
                                          visible="image" in uses, elem_id="saliency-upload")
                        mask = gr.Radio(MASKS, value=MASKS[0], label="Region to inpaint", visible="mask" in uses)
                        seed = gr.Number(value=0, precision=0, label="Seed")
                        go_run = gr.Button("Run and show saliency", variant="primary")
                        opacity = gr.Slider(0, 1, value=0.6, step=0.05, label="Heatmap opacity", elem_id="saliency-opacity")
                        note = gr.Markdown(elem_id="saliency-note")
                    with gr.Column(scale=2):
                        with gr.Row():
                            shown_in = gr.Image(label="Input", format="png", type="pil", elem_id="saliency-input")
                            shown_out = gr.Image(label="Output", format="png", type="pil", elem_id="saliency-output")
                            shown_ref = gr.Image(label="Reference", format="png", type="pil", visible=False)
                        with gr.Row():
                            over_in = gr.Image(label="Saliency over the input", format="png", type="pil",
                                               elem_id="saliency-input-overlay")
                            over_out = gr.Image(label="Saliency over the output", format="png", type="pil",
                                                elem_id="saliency-output-overlay")
                        chart = gr.Plot(label="Energy per step")
                model.change(user_errors(_task_controls), model, [task, index, upload, mask], api_visibility="private")
                task.change(user_errors(_task_controls), [model, task], [task, index, upload, mask], api_visibility="private")
                go_run.click(saliency, [model, task, index, upload, mask, seed, opacity],
                             [state, shown_in, shown_out, shown_ref, over_in, over_out, chart, note], api_name="saliency")
                opacity.release(rerender, [state, opacity], [over_in, over_out], api_name="saliency_opacity")
                out["saliency"] = {"state": state, "outputs": [over_in, over_out]}
        if d_names:
            with gr.Tab("Where the model disagrees"):
                d_state = gr.State()
                with gr.Row():
                    with gr.Column(scale=1):
                        d_model = gr.Dropdown(d_names, value=d_names[0], label="Model")
                        d_index = gr.Number(value=0, precision=0, minimum=0, label="Held-out example (test-split index)")
                        d_upload = gr.Image(type="filepath", image_mode=None, label="Or upload an image")
                        go_dis = gr.Button("Show |grad E(x)|", variant="primary")
                        d_opacity = gr.Slider(0, 1, value=0.6, step=0.05, label="Heatmap opacity",
                                              elem_id="disagreement-opacity")
                        d_note = gr.Markdown(elem_id="disagreement-note")
                    with gr.Column(scale=2):
                        with gr.Row():
                            d_image = gr.Image(label="Image (as the model sees it)", format="png", type="pil")
                            d_over = gr.Image(label="|grad E(x)| over the image", format="png", type="pil",
                                              elem_id="disagreement-overlay")
                go_dis.click(disagreement, [d_model, d_index, d_upload, d_opacity], [d_state, d_image, d_over, d_note],
                             api_name="disagreement")
                d_opacity.release(rerender_disagreement, [d_state, d_opacity], d_over, api_name="disagreement_opacity")
                out["disagreement"] = {"state": d_state, "outputs": [d_over]}
    return out
