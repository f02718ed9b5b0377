"""The Gradio app: one module per tab, each exposing ``build()``."""
from __future__ import annotations

import gradio as gr

from . import cdrl_tab, cfebm_tab, coopflow_tab, egc_tab, inpaint_tab, models_tab, nerf_tab, playground, saliency_tab, trajectory_tab, translate_tab
from . import compose_tab
from . import lab_tab
from . import hardening
from .common import device_notice

# Method tabs appear only when their checkpoint is present, so there is never an empty tab.
TABS = [("CDRL", cdrl_tab), ("Compose", compose_tab), ("CF-EBM", cfebm_tab), ("Inpaint", inpaint_tab), ("Trajectory", trajectory_tab),
        ("Saliency", saliency_tab), ("Translate", translate_tab), ("CoopFlow", coopflow_tab), ("EGC", egc_tab), ("3D (NeRF-LEBM)", nerf_tab), ("Langevin playground", playground), ("Energy lab", lab_tab), ("Models", models_tab)]

# Page-wide style (Gradio 6 takes CSS at launch; build_app makes it the default of every launch):
# small images are enlarged without blurring, a bar warning stands out from the notes around it, and the
# CDRL request's bar shows its own elapsed time and ETA (studio.ui.progress) in place of Gradio's counter,
# which restarts at every streamed preview.
STYLE = """
.pixelated img, img.pixelated { image-rendering: pixelated; }
.bar-warning { border-left: 4px solid #d97706; padding: 2px 0 2px 10px; }
#cdrl-grid .progress-text { display: none; }
"""

# Sampling is CPU-bound: a couple of concurrent jobs per event, a bounded queue (app.py sizes threads by it).
QUEUE = {"default_concurrency_limit": 2, "max_size": 32}


def build_app() -> gr.Blocks:
    with gr.Blocks(title="EBM Studio", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(f"# EBM Studio\nEnergy-based generative models you can run, inspect and compare. {device_notice()}")
        built = {}
        with gr.Tabs() as tabs:
            for title, module in TABS:
                if hasattr(module, "available") and not module.available():
                    continue
                with gr.Tab(title, id=title):
                    built[title] = module.build()
        _link_tabs(built, tabs)
        _link_cards(demo, built.get("Models"), tabs)
    demo.queue(**QUEUE)
    _style(demo)
    hardening.harden(demo)  # clear errors for malformed API values, upload caps, atomic output cache
    return demo


def _style(demo: gr.Blocks) -> None:
    launch = demo.launch

    def launch_with_style(*args, **kwargs):
        kwargs["css"] = STYLE + (kwargs.get("css") or "")
        return launch(*args, **kwargs)

    demo.launch = launch_with_style


def _link_cards(demo: gr.Blocks, models: dict | None, tabs: gr.Tabs) -> None:
    """Every "Model card: NAME" button next to a bar warning opens that card in the Models tab."""
    from .bar_warnings import card_buttons, card_name

    if not models:
        return

    def open_card(label):
        name = card_name(label)
        return gr.Tabs(selected="Models"), (gr.update(value=name) if name else gr.update())

    for button in card_buttons(demo.blocks.values()):
        button.click(open_card, button, [tabs, models["choice"]], api_visibility="private")


def _link_tabs(built: dict, tabs: gr.Tabs) -> None:
    """Cross-tab links: Inpaint's "show the chain" and Compose's "record chain" open the recorded chain in Trajectory."""
    if built.get("Compose") and built.get("Trajectory"):
        built["Compose"]["show_chain"].click(compose_tab.open_chain, built["Compose"]["inputs"],
                                             [*built["Trajectory"]["outputs"], tabs], api_visibility="private")
    if built.get("Inpaint") and built.get("Trajectory"):
        inpaint, trajectory = built["Inpaint"], built["Trajectory"]
        inpaint["show_chain"].click(trajectory_tab.open_chain, inpaint["inputs"],
                                    [*trajectory["outputs"], *trajectory["controls"], tabs], api_visibility="private")
