"""Tab "Saliency": which pixels the energy pushed along a chain, and where a model disagrees with an image.

* Generative saliency (CF-EBM, section 6): the per-pixel L2 norm over channels of sum_t grad E(x_t) along
  the chain that made the output, min-max normalised. It is read from the sampler's Trace
  (``SampleOutput.saliency``), so no chain is run again to draw it; the opacity slider only re-blends the stored
  map (``gr.State``).
* A method whose chain moves a latent code instead of pixels gives its own per-pixel map (LETIT: the decoded
  difference |Dec(z_T) - Dec(z_0)|, the translation minus the autoencoder's own reconstruction, so reconstruction
  error does not count), shown with the latent shift sum_t |z_(t+1) - z_t| per channel and per location and the
  reconstruction it is measured against (``SampleOutput.extras``).
* Disagreement: |grad_x E(x)| per pixel for one image under a model's ``image_energy`` (``studio.saliency``), i.e.
  where a small change would lower the energy most.

The tab asks each checkpoint what it offers (``studio.protocol``: its kind's ``task_specs`` and
``image_energy_spec``, read from config.json without weights): tasks with ``saliency`` set, among the chain tasks
this tab can start (``inputs.chain_tasks``), and models with an image-space energy. A new kind needs no edit here.
"""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import plotly.graph_objects as go
import torch
from PIL import Image
from torch import Tensor

from .. import checks
from ..errors import SamplingError
from ..protocol import TaskSpec
from ..saliency import disagreement_map
from ..viz import energy_figure, latent_shift_figure, saliency_overlay, to_uint8
from . import gpu, limits
from .common import cached_model, user_errors
from .inputs import Offer, chain_tasks, local_offers, model_input, offer, task_choices
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
    offered: Offer
    spec: TaskSpec
    model: object
    seed: int
    index: object = 0
    upload: object = None
    mask: str = MASKS[0]

    def image(self) -> tuple[Tensor, str, list[str]]:
        return model_input(self.offered.raw, self.index, self.upload, self.spec.domains[0] if self.spec.domains else None)

    @property
    def size(self) -> int:
        return int(self.offered.raw.get("image_size") or self.offered.raw["resolution"])


@dataclass
class Result:
    """One chain's input and output [C, H, W] in [-1, 1], its saliency [H, W] in [0, 1], notes and a chart;
    optionally a reference image (a latent method's reconstruction, against which its saliency is measured)."""

    input: Tensor
    output: Tensor
    saliency: Tensor
    notes: list[str]
    figure: go.Figure | None = None
    labels: tuple[str, str] = ("Input", "Output")
    reference: Tensor | None = None
    reference_label: str = ""


SALIENCY_NOTE = ("Saliency: per-pixel L2 norm over channels of the energy gradients summed along the chain (only the "
                 "parts that could move a pixel count), min-max normalised; bright = where the energy pushed most.")


def _sentence(head: str, detail: str) -> str:
    detail = detail.strip().rstrip(".")
    return f"{head}: {detail}." if detail else f"{head}."


def _result(req: Request, start: Tensor, out, what: str, notes: list[str], labels: tuple[str, str]) -> Result:
    """A Result from the chain's ``SampleOutput``: the Trace's summed gradients, or the method's own map (with its
    reference image and latent shift, and its notes in place of the Trace's)."""
    trace, extras = out.trace, out.extras
    if extras.get("saliency") is None:
        notes = [*notes, _sentence(what, f"{req.spec.describe + ', ' if req.spec.describe else ''}"
                                         f"{trace.num_steps} Langevin steps in all, seed {req.seed}"), SALIENCY_NOTE]
        figure = energy_figure(trace, f"{req.name}: energy and |grad E| per step")
        return Result(start, out.images[0].detach().cpu(), out.saliency()[0], notes, figure, labels)
    notes = [*notes, _sentence(what, out.notes[0] if out.notes else req.spec.describe), *out.notes[1:]]
    reference = extras.get("reconstructions")
    output = out.images[0].detach().cpu()
    figure = None
    if extras.get("latent_shift") is not None:
        shift = extras["latent_shift"][0]
        per_channel, per_location = (shift.sum((1, 2)), shift.sum(0)) if shift.dim() == 3 else (shift, None)
        src, tgt = req.spec.domains or ("", "")
        figure = latent_shift_figure(per_channel, per_location, f"{req.name}: latent shift along the {src} -> {tgt} chain"
                                     if src else f"{req.name}: latent shift along the chain")
    if reference is not None:
        from ..metrics import psnr

        reference = reference[0].detach().cpu()
        notes.append(f"Reconstruction PSNR {float(psnr(reference[None], start[None].to(reference))):.2f} dB: what the "
                     "model makes of the image without the chain, the ceiling of every translation.")
        if float((output - reference).abs().max()) == 0.0:
            notes.append("The chain did not change the decoded image, so the saliency map is empty.")
    return Result(start, output, out.saliency()[0], notes, figure, labels, reference,
                  "Reconstruction (no chain)" if reference is not None else "")


def _translate(req: Request) -> Result:
    x, source, notes = req.image()
    src, tgt = req.spec.domains
    out = req.model.run(req.spec.name, image=x, seeds=str(req.seed), progress=True)
    what = f"Translated {source} from {src} to {tgt} style with {req.offered.title}"
    return _result(req, x, out, what, notes, (f"Input ({src})", f"Translation ({tgt})"))


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
    out = req.model.run(req.spec.name, image=x, mask=known, seeds=str(req.seed), progress=True)
    what = (f"Inpainted the {req.mask} ({int(painted.sum())} of {painted.size} pixels) of {source}; known pixels are "
            "kept, so their saliency is 0")
    return _result(req, _masked(x, painted), out, what, notes, ("Masked input", "Completion"))


def _generate(req: Request) -> Result:
    out = req.model.run(req.spec.name, seeds=str(req.seed), record_every=ENDS_ONLY, progress=True)
    what = "Unconditional sample (the chain's start is shown as the input)"
    return _result(req, out.trace.frames[0][0], out, what, [], ("Chain start", "Sample"))


# How this tab runs each task family (which ones a model offers comes from the model).
RUNNERS = {"generate": _generate, "inpaint": _inpaint, "translate": _translate}


def saliency_tasks_of(offered: Offer) -> list[TaskSpec]:
    """A checkpoint's tasks this tab shows: chain tasks it can start whose output has a per-pixel saliency."""
    return [t for t in chain_tasks(offered) if t.saliency and t.task in RUNNERS]


def saliency_tasks(name: str) -> list[str]:
    """The saliency-capable task names of a local checkpoint (empty when it has none)."""
    return [t.name for t in saliency_tasks_of(offer(name))]


def saliency_models() -> list[str]:
    return [n for n, offered in local_offers().items() if saliency_tasks_of(offered)]


def disagreement_models() -> list[str]:
    """Local checkpoints with an image-space energy (``image_energy_spec`` is not None)."""
    return [n for n, offered in local_offers().items() if offered.energy is not None]


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
    offered = offer(name)
    tasks = saliency_tasks_of(offered)
    spec = next((t for t in tasks if t.name == task), None)
    if spec is None:
        raise SamplingError(f"{name} supports {', '.join(t.name for t in tasks)}, not '{task}'.")
    req = Request(name, offered, spec, cached_model(name), _seed(seed), index, upload, mask)
    return RUNNERS[spec.task](req)


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


@gpu.on_gpu(0)  # one energy gradient
@user_errors
def disagreement(name: str, index, upload, opacity):
    """State, the image and |grad E(x)| over it, and notes."""
    alpha = _opacity(opacity)
    names = disagreement_models()
    if name not in names:
        raise SamplingError(f"Model '{name}' has no disagreement map. Choose one of: {', '.join(names) or 'none'}.")
    spec = offer(name).energy
    x, source, notes = model_input(offer(name).raw, index, upload, spec.source)
    raw, shown, energy = disagreement_map(cached_model(name), x)
    notes += [f"Image: {source}. Energy under {name}{spec.describe}: E(x) = {energy:.4g}.",
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
    tasks = saliency_tasks_of(offer(name))
    spec = next((t for t in tasks if t.name == task), tasks[0])
    image = gr.update(visible="image" in spec.inputs)
    return (gr.update(choices=task_choices(tasks), value=spec.name), image, image, gr.update(visible="mask" in spec.inputs))


def build() -> dict:
    names, d_names = saliency_models(), disagreement_models()
    gr.Markdown("Energy-based models explain themselves: every output is the end of a chain that descends an energy, "
                "and each step's gradient says which pixels the model wanted to change. **Generative saliency** sums "
                "those gradients along the chain (a model that moves a latent code, such as LETIT, shows the decoded change "
                "and the latent shift instead); no chain is re-run to draw it, the opacity slider only re-blends. "
                "**Disagreement** shows |grad E(x)| of a single image under a model.")
    out = {}
    with gr.Tabs():
        if names:
            with gr.Tab("Generative saliency"):
                state = gr.State()
                tasks = saliency_tasks_of(offer(names[0]))
                uses = tasks[0].inputs
                with gr.Row():
                    with gr.Column(scale=1):
                        model = gr.Dropdown(names, value=names[0], label="Model", elem_id="saliency-model")
                        # Tasks differ per model; the API must accept every model's tasks, so the list is not a
                        # closed set of choices (a Radio would check API calls against its first model's list):
                        # compute() says which tasks a model supports.
                        task = gr.Dropdown(task_choices(tasks), value=tasks[0].name, label="Task",
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
