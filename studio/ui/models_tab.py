"""Tab "Models": every loadable checkpoint and its model card."""
from __future__ import annotations

import gradio as gr

from ..errors import CheckpointError
from ..hub import checkpoints_dir, read_card
from ..registry import list_models
from .common import user_errors


@user_errors
def show_card(name: str) -> str:
    """The model card body of a local checkpoint (the Hub ones are fetched on load)."""
    models = list_models()
    if not isinstance(name, str) or name not in models:
        raise CheckpointError(f"Unknown model '{name}'. Known: {', '.join(models)}.")
    card = checkpoints_dir() / name / "README.md"
    if not card.exists():
        return f"**{name}**: {models[name]}\n\nThis model is not in `checkpoints/`; it is fetched from the Hub when loaded."
    _, body = read_card(card)
    return body


def models_table() -> list[list[str]]:
    return [[name, desc] for name, desc in list_models().items()]


def build() -> None:
    names = list(list_models())
    gr.Dataframe(value=models_table(), headers=["name", "description"], interactive=False, label="Available models")
    choice = gr.Dropdown(names, value=names[0] if names else None, label="Model card")
    card = gr.Markdown(show_card(names[0]) if names else "No checkpoints found.")
    choice.change(show_card, choice, card, api_name="model_card")
