"""What one request may ask of the server, in one place, and the checks that enforce it.

Every refusal is worded one way (``studio.checks.number_message`` / ``integer_message``): the field as the
user sees it, its valid range, and what was given ("nothing" for an empty or unreadable number box).
Tabs check through these functions instead of writing their own messages.

The app is public, so every value from the browser or the API is untrusted: sliders can be bypassed
through the API, numbers arrive as NaN, infinity, None or text, and uploads can be decompression
bombs. The caps below bound the work of any single request (samples x steps x resolution), so no
request can hold a worker for long, and the checks turn every bad value into a ``LimitError``
(a ``StudioError``, shown as a clear gr.Error) instead of a crash deep inside torch.
"""
from __future__ import annotations

import math
import os
from typing import Any, Iterable

from .. import checks
from ..errors import StudioError
from ..checks import MAX_SEED

MAX_SAMPLES = 64  # images generated per request (CDRL, CF-EBM)
MAX_COMPLETIONS = 8  # inpainting completions per request
MAX_CDRL_STEPS = 50  # CDRL Langevin steps per level (6 levels)
MAX_STEPS = 200  # Langevin steps per scale (CF-EBM generate / inpaint)
MAX_GUIDANCE = 5.0  # CDRL guidance w
MAX_CHAINS = 512  # playground chains (2-D points: cheap)
MAX_PLAYGROUND_STEPS = 2000
MAX_OOD_IMAGES = 256  # images scored per OOD request
MAX_UPLOADS = 64  # files per upload request
MAX_UPLOAD_PIXELS = 4096 * 4096  # decoded size of one uploaded image (checked before decoding)
MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # per uploaded file, enforced by Gradio (launch(max_file_size=...))
# Wall-time limit of one request (STUDIO_REQUEST_TIMEOUT overrides): the caps above keep the heaviest
# request near 30 s on a busy 2-core CPU, so only a starved machine ever reaches it.
REQUEST_TIMEOUT_SECONDS = float(os.environ.get("STUDIO_REQUEST_TIMEOUT", "") or 120)


class LimitError(StudioError):
    """A request parameter is malformed or outside what the server allows; the message says the range."""


def number(what: str, value: Any, lo: float, hi: float) -> float:
    """``value`` as a finite float in [lo, hi]; None, text, NaN, infinity and booleans are refused."""
    return checks.number(what, value, lo, hi, error=LimitError)


def integer(what: str, value: Any, lo: int, hi: int) -> int:
    """``value`` as an int in [lo, hi]; whole floats (3.0, as JSON sends them) are accepted, 2.5 is not."""
    return checks.integer(what, value, lo, hi, error=LimitError)


def seed(value: Any, what: str = "Seed", error: type[StudioError] = LimitError) -> int:
    """A torch generator seed: a whole number in [0, 2**63 - 1]; every tab words a bad seed this way."""
    return checks.seed(what, value, error=error)


def seed_range(first: Any, count: Any, max_count: int, what: str = "Number of samples",
               seed_name: str = "Seed", error: type[StudioError] = LimitError) -> tuple[str, int, int]:
    """(``"a-b"`` seed spec, first seed, count) for ``count`` consecutive seeds from ``first``."""
    n = checks.integer(what, count, 1, max_count, error=error)
    a = seed(first, seed_name, error=error)
    if a + n - 1 > MAX_SEED:
        raise error(f"Seeds {a}..{a + n - 1} go past the largest seed 2**63 - 1; choose a {seed_name.lower()} "
                         f"of at most {MAX_SEED - n + 1}.")
    return f"{a}-{a + n - 1}", a, n


def choice(what: str, value: Any, options: Iterable[str]) -> str:
    """``value`` if it is one of ``options`` (compared as strings; lists, dicts and None are refused)."""
    options = list(options)
    if not isinstance(value, str) or value not in options:
        raise LimitError(f"Unknown {what} {value!r}. Choose one of: {', '.join(options) or '(none available)'}.")
    return value


def flag(what: str, value: Any) -> bool:
    """A checkbox value: a real boolean (the API could send anything)."""
    if not isinstance(value, bool):
        raise LimitError(f"{what} must be true or false; got {value!r}.")
    return value


def pixels(width: int, height: int, what: str = "The image") -> None:
    """Refuse images whose decoded size would exceed MAX_UPLOAD_PIXELS (checked from the header, before decoding)."""
    if width < 1 or height < 1:
        raise LimitError(f"{what} is empty ({width}x{height} pixels).")
    if width * height > MAX_UPLOAD_PIXELS:
        side = int(math.isqrt(MAX_UPLOAD_PIXELS))
        raise LimitError(f"{what} is {width}x{height} pixels ({width * height / 1e6:.1f} MP); uploads are limited to "
                         f"{MAX_UPLOAD_PIXELS / 1e6:.1f} MP (e.g. {side}x{side}). Downscale it first.")
