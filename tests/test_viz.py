"""studio.viz helpers checked analytically: the heatmap ramp, the overlay, per-pixel maps and the latent-shift
chart; image grids, trajectory GIFs, the energy chart (and its scrub marker) and the 2-D chains chart."""
import numpy as np
import pytest
import torch

from studio.langevin import Trace
from studio.viz import (HEATMAP_COLOURS, chains_figure, energy_figure, heatmap, image_grid, latent_shift_figure, pixel_map,
                        saliency_overlay, to_uint8, trajectory_gif)


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


# -- grids, animations and charts ------------------------------------------------------------------


def _grey(value: float, n: int = 1, size: int = 2) -> torch.Tensor:
    """n constant grey images [n, 1, size, size] in [-1, 1]."""
    return torch.full((n, 1, size, size), value)


def _u8(value: float) -> int:
    return int(round((value + 1) * 127.5))


def test_image_grid_places_each_image_in_its_cell_on_white_padding():
    values = [-1.0, 0.0, 1.0]
    images = torch.cat([_grey(v) for v in values])
    images[1, 0, 0, 1] = 0.5  # one pixel off the constant, to check orientation within a cell
    grid = np.asarray(image_grid(images, pad=1))
    # ncols defaults to ceil(sqrt(3)) = 2: two rows of (pad + 2) plus a final pad.
    assert grid.shape == (7, 7, 3) and grid.dtype == np.uint8
    for i, v in enumerate(values):
        r, c = divmod(i, 2)
        cell = grid[1 + 3 * r: 3 + 3 * r, 1 + 3 * c: 3 + 3 * c]
        expected = to_uint8(images[i: i + 1])[0]
        assert (cell == expected).all(), f"image {i} is not in row {r}, column {c}"
    assert (grid[1, 5] == _u8(0.5)).all() and (grid[1, 4] == _u8(0.0)).all()  # row 0, column 1 of image 1
    padding = np.ones(grid.shape[:2], bool)
    for r, c in [(0, 0), (0, 1), (1, 0)]:
        padding[1 + 3 * r: 3 + 3 * r, 1 + 3 * c: 3 + 3 * c] = False
    assert (grid[padding] == 255).all()  # padding and the empty fourth cell are white


def test_image_grid_columns_colour_and_nearest_neighbour_scale():
    images = torch.zeros(2, 3, 2, 3)
    images[0, 0] = 1.0  # red
    images[1, 2] = 1.0  # blue
    row = np.asarray(image_grid(images * 2 - 1, ncols=2, pad=0))
    assert row.shape == (2, 6, 3)
    assert (row[:, :3] == [255, 0, 0]).all() and (row[:, 3:] == [0, 0, 255]).all()
    big = image_grid(images * 2 - 1, ncols=1, pad=2, scale=3)
    base = np.asarray(image_grid(images * 2 - 1, ncols=1, pad=2))
    assert big.size == (base.shape[1] * 3, base.shape[0] * 3)
    assert (np.asarray(big) == base.repeat(3, 0).repeat(3, 1)).all()


def _frames_trace(values: list[float], batch: int = 2, size: int = 4) -> Trace:
    return Trace(frames=[_grey(v, batch, size) for v in values], frame_steps=list(range(len(values))),
                 frame_labels=[f"step {i}" for i in range(len(values))])


def _gif_frames(path) -> list[np.ndarray]:
    from PIL import Image, ImageSequence

    with Image.open(path) as gif:
        return [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(gif)]


def test_trajectory_gif_writes_one_labelled_frame_per_recorded_frame(tmp_path):
    from PIL import Image

    values = [-1.0, -0.5, 0.0, 0.5, 1.0]
    path = trajectory_gif(_frames_trace(values), str(tmp_path / "t.gif"), scale=2, duration_ms=70)
    assert path == str(tmp_path / "t.gif")
    with Image.open(path) as gif:
        assert gif.n_frames == 5 and gif.info["duration"] == 70 and gif.info["loop"] == 0
    frames = _gif_frames(path)
    # A 2-image grid (ncols 2, pad 2) of 4x4 images, scaled x2, under a 14-pixel label strip.
    assert frames[0].shape == (14 + 2 * (4 + 2 + 2), 2 * (2 * (4 + 2) + 2), 3)
    for frame, v in zip(frames, values):
        inside = frame[14 + 2 * 2: 14 + 2 * 6, 2 * 2: 2 * 6].astype(int)  # first image of the grid
        assert np.abs(inside - _u8(v)).max() <= 2, "GIF palettes may shift a grey level by a little"
        assert (frame[:14].min(axis=2) < 100).any(), "the label is drawn in the strip"


def test_trajectory_gif_subsamples_long_traces_keeping_both_ends(tmp_path):
    values = list(np.linspace(-1, 1, 300))
    path = trajectory_gif(_frames_trace(values, batch=1), str(tmp_path / "long.gif"), scale=1, max_frames=10)
    frames = _gif_frames(path)
    assert len(frames) == 10
    first, last = frames[0][14 + 2: 14 + 6, 2:6].astype(int), frames[-1][14 + 2: 14 + 6, 2:6].astype(int)
    assert np.abs(first - _u8(-1.0)).max() <= 2 and np.abs(last - _u8(1.0)).max() <= 2
    with pytest.raises(ValueError, match="no frames"):
        trajectory_gif(Trace(), str(tmp_path / "none.gif"))


def _energy_trace(steps: int = 4, batch: int = 5) -> Trace:
    e = torch.arange(steps * batch, dtype=torch.float32).reshape(steps, batch) ** 1.5
    g = torch.linspace(1, 2, steps * batch).reshape(steps, batch)
    return Trace(energies=list(e), grad_norms=list(g))


def _black_lines(fig) -> list:
    return [s for s in fig.layout.shapes if s.line.color == "black"]


def test_energy_figure_traces_are_the_trace_statistics():
    trace = _energy_trace()
    e, g = trace.energy_matrix().numpy(), trace.grad_norm_matrix().numpy()
    fig = energy_figure(trace, "chains")
    band, mean, grad = fig.data
    assert fig.layout.title.text == "chains" and [t.name for t in fig.data] == ["energy 10-90%", "mean energy", "mean |grad E|"]
    steps = np.arange(4)
    np.testing.assert_array_equal(band.x, np.concatenate([steps, steps[::-1]]))
    np.testing.assert_allclose(band.y, np.concatenate([np.percentile(e, 90, 1), np.percentile(e, 10, 1)[::-1]]))
    np.testing.assert_array_equal(mean.x, steps)
    np.testing.assert_allclose(mean.y, e.mean(1), rtol=1e-6)
    np.testing.assert_allclose(grad.y, g.mean(1), rtol=1e-6)
    assert grad.yaxis == "y2" and mean.yaxis in (None, "y")
    assert _black_lines(fig) == [] and len(fig.layout.shapes) == 0  # no marker, one segment: no lines


@pytest.mark.parametrize("marker, x", [(2, 2), (0, 0), (3, 3), (100, 3), (-5, 0)])
def test_energy_figure_marker_stands_at_the_scrubbed_step_clamped_to_the_chart(marker, x):
    (line,) = _black_lines(energy_figure(_energy_trace(), marker_step=marker))
    assert line.x0 == line.x1 == x and line.type == "line"


def test_energy_figure_gives_each_segment_its_own_panel_and_scale_and_handles_an_empty_trace():
    """CDRL's levels differ by orders of magnitude (level 0 near -1e6): one shared axis would flatten the others."""
    trace = _energy_trace(steps=6)
    trace.energies = [e * (1e6 if t >= 3 else 1.0) - 5 for t, e in enumerate(trace.energies)]
    trace.segments = [("level 1", 0, 3), ("level 0", 3, 6)]
    fig = energy_figure(trace, "CDRL", marker_step=4)
    assert "one panel per level, each on its own energy scale" in fig.layout.title.text
    assert [a.text for a in fig.layout.annotations] == ["level 1", "level 0"]
    means = [t for t in fig.data if t.name == "mean energy"]
    assert [list(m.x) for m in means] == [[0, 1, 2], [3, 4, 5]] and means[0].yaxis != means[1].yaxis
    e = trace.energy_matrix().numpy()
    np.testing.assert_allclose(means[1].y, e[3:].mean(1), rtol=1e-6)
    grads = [t for t in fig.data if t.name == "mean |grad E|"]
    assert len(grads) == 2 and {g.yaxis for g in grads}.isdisjoint({m.yaxis for m in means})
    (line,) = _black_lines(fig)  # the scrub marker, in level 0's column (x axis 2), through both rows
    assert line.x0 == line.x1 == 4 and line.xref == "x2" and line.yref == "paper"
    assert _black_lines(energy_figure(trace, marker_step=100))[0].x0 == 5
    single = energy_figure(_energy_trace(), "one chain")
    assert single.layout.title.text == "one chain" and len(single.data) == 3
    empty = energy_figure(Trace(), "nothing", marker_step=3)
    assert len(empty.data) == 0 and empty.layout.title.text == "nothing (no steps run)"


def _density(n: int = 5, lim: float = 2.0):
    xs = torch.linspace(-lim, lim, n)
    ys = torch.linspace(-lim, lim, n)
    return xs, ys, torch.exp(-(xs[None] ** 2 + ys[:, None] ** 2))


def test_chains_figure_draws_the_density_each_path_and_the_end_points():
    frames = [torch.randn(5, 2, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    final = frames[-1] * 0.5
    fig = chains_figure(_density(), Trace(frames=frames), final, max_paths=2, title="paths")
    heat, *paths, ends = fig.data
    assert heat.type == "heatmap" and len(paths) == 2 and ends.mode == "markers" and fig.layout.title.text == "paths"
    np.testing.assert_allclose(heat.z, _density()[2].numpy())
    for b, path in enumerate(paths):  # chain b through every recorded frame, in order
        np.testing.assert_allclose(path.x, [f[b, 0] for f in frames])
        np.testing.assert_allclose(path.y, [f[b, 1] for f in frames])
        assert path.mode == "lines"
    np.testing.assert_allclose(ends.x, final[:, 0].numpy())
    np.testing.assert_allclose(ends.y, final[:, 1].numpy())
    assert tuple(fig.layout.xaxis.range) == tuple(fig.layout.yaxis.range) == (-2.0, 2.0)
    # More paths allowed than chains: all 5 are drawn; no frames recorded: only the density and the ends.
    assert len(chains_figure(_density(), Trace(frames=frames), final, max_paths=32).data) == 1 + 5 + 1
    heat, ends = chains_figure(_density(), Trace(), final).data
    assert heat.type == "heatmap" and ends.mode == "markers"
