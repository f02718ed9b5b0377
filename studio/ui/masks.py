"""Turn what a browser sends (ImageEditor values, uploads, mask images) into model inputs.

Conventions: in the UI people *paint the region to replace*. ``mask_from_editor``
returns that painted region as a boolean array (True = replace). Samplers use
the opposite convention (1 = known pixel), so callers pass ``~painted``.
Every function returns notes that the UI shows, so users learn what was done
to their input (cropping, resizing, conversion).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import StudioError
from . import limits

ALPHA_THRESHOLD = 32  # out of 255: faint anti-aliased brush edges do not count as painted
DIFF_THRESHOLD = 24  # composite vs background difference when the editor sends no layers


class MaskError(StudioError):
    """The mask or image from the browser cannot be used; the message says what to do."""


def to_array(image: Any) -> np.ndarray:
    """Accept a numpy array, a PIL image or a file path (any format PIL reads, webp included) -> uint8 HxWxC.

    Hostile uploads are expected: the size is checked from the header before anything is decoded
    (``limits.MAX_UPLOAD_PIXELS``), 16-bit images are scaled to 8 bits (not clipped), CMYK and other
    colour spaces are converted to RGB, animated images give their first frame, and arrays that are
    not real numbers are refused.
    """
    if image is None:
        raise MaskError("No image: upload one or pick an example first.")
    if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
        try:
            image = Image.open(image)
            limits.pixels(*image.size)
            image.load()
        except limits.LimitError as err:
            raise MaskError(str(err)) from None
        except Image.DecompressionBombError:
            raise MaskError(f"The image is too large to decode: uploads are limited to {limits.MAX_UPLOAD_PIXELS / 1e6:.1f} MP.") from None
        except UnidentifiedImageError:
            raise MaskError("Cannot read the image file: it is not in a format PIL reads (PNG, JPEG, WebP, GIF, BMP, TIFF, ...).") from None
        except (OSError, ValueError, SyntaxError) as err:
            raise MaskError(f"Cannot read the image file: it is damaged or truncated ({type(err).__name__}).") from None
    if isinstance(image, Image.Image):
        image = _pil_to_array(image)
    arr = np.asarray(image)
    if not (arr.dtype == bool or np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise MaskError(f"The image must hold real numbers; got an array of {arr.dtype}.")
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4) or min(arr.shape[:2]) < 1:
        raise MaskError(f"Unsupported image shape {arr.shape}: expected height x width (x channels).")
    try:
        limits.pixels(arr.shape[1], arr.shape[0])
    except limits.LimitError as err:
        raise MaskError(str(err)) from None
    if arr.dtype != np.uint8:
        arr = _to_uint8(arr)
    return arr


def _pil_to_array(img: Image.Image) -> np.ndarray:
    if img.mode in ("P", "LA", "PA"):
        return np.asarray(img.convert("RGBA"))
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        return np.asarray(img, dtype=np.int64)  # scaled to 8 bits by _to_uint8
    if img.mode == "1":
        return np.asarray(img.convert("L"))
    if img.mode not in ("L", "RGB", "RGBA", "F"):  # CMYK, YCbCr, LAB, HSV, ...
        return np.asarray(img.convert("RGB"))
    return np.asarray(img)


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """Floats in [0, 1] (or [0, 255]) and integers up to 16 bits -> uint8; out-of-range values are clipped."""
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.integer):
        top = int(arr.max()) if arr.size else 0
        if top > 255:  # 16-bit data (PNG/TIFF): 65535 -> 255
            return np.clip(arr.astype(np.int64) // 257, 0, 255).astype(np.uint8)
        return np.clip(arr, 0, 255).astype(np.uint8)
    if not np.isfinite(arr).all():
        raise MaskError("The image contains NaN or infinite values.")
    return np.clip(arr * (255 if arr.max() <= 1.0 else 1), 0, 255).astype(np.uint8)


def frame_count(image: Any) -> int:
    """Frames in an upload (a PIL image or a file); 1 for arrays and anything unreadable."""
    if isinstance(image, Image.Image):
        return int(getattr(image, "n_frames", 1))
    if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
        try:
            with Image.open(image) as img:
                return int(getattr(img, "n_frames", 1))
        except (OSError, ValueError, SyntaxError):
            return 1
    return 1


def animated_note(image: Any) -> list[str]:
    """The note for an animated upload (its first frame is what every tab uses), or nothing."""
    frames = frame_count(image)
    return [f"The upload is animated ({frames} frames): its first frame was used."] if frames > 1 else []


def _centre_square(img: Image.Image) -> tuple[Image.Image, bool]:
    w, h = img.size
    if w == h:
        return img, False
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    return img.crop((left, top, left + s, top + s)), True


def image_for_model(image: Any, size: int, channels: int) -> tuple[torch.Tensor, list[str]]:
    """Any upload -> [channels, size, size] in [-1, 1]: alpha composited on black (the Fashion-MNIST
    background), centre-cropped to a square, resized, converted to grey or RGB."""
    arr = to_array(image)
    notes = []
    notes = animated_note(image)
    if arr.shape[2] in (2, 4):
        rgb, alpha = arr[..., :-1].astype(np.float32), arr[..., -1:].astype(np.float32) / 255
        arr = (rgb * alpha).round().astype(np.uint8)
        if (alpha < 1).any():
            notes.append("Transparent pixels were composited on black.")
    pil = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
    pil, cropped = _centre_square(pil)
    if cropped:
        notes.append(f"The image was centre-cropped to a square ({pil.size[0]}x{pil.size[1]}).")
    if pil.size != (size, size):
        notes.append(f"The image was resized from {pil.size[0]}x{pil.size[1]} to {size}x{size}.")
        pil = pil.resize((size, size), Image.LANCZOS if pil.size[0] > size else Image.BICUBIC)
    pil = pil.convert("L" if channels == 1 else "RGB")
    x = torch.from_numpy(np.array(pil, dtype=np.float32)).div(127.5).sub(1)
    return (x[None] if channels == 1 else x.permute(2, 0, 1)), notes


def undo_enlargement(image: Any, size: int, canvas: int) -> Any:
    """The ``size`` x ``size`` original of an exact nearest-neighbour enlargement to the editor's ``canvas`` side
    (how the Inpaint tab shows a held-out example), so it is neither resampled nor reported as resized; anything
    else as is (other sizes, empty or oversized images go to image_for_model's checks unchanged)."""
    if not isinstance(image, np.ndarray) or image.ndim < 2 or size < 1:
        return image
    h, w = image.shape[:2]
    if h != canvas or w != canvas or h <= size or h % size:
        return image
    k = h // size
    small = image[::k, ::k]
    return small if np.array_equal(np.repeat(np.repeat(small, k, axis=0), k, axis=1), image) else image


def _resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize after a centre crop, so no anti-aliasing leaks half-painted pixels."""
    pil, _ = _centre_square(Image.fromarray(mask.astype(np.uint8) * 255))
    if pil.size != (size, size):
        pil = pil.resize((size, size), Image.NEAREST)
    return np.asarray(pil) > 127


def mask_from_editor(value: Any, size: int) -> tuple[np.ndarray, list[str]]:
    """A gr.ImageEditor value -> (painted [size, size] bool, True = replace; notes).

    Reads the alpha of the first layer; with no layers, the difference between
    composite and background. An empty mask is an error; a full mask is allowed
    (it becomes pure generation) and noted.
    """
    if value is None or not isinstance(value, dict):
        raise MaskError("No editor value: pick or upload an image, then paint the region to replace.")
    background = value.get("background")
    layers = [layer for layer in (value.get("layers") or []) if layer is not None]
    notes = []
    if layers:
        layer = to_array(layers[0])
        if layer.shape[2] in (2, 4):
            painted = layer[..., -1] > ALPHA_THRESHOLD
        else:  # an opaque layer: anything not black counts as paint
            painted = layer.max(axis=2) > ALPHA_THRESHOLD
    else:
        composite = value.get("composite")
        if composite is None or background is None:
            raise MaskError("Paint the region to replace: the editor sent no brush strokes.")
        comp, bg = to_array(composite), to_array(background)
        if comp.shape[:2] != bg.shape[:2]:
            bg = np.asarray(Image.fromarray(bg[..., :3] if bg.shape[2] >= 3 else bg[..., 0]).resize(comp.shape[1::-1], Image.NEAREST))
            bg = bg[..., None] if bg.ndim == 2 else bg
        c3 = comp[..., :3].astype(np.int16) if comp.shape[2] >= 3 else np.repeat(comp[..., :1], 3, 2).astype(np.int16)
        b3 = bg[..., :3].astype(np.int16) if bg.shape[2] >= 3 else np.repeat(bg[..., :1], 3, 2).astype(np.int16)
        painted = np.abs(c3 - b3).max(axis=2) > DIFF_THRESHOLD
    if not painted.any():
        raise MaskError("The mask is empty: paint the region to replace (or pick a preset mask).")
    if painted.shape != (size, size):
        notes.append(f"The mask was resized from {painted.shape[1]}x{painted.shape[0]} to {size}x{size} (nearest neighbour).")
    painted = _resize_mask(painted, size)
    if not painted.any():
        raise MaskError("The painted strokes vanish at the model's resolution: paint a larger region.")
    if painted.all():
        notes.append("The whole image is masked: this is plain generation.")
    return painted, notes


def mask_from_image(mask_image: Any, size: int) -> tuple[np.ndarray, list[str]]:
    """For scripts: a mask image where white (or opaque) marks the region to replace."""
    arr = to_array(mask_image)
    painted = arr[..., -1] > 127 if arr.shape[2] in (2, 4) and (arr[..., -1] < 255).any() else arr[..., :3].max(axis=2) > 127
    return mask_from_editor({"layers": [np.dstack([painted.astype(np.uint8) * 255] * 4)]}, size)


def preset_mask(name: str, size: int, seed: int = 0) -> np.ndarray:
    """Preset regions to replace: centre square, left half, random strokes."""
    m = np.zeros((size, size), bool)
    if name == "centre square":
        q = size // 4
        m[q : size - q, q : size - q] = True
    elif name == "left half":
        m[:, : size // 2] = True
    elif name == "random strokes":
        rng = np.random.default_rng(seed)
        for _ in range(3):
            y, x = rng.integers(0, size, 2)
            dy, dx = rng.normal(0, 1, 2)
            for t in range(size):
                cy, cx = int(y + dy * t * 0.5) % size, int(x + dx * t * 0.5) % size
                m[max(0, cy - 1) : cy + 2, max(0, cx - 1) : cx + 2] = True
    else:
        raise MaskError(f"Unknown preset '{name}'. Choose centre square, left half or random strokes.")
    return m
