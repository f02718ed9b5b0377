"""Tab "EGC": one network classifies (forward pass) and generates (its input gradient is the diffusion epsilon).

Classify an upload or a held-out example (top-5), generate with a class and a guidance scale (DDIM), and
attack the same image with FGSM to compare EGC with the plain evaluator-fmnist classifier.
"""
from __future__ import annotations

import re
import time

import gradio as gr
import torch

from ..egc import fgsm
from ..errors import SamplingError
from ..paths import assets_dir
from ..viz import energy_figure, image_grid
from . import gpu, limits
from .bar_warnings import bar_warning
from .common import cached_model, model_skeleton, user_errors
from .masks import image_for_model

EGC_NAME, EVALUATOR_NAME = "egc-fmnist", "evaluator-fmnist"
EXAMPLES_DIR = assets_dir() / "examples"
UNCONDITIONAL = "(unconditional)"
MAX_SAMPLES = 16


def available() -> bool:
    from ..registry import local_names

    return EGC_NAME in local_names()


def _evaluator_available() -> bool:
    from ..registry import local_names

    return EVALUATOR_NAME in local_names()


def example_names() -> list[str]:
    return sorted(p.stem for p in EXAMPLES_DIR.glob("fmnist-*.png"))


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _example_label(example: str, class_names: list[str]) -> int | None:
    """The true class of a held-out example, read from its file name (fmnist-test-0002-trouser)."""
    for i, name in enumerate(class_names):
        if example.endswith("-" + _slug(name)):
            return i
    return None


def _input(upload, example: str | None) -> tuple[torch.Tensor, int | None, str]:
    """The image to classify as [1, 1, 32, 32] in [-1, 1], its true label when known, and a note."""
    model = cached_model(EGC_NAME)
    c = model.config
    if upload is not None:
        x, notes = image_for_model(upload, c.image_size, c.channels)
        return x[None], None, " ".join(["Uploaded image.", *notes])
    if not example:
        raise SamplingError("Upload an image or pick a held-out example.")
    if example not in example_names():
        raise SamplingError(f"Unknown example '{example}'. Choose one of: {', '.join(example_names())}.")
    from PIL import Image

    x, _ = image_for_model(Image.open(EXAMPLES_DIR / f"{example}.png"), c.image_size, c.channels)
    return x[None], _example_label(example, c.class_names), f"Held-out Fashion-MNIST test example {example}."


def _top5(probs: torch.Tensor, names: list[str]) -> dict[str, float]:
    vals, idx = probs.topk(min(5, len(names)))
    return {names[i]: round(float(v), 4) for v, i in zip(vals.tolist(), idx.tolist())}


@gpu.on_gpu(0)  # one forward pass
@user_errors
def classify(upload, example: str):
    """Top-5 classes with probabilities (EGC's forward pass at t = 0) and the input as the model sees it."""
    model = cached_model(EGC_NAME)
    x, label, note = _input(upload, example)
    probs = model.classify(x)[0]
    truth = f" True class: {model.config.class_names[label]}." if label is not None else ""
    return _top5(probs, model.config.class_names), image_grid(x, scale=6), note + truth


@gpu.on_gpu(MAX_SAMPLES * 200 * gpu.EGC_SAMPLE_STEP)  # up to 200 DDIM steps
@user_errors
def generate(class_name: str, guidance: float, steps: float, first_seed: float, n: float, progress=gr.Progress(track_tqdm=True)):
    """DDIM samples whose epsilon is minus the input gradient of logsumexp (same network), guided by log p(y|x_t)."""
    model = cached_model(EGC_NAME)
    # Checked here (not by int()/float(), which crash on NaN, text or lists): the API can send anything.
    if class_name is not None:  # None (an API call without a class) means unconditional
        limits.choice("class", class_name, [UNCONDITIONAL, *model.config.class_names])
    guidance = limits.number("Guidance scale", guidance, 0, 20)
    steps = limits.integer("DDIM steps", steps, 1, min(200, model.config.num_timesteps))
    seeds, _, _ = limits.seed_range(first_seed, n, MAX_SAMPLES)
    cls = None if class_name in (None, UNCONDITIONAL) else class_name
    start = time.perf_counter()
    x, trace = model.generate(cls, seeds=seeds, guidance=guidance, steps=steps, progress=True)
    secs = time.perf_counter() - start
    summary = [f"Seeds used: {seeds}", f"{len(trace.energies)} DDIM steps, one forward + one backward pass each, {secs:.1f} s",
               f"The same network ({model.num_parameters():,} parameters) classifies above and generated these."]
    if cls is not None and _evaluator_available():
        # An independent judge (not EGC's own head, which guidance pushed towards the class by construction).
        judge = cached_model(EVALUATOR_NAME)
        read = [model.config.class_names[i] for i in judge.predict(x.to(next(judge.parameters()).device)).tolist()]
        hits = sum(r == cls for r in read)
        summary.append(f"evaluator-fmnist reads {hits} of {len(read)} as {cls}: " + ", ".join(read))
    fig = energy_figure(trace, "Free energy -logsumexp f(x_t, t) per DDIM step")
    return image_grid(x, scale=3), fig, "\n".join(summary)


@gpu.on_gpu(0)  # one gradient and two classifications
@user_errors
def attack(upload, example: str, eps: float):
    """FGSM on the same image against each classifier (white-box, its own gradient): perturbed images and top-5s."""
    eps = limits.number("Epsilon (in [-1, 1] units)", eps, 0, 0.5)
    if not _evaluator_available():
        raise SamplingError(f"The comparison needs the {EVALUATOR_NAME} checkpoint, which is not installed.")
    model, judge = cached_model(EGC_NAME), cached_model(EVALUATOR_NAME)
    judge.eval()
    names = model.config.class_names
    x, label, note = _input(upload, example)
    if label is None:
        # No ground truth for an upload: attack the class EGC predicts on the clean image.
        label = int(model.classify(x)[0].argmax())
        note += f" No true class is known, so both attacks push away from EGC's clean prediction ({names[label]})."
    x, y = x.to(model.device), torch.tensor([label], device=model.device)  # both classifiers run on the models' device
    adv_egc = fgsm(lambda z: model.logits(z, 0), x, y, float(eps))
    adv_judge = fgsm(judge, x, y, float(eps))
    p_egc = model.classify(adv_egc)[0]
    with torch.no_grad():
        p_judge = torch.softmax(judge(adv_judge), 1)[0]
    verdict = lambda p: "correct" if int(p.argmax()) == label else f"wrong ({names[int(p.argmax())]})"  # noqa: E731
    text = (f"{note} Attacked class: {names[label]}; epsilon {float(eps):g} in [-1, 1] units.\n"
            f"EGC on its perturbed image: {verdict(p_egc)}. evaluator-fmnist on its perturbed image: {verdict(p_judge)}.")
    return image_grid(adv_egc, scale=6), _top5(p_egc, names), image_grid(adv_judge, scale=6), _top5(p_judge, names), text


def build() -> dict:
    model = model_skeleton(EGC_NAME)  # config and size only: the weights load on the first request
    names = model.config.class_names
    examples = example_names()
    gr.Markdown(
        f"**EGC** (energy-guided classifier/generator): the logits f(x_t, t) of one U-Net are a joint energy over noisy "
        f"images. Its forward pass classifies; the input gradient of logsumexp f is the diffusion epsilon, so the "
        f"**same network** ({model.num_parameters():,} parameters) also generates, and guides itself with log p(y|x_t)."
    )
    with gr.Row():
        with gr.Column(scale=1):
            upload = gr.Image(label="Upload an image (or leave empty and pick an example)", type="numpy", height=200)
            example = gr.Dropdown(examples, value=examples[0] if examples else None, label="Held-out example", elem_id="egc-example")
            go_cls = gr.Button("Classify", variant="primary", elem_id="egc-classify")
        with gr.Column(scale=1):
            seen = gr.Image(label="What the model sees (32x32)", format="png", type="pil", height=200)
            top5 = gr.Label(num_top_classes=5, label="Top-5 classes (EGC forward pass, t = 0)", elem_id="egc-top5")
            cls_note = gr.Textbox(label="Input", lines=2, interactive=False, elem_id="egc-input-note")
    gr.Markdown("### Generate (DDIM, epsilon = -grad logsumexp f, classifier guidance through the same network)")
    with gr.Row():
        with gr.Column(scale=1):
            cls = gr.Dropdown([UNCONDITIONAL, *names], value="Trouser", label="Class")
            scale = gr.Slider(0, 20, value=float(model.config.guidance), step=0.5, label="Guidance scale s")
            steps = gr.Slider(1, 200, value=int(model.config.sample_steps), step=1, label="DDIM steps", elem_id="egc-steps")
            with gr.Row():
                seed = gr.Number(value=0, precision=0, label="First seed")
                n = gr.Slider(1, MAX_SAMPLES, value=8, step=1, label="Samples", elem_id="egc-n")
            go_gen = gr.Button("Generate", variant="primary", elem_id="egc-generate")
            bar_warning(EGC_NAME, "generate")  # issue 26: the card's misses of its generation bars (studio.bars)
            gen_info = gr.Textbox(label="Run summary", lines=4, interactive=False, elem_id="egc-summary")
        with gr.Column(scale=2):
            grid = gr.Image(label="EGC samples", format="png", type="pil", elem_id="egc-grid")
            energy = gr.Plot(label="Energy per step")
    gr.Markdown("### FGSM: the classify input above, attacked through each model's own gradient")
    with gr.Row():
        with gr.Column(scale=1):
            eps = gr.Slider(0, 0.5, value=0.1, step=0.01, label="Epsilon (in [-1, 1] pixel units)", elem_id="egc-eps")
            go_fgsm = gr.Button("Attack", variant="primary", interactive=_evaluator_available(), elem_id="egc-attack")
            fgsm_note = gr.Textbox(label="Result", lines=4, interactive=False, elem_id="egc-fgsm-note")
        with gr.Column(scale=1):
            adv_egc = gr.Image(label="Perturbed for EGC", format="png", type="pil", height=200, elem_id="egc-adv")
            top_egc = gr.Label(num_top_classes=5, label="EGC on it", elem_id="egc-adv-top5")
        with gr.Column(scale=1):
            adv_judge = gr.Image(label="Perturbed for evaluator-fmnist", format="png", type="pil", height=200)
            top_judge = gr.Label(num_top_classes=5, label="evaluator-fmnist on it", elem_id="egc-judge-top5")
    go_cls.click(classify, [upload, example], [top5, seen, cls_note], api_name="egc_classify")
    go_gen.click(generate, [cls, scale, steps, seed, n], [grid, energy, gen_info], api_name="egc_generate")
    go_fgsm.click(attack, [upload, example, eps], [adv_egc, top_egc, adv_judge, top_judge, fgsm_note], api_name="egc_fgsm")
    return {"classify": go_cls, "generate": go_gen, "attack": go_fgsm}
