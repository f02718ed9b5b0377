"""mask_from_editor and image conversion against everything a browser can send."""
import io

import numpy as np
import pytest
from PIL import Image

from studio.ui.masks import MaskError, image_for_model, mask_from_editor, mask_from_image, preset_mask


def _layer(h, w, box=None, alpha=255):
    arr = np.zeros((h, w, 4), np.uint8)
    if box:
        y0, y1, x0, x1 = box
        arr[y0:y1, x0:x1] = [255, 0, 0, alpha]
    return arr


def test_first_layer_alpha_is_the_painted_region():
    painted, notes = mask_from_editor({"background": np.zeros((32, 32, 3), np.uint8), "layers": [_layer(32, 32, (8, 16, 4, 12))]}, 32)
    assert painted.shape == (32, 32) and painted.sum() == 64 and painted[8:16, 4:12].all() and notes == []


def test_faint_alpha_below_threshold_is_ignored():
    value = {"layers": [_layer(32, 32, (0, 32, 0, 32), alpha=10)]}
    with pytest.raises(MaskError, match="paint the region to replace"):
        mask_from_editor(value, 32)


def test_no_layers_uses_composite_minus_background():
    bg = np.full((32, 32, 3), 100, np.uint8)
    comp = bg.copy()
    comp[0:8, 0:8] = 255
    painted, _ = mask_from_editor({"background": bg, "layers": [], "composite": comp}, 32)
    assert painted.sum() == 64 and painted[:8, :8].all()
    with pytest.raises(MaskError, match="no brush strokes"):
        mask_from_editor({"background": bg, "layers": [], "composite": None}, 32)


def test_empty_layer_and_missing_value():
    with pytest.raises(MaskError, match="paint the region to replace"):
        mask_from_editor({"background": None, "layers": [_layer(32, 32)]}, 32)
    with pytest.raises(MaskError, match="No editor value"):
        mask_from_editor(None, 32)


def test_full_mask_is_generation_with_a_note():
    painted, notes = mask_from_editor({"layers": [_layer(64, 64, (0, 64, 0, 64))]}, 32)
    assert painted.all() and any("plain generation" in n for n in notes)


def test_canvas_size_differs_resize_is_nearest_without_leaks():
    layer = _layer(256, 256, (0, 128, 0, 256))  # top half painted on an 8x larger canvas
    painted, notes = mask_from_editor({"layers": [layer]}, 32)
    assert painted[:16].all() and not painted[16:].any()  # a crisp edge: no half-painted rows
    assert any("resized from 256x256 to 32x32" in n for n in notes)


def test_webp_and_file_path_inputs(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(_layer(32, 32, (4, 12, 4, 12)), "RGBA").save(buf, format="webp", lossless=True)
    path = tmp_path / "layer.webp"
    path.write_bytes(buf.getvalue())
    painted, _ = mask_from_editor({"layers": [str(path)]}, 32)
    assert painted[4:12, 4:12].all() and painted.sum() == 64


def test_backgrounds_rgba_grey_and_any_size_uploads():
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 128
    x, notes = image_for_model(rgba, 32, 1)
    assert x.shape == (1, 32, 32) and any("composited on black" in n for n in notes)
    grey = np.full((20, 20), 255, np.uint8)
    x, notes = image_for_model(grey, 32, 1)
    assert x.shape == (1, 32, 32) and float(x.min()) > 0.99 and any("resized from 20x20" in n for n in notes)
    wide = Image.new("RGB", (300, 100), (0, 0, 0))
    x, notes = image_for_model(wide, 32, 3)
    assert x.shape == (3, 32, 32) and any("centre-cropped" in n for n in notes)
    pal = Image.new("P", (32, 32))
    x, notes = image_for_model(pal, 32, 1)
    assert x.shape == (1, 32, 32) and notes == []
    with pytest.raises(MaskError, match="NaN"):
        image_for_model(np.full((8, 8), np.nan), 32, 1)
    with pytest.raises(MaskError, match="No image"):
        image_for_model(None, 32, 1)


def test_mask_from_plain_mask_image_and_presets():
    m = np.zeros((64, 64), np.uint8)
    m[:, 32:] = 255
    painted, _ = mask_from_image(m, 32)
    assert painted[:, 16:].all() and not painted[:, :16].any()
    assert preset_mask("centre square", 32)[8:24, 8:24].all() and preset_mask("centre square", 32).sum() == 256
    assert preset_mask("left half", 32)[:, :16].all()
    strokes = preset_mask("random strokes", 32, seed=1)
    assert 0 < strokes.sum() < 32 * 32 and np.array_equal(strokes, preset_mask("random strokes", 32, seed=1))
    with pytest.raises(MaskError):
        preset_mask("circle", 32)
