"""Tab "Compose": CDRL's compositional generation, AND / NOT of concepts (``studio.compose``).

The attribute model (cdrl-fmnist-attributes) takes each attribute as True, False or no control, as in
the thesis's Fig. 5.6; the class model (cdrl-fmnist) takes classes with AND or NOT and a weight each.
Every sample is judged automatically underneath (its attributes, or evaluator-fmnist's class), and any
sample's recorded chain opens in Trajectory.
"""
from __future__ import annotations

import time

import gradio as gr
import torch
from PIL import Image

from ..compose import ATTRIBUTE_GUIDANCE, MAX_GUIDANCE, MAX_WEIGHT, composition
from ..data import fmnist_attributes as fa
from ..errors import SamplingError
from ..viz import energy_figure, to_uint8
from . import gpu, limits
from .bar_warnings import bar_warning
from .common import cached_model, model_config, user_errors

CLASS_MODEL, ATTRIBUTE_MODEL, JUDGE = "cdrl-fmnist", "cdrl-fmnist-attributes", "evaluator-fmnist"
ATTRIBUTE_CHOICES = ["True", "False", "No control"]
ROLES = ["off", "AND", "NOT"]
MAX_SAMPLES = 32  # every step of every chain is recorded for "record chain"
DEFAULT_GUIDANCE = {ATTRIBUTE_MODEL: ATTRIBUTE_GUIDANCE, CLASS_MODEL: 1.0}  # attributes: chosen on held-out seeds
SHOWN = 96  # pixels per sample in the gallery
# ZeroGPU duration: 32 samples, each evaluation through at most 10 concepts plus the unconditional term
# (CDRL_SAMPLE_STEP is a guided step: 2 evaluations), at the composed model's own K (10 for cdrl-fmnist; 15 allowed)
GPU_COST = MAX_SAMPLES * 15 * gpu.CDRL_SAMPLE_STEP * (10 + 1) / 2


def _local() -> set[str]:
    from ..registry import local_names

    return set(local_names())


def available() -> bool:
    return bool({CLASS_MODEL, ATTRIBUTE_MODEL} & _local())


# ----------------------------------------------------------------------------- judging samples


def _judge():
    return cached_model(JUDGE) if JUDGE in _local() else None


def _class_captions(images: torch.Tensor, comp) -> tuple[list[str], str]:
    """evaluator-fmnist's class (and probability) per sample, marked by whether it fits the request."""
    judge = _judge()
    if judge is None:
        return ["" for _ in images], f"Classes not judged: {JUDGE} is not installed."
    with torch.no_grad():
        probs = judge(images).softmax(-1)
    p, cls = probs.max(1)
    names = judge.config.class_names
    wanted = {c.name for c in comp.concepts if c.weight > 0}
    refused = {c.name for c in comp.concepts if c.weight < 0}
    ok = [(not wanted or names[k] in wanted) and names[k] not in refused for k in cls.tolist()]
    captions = [f"{'✓' if good else '✗'} {names[k]} ({q:.0%})" for good, k, q in zip(ok, cls.tolist(), p.tolist())]
    return captions, f"{sum(ok)} of {len(ok)} samples fit the request ({JUDGE}: a class among the ANDs, none of the NOTs)."


def _attribute_captions(model, images: torch.Tensor, asked: dict[str, bool]) -> tuple[list[str], str]:
    """Each sample's judged attribute values, marked by whether every asked value holds."""
    names = list(model.config.attributes)
    judge = _judge()
    if fa.needs_classes(names) and judge is None:
        return ["" for _ in images], f"Attributes not judged: {JUDGE} (which judges {', '.join(n for n in names if fa.ATTRIBUTES[n].by_class)}) is not installed."
    classes = judge.predict(images) if fa.needs_classes(names) else None
    table = fa.judge(names, images, classes, model.config.attribute_thresholds)
    captions, hits = [], 0
    for row in table.tolist():
        good = all(row[names.index(a)] == v for a, v in asked.items())
        hits += good
        values = " · ".join(n if v else f"not {n}" for n, v in zip(names, row))
        captions.append(f"{'✓' if good else '✗'} {values}" if asked else values)
    note = (f"{hits} of {len(captions)} samples have every asked value (judged automatically: "
            + "; ".join(f"{n}: {fa.ATTRIBUTES[n].description}" for n in names) + ").")
    return captions, note


# ----------------------------------------------------------------------------- running


def _gallery(images: torch.Tensor, captions: list[str]) -> list:
    return [(Image.fromarray(a).resize((SHOWN, SHOWN), Image.NEAREST), c) for a, c in zip(to_uint8(images), captions)]


def _run(name: str, concepts, guidance: float, first_seed, n, caption, lead: list[str]):
    """Stream one composition: previews per level, then the judged gallery, energy chart, summary and traces."""
    seeds, first, n = limits.seed_range(first_seed, n, MAX_SAMPLES, seed_name="First seed")
    model = cached_model(name)
    comp = composition(model.config, concepts, guidance)  # every mistake in the request is reported before sampling
    start = time.perf_counter()
    for update in model.compose_stream(concepts, guidance=guidance, seeds=seeds, record_every=1, progress=True):
        if not update.done:
            yield (_gallery(update.images, [update.label] * len(update.images)), None,
                   "\n".join([*lead, f"Seeds used: {seeds}", f"{update.label} of {model.config.num_levels} levels..."]), None, None)
    x, trace, secs = update.images, update.trace, time.perf_counter() - start
    captions, judged = caption(x, comp)
    evals = comp.network_evaluations(model) if comp.concepts else model.network_evaluations()
    summary = [*lead, f"Seeds used: {seeds}", f"Energy sampled: {comp.describe()} (w = {guidance:g})" if comp.concepts else
               "Energy sampled: F = f(x; null) (unconditional)", f"{evals} network evaluations per sample, {secs:.1f} s", judged]
    traces = {"trace": trace, "name": name, "count": len(x), "seeds": [first + i for i in range(len(x))],
              "request": comp.describe() if comp.concepts else "unconditional"}
    figure = energy_figure(trace, "Composed energy per Langevin step (levels 5 -> 0)")
    yield _gallery(x, captions), figure, "\n".join(summary), traces, None


@gpu.on_gpu(GPU_COST)
@user_errors
def compose_attributes(*args, progress=gr.Progress(track_tqdm=True)):
    """Attribute model: one value per attribute (True / False / No control), then guidance, first seed, count."""
    model_names = list(model_config(ATTRIBUTE_MODEL)["attributes"])
    if len(args) != len(model_names) + 3:
        raise SamplingError(f"Give one value per attribute ({', '.join(model_names)}), then guidance, first seed and count.")
    values, (guidance, first_seed, n) = args[: len(model_names)], args[len(model_names):]
    asked = {}
    for attr, value in zip(model_names, values):
        value = limits.choice(f"value for '{attr}'", value, ATTRIBUTE_CHOICES)
        if value != "No control":
            asked[attr] = value == "True"
    guidance = limits.number("Guidance w", guidance, 0, MAX_GUIDANCE)
    lead = [] if asked else ["Every attribute is on 'No control': this is plain unconditional sampling (guidance unused)."]
    model = cached_model(ATTRIBUTE_MODEL)
    yield from _run(ATTRIBUTE_MODEL, asked, guidance, first_seed, n, lambda x, _c: _attribute_captions(model, x, asked), lead)


@gpu.on_gpu(GPU_COST)
@user_errors
def compose_classes(*args, progress=gr.Progress(track_tqdm=True)):
    """Class model: a role per class (off / AND / NOT), a weight per class, then guidance, first seed, count."""
    names = list(model_config(CLASS_MODEL)["class_names"])
    if len(args) != 2 * len(names) + 3:
        raise SamplingError(f"Give a role for each of the {len(names)} classes, then a weight for each, then guidance, "
                            "first seed and count.")
    roles, weights, (guidance, first_seed, n) = args[: len(names)], args[len(names): 2 * len(names)], args[2 * len(names):]
    concepts = []
    for name, role, weight in zip(names, roles, weights):
        role = limits.choice(f"role for '{name}'", role, ROLES)
        if role != "off":
            w = limits.number(f"{name} weight", weight, 0.1, MAX_WEIGHT)
            concepts.append((name, w if role == "AND" else -w))
    guidance = limits.number("Guidance w", guidance, 0, MAX_GUIDANCE)
    lead = [] if concepts else ["No class is AND or NOT: this is plain unconditional sampling (guidance unused)."]
    yield from _run(CLASS_MODEL, concepts, guidance, first_seed, n, _class_captions, lead)


def selected_sample(evt: gr.SelectData) -> int | None:
    return None if evt.index is None else int(evt.index)


@user_errors
def open_chain(traces: dict | None, selected: int | None):
    """"Record chain": the selected sample's recorded chain (every Langevin step, no re-run) in Trajectory."""
    from .trajectory_tab import present

    if not traces:
        raise SamplingError("Compose some samples first.")
    index = 0 if selected is None else int(selected)
    if not 0 <= index < traces["count"]:
        raise SamplingError("Select one of the samples first.")
    note = (f"{traces['name']}: composed chain of sample {index + 1} (seed {traces['seeds'][index]}), recorded by the "
            f"Compose tab under {traces['request']}.")
    return (*present(traces["trace"].select(index), note), gr.Tabs(selected="Trajectory"))


# ----------------------------------------------------------------------------- layout


def _seed_controls(prefix: str, guidance: float):
    w = gr.Slider(0, MAX_GUIDANCE, value=guidance, step=0.1, label="Guidance w", elem_id=f"{prefix}-w")
    with gr.Row():
        seed = gr.Number(value=0, precision=0, label="First seed", elem_id=f"{prefix}-seed")
        n = gr.Slider(1, MAX_SAMPLES, value=8, step=1, label="Samples", elem_id=f"{prefix}-n")
    return w, seed, n


def build() -> dict:
    local = _local()
    gr.Markdown(
        "**Compose** concepts with CDRL (thesis §5.3.6): conditional energies add, so a product of experts is sampled "
        "with every concept at once. With guidance w, M concepts give (w + 1) Σ f(x; c_i) - (M w + M - 1) f(x; null); "
        "a NOT subtracts its guided difference (w + 1) λ [f(x; c) - f(x; null)]. The chain is CDRL's own: 6 noise "
        "levels, each an initializer proposal refined by Langevin steps on the composed energy.")
    outputs_inputs = []
    with gr.Row():
        with gr.Column(scale=1):
            with gr.Tabs():
                if ATTRIBUTE_MODEL in local:
                    attributes = model_config(ATTRIBUTE_MODEL)["attributes"]
                    with gr.Tab("Attributes (cdrl-fmnist-attributes)"):
                        radios = [gr.Radio(ATTRIBUTE_CHOICES, value="No control", label=f"{a}: {fa.ATTRIBUTES[a].description}"
                                           if a in fa.ATTRIBUTES else a, elem_id=f"compose-attr-{a}") for a in attributes]
                        aw, aseed, an = _seed_controls("compose-attr", DEFAULT_GUIDANCE[ATTRIBUTE_MODEL])
                        go_attr = gr.Button("Compose attributes", variant="primary", elem_id="compose-attr-go")
                        bar_warning(ATTRIBUTE_MODEL, "compose")
                    outputs_inputs.append((go_attr, compose_attributes, [*radios, aw, aseed, an], "compose_attributes"))
                if CLASS_MODEL in local:
                    names = model_config(CLASS_MODEL)["class_names"]
                    with gr.Tab("Classes (cdrl-fmnist)"):
                        if ATTRIBUTE_MODEL not in local:
                            gr.Markdown(f"The attribute model ({ATTRIBUTE_MODEL}) is not installed, so only the class model is "
                                        "offered. Train it with `accelerate launch train/cdrl.py --config "
                                        "train/configs/cdrl_fmnist_attributes.yaml`.", elem_id="compose-no-attr-note")
                        roles, weights = [], []
                        for i, name in enumerate(names):
                            with gr.Row(equal_height=True):
                                roles.append(gr.Radio(ROLES, value="off", label=name, scale=2, elem_id=f"compose-role-{i}"))
                                weights.append(gr.Number(value=1.0, minimum=0.1, maximum=MAX_WEIGHT, step=0.1, label=f"{name} weight",
                                                         scale=1, min_width=80, elem_id=f"compose-weight-{i}"))
                        cw, cseed, cn = _seed_controls("compose-cls", DEFAULT_GUIDANCE[CLASS_MODEL])
                        go_cls = gr.Button("Compose classes", variant="primary", elem_id="compose-cls-go")
                        bar_warning(CLASS_MODEL, "compose")
                    outputs_inputs.append((go_cls, compose_classes, [*roles, *weights, cw, cseed, cn], "compose_classes"))
        with gr.Column(scale=2):
            gallery = gr.Gallery(label="Samples, each judged automatically (select one to open its chain)", columns=8,
                                 height=420, format="png", elem_id="compose-gallery")
            show_chain = gr.Button("Record chain: open the selected sample's chain in Trajectory", elem_id="compose-chain")
            summary = gr.Textbox(label="Run summary", lines=5, interactive=False, elem_id="compose-summary")
            energy = gr.Plot(label="Energy per step", elem_id="compose-energy")
    traces, selected = gr.State(), gr.State()
    for button, fn, inputs, api in outputs_inputs:
        button.click(fn, inputs, [gallery, energy, summary, traces, selected], api_name=api)
    gallery.select(selected_sample, None, selected, api_visibility="private")
    return {"show_chain": show_chain, "inputs": [traces, selected]}
