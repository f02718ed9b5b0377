"""Hardening of the Gradio app against hostile or simply concurrent users (called once by ``build_app``).

* Input components refuse malformed API values with a clear ``gr.Error`` (Gradio's own preprocessing
  would fail with a generic "the upstream app raised an exception"; its slider range check does not name
  the field), worded as every other check (``studio.checks.number_message``), malformed file payloads (a bare
  path string, a number) are named instead of failing Gradio's data-model check, and uploaded images
  are measured from their header before anything decodes them.
* ``demo.launch`` defaults to ``max_file_size=limits.MAX_UPLOAD_BYTES``.
* Gradio writes output images into its cache non-atomically (truncate, then write) under a name
  derived from their content, so two users who get the same image at the same time (the default
  seeds!) can be served a half-rewritten file. Those cache writes are made atomic here.
"""
from __future__ import annotations

import functools
import math
import os
import re
import tempfile
import warnings
from pathlib import Path

from .. import checks
from . import limits
from .limits import MAX_UPLOAD_PIXELS, LimitError, pixels


def harden(demo) -> None:
    """Everything below, for an app about to be launched."""
    guard_inputs(demo)
    make_cache_writes_atomic()


def guard_inputs(demo) -> None:
    """Make every input component of ``demo`` refuse malformed API values with a clear message.

    Gradio checks a slider's range, but a value of the wrong type (None, text) makes its own
    preprocessing fail with a generic "the upstream app raised an exception". Wrapping each
    component's ``preprocess`` turns that into a ``gr.Error`` naming the field and its range, checks
    the pixel count of uploaded images from their header before Gradio decodes them, and caps
    what PIL will decode at all (``MAX_UPLOAD_PIXELS``; beyond twice that PIL refuses outright).
    ``demo.launch`` gets ``max_file_size=MAX_UPLOAD_BYTES`` unless the caller sets one.
    """
    import gradio as gr
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_UPLOAD_PIXELS
    if not getattr(demo, "_studio_guarded", False):
        launch = demo.launch

        def launch_with_limits(*args, **kwargs):
            kwargs.setdefault("max_file_size", limits.MAX_UPLOAD_BYTES)  # whoever launches: app.py, Spaces, tests
            return launch(*args, **kwargs)

        demo.launch = launch_with_limits
        demo.preprocess_data = _validated(demo.preprocess_data)
        demo._studio_guarded = True
    for block in list(demo.blocks.values()):
        if isinstance(block, gr.components.Component) and not getattr(block, "_studio_guarded", False):
            block.preprocess = _guarded(block, block.preprocess)
            block._studio_guarded = True


def _label(block) -> str:
    return str(getattr(block, "label", None) or type(block).__name__)


def _guarded(block, preprocess):
    import gradio as gr
    from PIL import Image, UnidentifiedImageError

    numeric = isinstance(block, (gr.Slider, gr.Number))
    checkbox = isinstance(block, gr.Checkbox)
    images = isinstance(block, (gr.Image, gr.ImageEditor))

    @functools.wraps(preprocess)
    def checked(payload):
        name = _label(block)
        if numeric and (payload is not None or isinstance(block, gr.Slider)):  # a Number may be left empty
            # Python ints are exact (JSON may carry 10**400, which math.isfinite cannot convert); range
            # checks below and in the handlers refuse the huge ones.
            lo, hi = getattr(block, "minimum", None), getattr(block, "maximum", None)
            bad = isinstance(payload, bool) or not isinstance(payload, (int, float)) or \
                not (isinstance(payload, int) or math.isfinite(payload))
            # Gradio's own range check says "Value 80 is greater than maximum value 40.0" without naming the
            # field; the same check, worded as every other check (studio.checks.number_message).
            if bad or (lo is not None and payload < lo) or (hi is not None and payload > hi):
                if lo is None or hi is None:
                    raise gr.Error(f"'{name}' must be a number; got {checks.given(payload)}.")
                raise gr.Error(checks.number_message(f"'{name}'", lo, hi, payload))
        if checkbox and not isinstance(payload, bool):
            raise gr.Error(f"'{name}' must be true or false; got {payload!r}.")
        if images:
            for path in _image_paths(payload):
                try:
                    with warnings.catch_warnings():  # the header is all we read; the size check below decides
                        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                        img = Image.open(path)
                    with img:
                        pixels(*img.size, what=f"The image for '{name}'")
                except LimitError as err:
                    raise gr.Error(str(err)) from None
                except Image.DecompressionBombError:
                    raise gr.Error(f"The image for '{name}' is too large to decode; uploads are limited to "
                                   f"{MAX_UPLOAD_PIXELS / 1e6:.1f} MP.") from None
                except (OSError, ValueError, SyntaxError):
                    pass  # not readable as an image: preprocess below says so
        try:
            return preprocess(payload)
        except gr.Error:
            raise
        except Image.DecompressionBombError:
            raise gr.Error(f"The image for '{name}' is too large to decode; uploads are limited to "
                           f"{MAX_UPLOAD_PIXELS / 1e6:.1f} MP.") from None
        except UnidentifiedImageError:
            raise gr.Error(f"The file sent for '{name}' is not an image that can be read (PNG, JPEG, WebP, GIF, ...).") from None
        except Exception as err:  # noqa: BLE001 - whatever a hostile payload breaks, answer with a message
            raise gr.Error(f"The value sent for '{name}' cannot be used ({type(err).__name__}: {str(err)[:200]}).") from None

    return checked


def _validated(preprocess_data):
    """Gradio checks file payloads against the component's data model *before* ``preprocess``: a bare
    path string, a number or a list sent for an image or file makes pydantic raise, which the client
    sees as a generic error. Say which input it was and what to send instead."""
    import gradio as gr
    from pydantic import ValidationError

    @functools.wraps(preprocess_data)
    async def checked(block_fn, inputs, state, *args, **kwargs):
        try:
            return await preprocess_data(block_fn, inputs, state, *args, **kwargs)
        except gr.Error as err:
            raise _reworded(err, block_fn, inputs) from None
        except ValidationError as err:
            names = [_label(block) for block, value in zip(block_fn.inputs, inputs) if _invalid(block, value)]
            what = ", ".join(f"'{n}'" for n in names) or f"a file input ({err.title})"
            raise gr.Error(f"The value sent for {what} is not a file: upload it and send "
                           "{'path': ..., 'meta': {'_type': 'gradio.FileData'}} (gradio_client.handle_file does this).") from None

    return checked


_GRADIO_RANGE = re.compile(r"^Value (\S+) is (greater than maximum|less than minimum) value ([^\s]+?)\.?$")


def _reworded(err, block_fn, inputs):
    """Gradio's own range message ("Value 80 is greater than maximum value 40.") for a slider whose range an
    event updated (Gradio then checks a copy of the component, not the guarded one), worded as every other
    check and naming the field; any other error as it is."""
    import gradio as gr

    m = _GRADIO_RANGE.match(str(getattr(err, "message", "")))
    if not m:
        return err
    value, bound = float(m.group(1)), float(m.group(3))
    for block, payload in zip(block_fn.inputs, inputs):
        if isinstance(block, (gr.Slider, gr.Number)) and isinstance(payload, (int, float)) and not isinstance(payload, bool) \
                and float(payload) == value:
            lo, hi = (getattr(block, "minimum", None), bound) if m.group(2).startswith("greater") else \
                (bound, getattr(block, "maximum", None))
            if lo is not None and hi is not None:
                return gr.Error(checks.number_message(f"'{_label(block)}'", lo, hi, payload))
    return err


def _invalid(block, value) -> bool:
    """Whether ``value`` fails ``block``'s data model (the check Gradio makes before preprocessing)."""
    from pydantic import ValidationError

    model = getattr(block, "data_model", None)
    if model is None or value is None:
        return False
    try:
        model.model_validate(value, context={"validate_meta": True})
    except ValidationError:
        return True
    except Exception:  # noqa: BLE001 - anything else is not the failure being named
        return False
    return False


def _image_paths(payload) -> list[str]:
    """File paths inside an image or image-editor payload (pydantic models or dicts)."""
    if payload is None:
        return []
    if isinstance(payload, dict):
        items = payload.values()
    elif hasattr(payload, "path") and isinstance(getattr(payload, "path"), str):
        return [payload.path]
    elif hasattr(payload, "model_dump"):
        items = [getattr(payload, k, None) for k in type(payload).model_fields]
    elif isinstance(payload, (list, tuple)):
        items = payload
    else:
        return []
    return [p for item in items for p in _image_paths(item)]


# -- Gradio's output cache ---------------------------------------------------------------------------


def make_cache_writes_atomic() -> None:
    """Replace gradio.processing_utils' PIL and bytes cache writers with atomic ones (idempotent).

    The cache folder is named by the content hash, so an existing file already holds these bytes:
    it is reused (and touched, as Gradio does for files, so ``delete_cache`` ages it from now).
    A new one is written under a temporary name and renamed into place."""
    from gradio import processing_utils as pu

    if getattr(pu, "_studio_atomic", False):
        return

    def save_pil_to_cache(img, cache_dir: str, name: str = "image", format: str = "webp") -> str:
        data = pu.encode_pil_to_bytes(img, format)
        return _store(Path(cache_dir) / pu.hash_bytes(data), f"{name}.{format}", data)

    def save_bytes_to_cache(data: bytes, file_name: str, cache_dir: str) -> str:
        if not Path(file_name).suffix:
            file_name = file_name + pu.detect_audio_format(data)
        return _store(Path(cache_dir) / pu.hash_bytes(data), Path(file_name).name, data)

    pu.save_pil_to_cache = save_pil_to_cache
    pu.save_bytes_to_cache = save_bytes_to_cache
    pu._studio_atomic = True


def _store(folder: Path, name: str, data: bytes) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = (folder / name).resolve()
    if path.exists():
        try:
            os.utime(path)
        except OSError:
            pass
        return str(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return str(path)
