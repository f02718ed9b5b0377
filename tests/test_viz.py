"""studio.viz saliency helpers: the heatmap ramp, the overlay, per-pixel maps and the latent-shift chart,
checked analytically."""
import numpy as np
import pytest
import torch

from studio.langevin import Trace
from studio.viz import HEATMAP_COLOURS, heatmap, latent_shift_figure, pixel_map, saliency_overlay, to_uint8


def _image(channels: int = 3, size: int = 8) -> torch.Tensor:
    return torch.linspace(-1, 1, channels * size * size).reshape(channels, size, size)


def _ramp(size: int = 8) -> torch.Tensor:
    return torch.linspace(0, 1, size * size).reshape(size, size)


def test_heatmap_hits_its_stops_and_brightens_monotonically():
    heat = heatmap(np.array([[0.0, 0.25, 0.5, 0.75, 1.0]]))
    assert heat.dtype == np.uint8 and heat.shape == (1, 5, 3)
    assert (heat[0] == HEATMAP_COLOURS.astype(np.uint8)).all()
    fine = heatmap(np.linspace(0, 1, 101)[None]).astype(np.float64)[0]
    luma = fine @ np.array([0.299, 0.587, 0.114])
    assert (np.diff(luma) >= -1e-9).all(), "the ramp must not get darker as the value grows"
    mid = heatmap(np.array([[0.125]]))[0, 0]  # halfway between the first two stops
    assert np.abs(mid.astype(float) - (HEATMAP_COLOURS[0] + HEATMAP_COLOURS[1]) / 2).max() <= 0.5


def test_heatmap_takes_tensors_and_tolerates_rounding_at_the_ends():
    assert (heatmap(torch.tensor([[1 + 1e-9, -1e-9]])) == heatmap(np.array([[1.0, 0.0]]))).all()


@pytest.mark.parametrize("channels", [1, 3])
def test_overlay_opacity_zero_is_the_image_and_one_is_the_heatmap(channels):
    image, sal = _image(channels), _ramp()
    plain = saliency_overlay(image, sal, 0.0)
    assert plain.mode == "RGB" and plain.size == (8, 8)
    assert (np.asarray(plain) == to_uint8(image[None])[0]).all()
    assert (np.asarray(saliency_overlay(image, sal, 1.0)) == heatmap(sal)).all()


def test_overlay_is_the_convex_blend_in_between():
    image, sal = _image(), _ramp()
    base, heat = to_uint8(image[None])[0].astype(float), heatmap(sal).astype(float)
    for a in (0.25, 0.5, 0.9):
        out = np.asarray(saliency_overlay(image, sal, a)).astype(float)
        assert np.abs(out - ((1 - a) * base + a * heat)).max() <= 0.5
        assert out.min() >= 0 and out.max() <= 255


def test_overlay_accepts_numpy_and_grey_images():
    image = np.zeros((1, 4, 6), np.float32)  # mid grey, non-square
    out = saliency_overlay(image, np.zeros((4, 6)), 0.5)
    assert out.size == (6, 4)
    expected = np.round(0.5 * 128 + 0.5 * HEATMAP_COLOURS[0])
    assert (np.asarray(out) == expected.astype(np.uint8)).all()


@pytest.mark.parametrize("image, sal, opacity, message", [
    (_image(), _ramp(), -0.1, "between 0 and 1"),
    (_image(), _ramp(), 1.5, "between 0 and 1"),
    (_image(), _ramp(), float("nan"), "between 0 and 1"),
    (_image(), _ramp(), "much", "a number"),
    (_image(), _ramp(4), 0.5, "4x4 but the image is 8x8"),
    (_image(), _ramp()[None], 0.5, r"shape \[H, W\]"),
    (_image(2), _ramp(), 0.5, "C = 1 or 3"),
    (_image()[0], _ramp(), 0.5, "C = 1 or 3"),
    (_image(), _ramp() * 2, 0.5, r"in \[0, 1\]"),
    (_image(), _ramp() - 0.5, 0.5, r"in \[0, 1\]"),
    (_image(), torch.full((8, 8), float("nan")), 0.5, "NaN"),
    (torch.full((3, 8, 8), float("inf")), _ramp(), 0.5, "NaN or infinite"),
])
def test_overlay_rejects_bad_shapes_values_and_opacities(image, sal, opacity, message):
    with pytest.raises(ValueError, match=message):
        saliency_overlay(image, sal, opacity)


def test_heatmap_rejects_empty_maps():
    with pytest.raises(ValueError, match=r"shape \[H, W\]"):
        heatmap(np.zeros((0, 3)))


def test_pixel_map_is_the_channel_norm_normalised_like_trace_saliency():
    g = torch.zeros(3, 2, 2)
    g[:, 0, 0] = torch.tensor([3.0, 4.0, 0.0])  # norm 5
    g[0, 0, 1] = -2.5  # norm 2.5
    g[:, 1, 1] = 1.0  # norm sqrt(3)
    expected = torch.tensor([[5.0, 2.5], [0.0, 3**0.5]]) / 5
    torch.testing.assert_close(pixel_map(g), expected)
    torch.testing.assert_close(pixel_map(g), Trace(grad_sum=g[None]).saliency()[0])
    assert (pixel_map(torch.full((1, 3, 3), 7.0)) == 0).all()  # constant: all zeros, no division by zero
    for bad, message in [(torch.zeros(2, 2), r"\[C, H, W\]"), (np.zeros((1, 2, 2)), r"\[C, H, W\]"),
                         (torch.full((1, 2, 2), float("nan")), "NaN")]:
        with pytest.raises(ValueError, match=message):
            pixel_map(bad)


def test_latent_shift_figure_map_and_vector_latents():
    per_channel, per_location = torch.tensor([1.0, 3.0]), torch.arange(16.0).reshape(4, 4)
    bars, heat = latent_shift_figure(per_channel, per_location).data
    assert bars.type == "bar" and list(bars.y) == [1.0, 3.0] and heat.type == "heatmap"
    np.testing.assert_array_equal(np.asarray(heat.z), per_location.numpy())
    (only,) = latent_shift_figure(torch.tensor([0.5, 0.0, 2.0])).data
    assert only.type == "bar" and list(only.y) == [0.5, 0.0, 2.0]
    with pytest.raises(ValueError, match="non-empty, finite"):
        latent_shift_figure(torch.tensor([float("inf")]))
    with pytest.raises(ValueError, match=r"\[h, w\]"):
        latent_shift_figure(per_channel, torch.zeros(2, 2, 2))
