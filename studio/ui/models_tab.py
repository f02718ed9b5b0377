"""Tab "Models": every loadable checkpoint and its model card.

Cards are written for the Hub, where a relative image link (``../../assets/x.svg``) resolves next to the
card. In the app the page's own URL is the base, so such images are embedded as data URIs instead (only
files inside the repository's ``assets/`` folder, which is public anyway). The table is plain markdown so
every model and every description shows in full, without an inner scroll.
"""
from __future__ import annotations

import base64
import re
from pathlib import Path

import gradio as gr

from ..errors import CheckpointError
from ..hub import checkpoints_dir, read_card
from ..paths import assets_dir
from ..registry import list_models
from .common import user_errors

ASSETS = assets_dir()
IMAGE_TYPES = {".svg": "image/svg+xml", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif"}
_IMAGE_LINK = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")


def _embedded(card_dir: Path, match: re.Match) -> str:
    alt, target = match.group(1), match.group(2)
    if re.match(r"^[a-z]+:", target):  # http(s):, data:: already absolute
        return match.group(0)
    path = (card_dir / target).resolve()
    mime = IMAGE_TYPES.get(path.suffix.lower())
    if mime is None or not path.is_file() or ASSETS not in path.parents:
        return f"*(image not available here: {alt or target})*"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{alt}" src="data:{mime};base64,{data}" style="max-width: 100%;">'


def card_markdown(name: str, body: str, card_dir: Path) -> str:
    """The card body as the app shows it: titled with the model's name, its asset images embedded."""
    body = re.sub(r"\A\s*# [^\n]*", f"# {name}", body, count=1) if re.match(r"\A\s*# ", body) else f"# {name}\n\n{body}"
    return _IMAGE_LINK.sub(lambda m: _embedded(card_dir, m), body)


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
    return card_markdown(name, body, card.parent)


def models_table() -> list[list[str]]:
    return [[name, desc] for name, desc in list_models().items()]


def table_markdown(rows: list[list[str]]) -> str:
    cell = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| name | description |", "|---|---|", *(f"| `{cell(n)}` | {cell(d)} |" for n, d in rows)]
    return f"**Available models** ({len(rows)})\n\n" + "\n".join(lines)


def build() -> dict:
    names = list(list_models())
    gr.Markdown(table_markdown(models_table()), elem_id="models-table")
    choice = gr.Dropdown(names, value=names[0] if names else None, label="Model card", elem_id="models-card-choice")
    card = gr.Markdown(show_card(names[0]) if names else "No checkpoints found.", elem_id="model-card")
    choice.change(show_card, choice, card, api_name="model_card")
    return {"choice": choice}
