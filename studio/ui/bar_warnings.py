"""A warning next to the button that runs a model which, by its own card, misses a bar it was held to.

The bars are declared in ``studio.bars``; the measured numbers are read from ``checkpoints/<name>/metrics.json``
when the app is built. A model that meets its bars shows nothing. The "Model card" button opens the card
in the Models tab (``studio.ui.build_app`` links it there).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import gradio as gr

from .. import bars

CARD_PREFIX = "Model card: "


def warning_text(name: str, uses: str | Iterable[str]) -> str:
    """Markdown naming every measured miss of ``name`` for ``uses`` (empty when none is missed)."""
    uses = [uses] if isinstance(uses, str) else list(uses)
    missed = [v for use in uses for v in bars.misses(name, use)]
    if not missed:
        return ""
    items = "\n".join(f"- {v.describe()}" for v in missed)
    return (f"**Below its bar.** {name}'s model card measures:\n{items}\n\n"
            "Expect results that fall short of these bars; the card says how they were measured.")


@dataclass
class BarWarning:
    """The warning's text and the button that opens the model card (both hidden when no bar is missed)."""

    text: gr.Markdown
    card: gr.Button

    @property
    def outputs(self) -> list:
        return [self.text, self.card]

    @staticmethod
    def update(name: str | None, uses: str | Iterable[str] = ()) -> tuple:
        """Updates for ``outputs`` after the model (or the direction) changed."""
        text = warning_text(name, uses) if name else ""
        return (gr.update(value=text, visible=bool(text)),
                gr.update(value=f"{CARD_PREFIX}{name}" if name else CARD_PREFIX, visible=bool(text)))


def bar_warning(name: str | None, uses: str | Iterable[str] = "generate") -> BarWarning:
    """Place the warning here (right after the button it is about)."""
    text = warning_text(name, uses) if name else ""
    shown = gr.Markdown(text, visible=bool(text), elem_classes=["bar-warning"])
    card = gr.Button(f"{CARD_PREFIX}{name or ''}", visible=bool(text), size="sm", variant="secondary",
                     elem_classes=["bar-warning-card"])
    return BarWarning(shown, card)


def card_buttons(blocks: Iterable) -> list[gr.Button]:
    """Every warning's card button among ``blocks`` (the app's blocks, for linking them to the Models tab)."""
    return [b for b in blocks if isinstance(b, gr.Button) and "bar-warning-card" in (b.elem_classes or [])]


def card_name(label) -> str:
    """The model named by a card button's label."""
    return str(label or "")[len(CARD_PREFIX):].strip() if str(label or "").startswith(CARD_PREFIX) else ""
