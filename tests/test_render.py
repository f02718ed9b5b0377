"""Camera/ray geometry and volume rendering (studio.render), checked against shapes3d and analytic cases."""
import math

import pytest
import torch

from studio.data import shapes3d
from studio.errors import StudioError
from studio.render import (MAX_RESOLUTION, Camera, box_intervals, composite, get_rays, orbit_angles, project,
                           render_image, stratified_depths)


def test_a_known_point_projects_to_the_expected_pixel():
    cam = Camera(azimuth=30.0, elevation=20.0)
    c2w, f = cam.c2w(), cam.focal(64)
    # The origin (what the camera looks at) is the image centre.
    assert torch.allclose(project(torch.zeros(3), c2w, 64, f), torch.tensor([32.0, 32.0]), atol=1e-4)
    # Camera at azimuth 0, elevation 0 sits on +z: a point up (+y) is above the centre, +x is to the right,
    # by f * offset / distance pixels.
    front = Camera(0.0, 0.0)
    i, j = project(torch.tensor([0.3, 0.6, 0.0]), front.c2w(), 64, front.focal(64)).tolist()
    f0 = front.focal(64)
    assert i == pytest.approx(32 - f0 * 0.6 / 3, abs=1e-4) and j == pytest.approx(32 + f0 * 0.3 / 3, abs=1e-4)
    # Every pixel's ray passes through points that project back onto that pixel's centre.
    origins, dirs = cam.rays(64)
    for (pi, pj) in [(0, 0), (10, 50), (63, 7)]:
        p = origins[pi, pj] + 2.7 * dirs[pi, pj]
        assert torch.allclose(project(p, c2w, 64, f), torch.tensor([pi + 0.5, pj + 0.5]), atol=1e-3)


def test_cameras_and_rays_are_the_shapes3d_conventions():
    c2w = shapes3d.camera_to_world(-120.0, 35.0)
    assert torch.equal(Camera(-120.0, 35.0).c2w(), c2w)
    a, e = math.radians(-120), math.radians(35)
    centre = 3.0 * torch.tensor([math.cos(e) * math.sin(a), math.sin(e), math.cos(e) * math.cos(a)])
    assert torch.allclose(c2w[:3, 3], centre, atol=1e-5)
    origins, dirs = get_rays(c2w, 16, shapes3d.focal_from_fov(shapes3d.FOV_DEG, 16))
    assert torch.allclose(dirs.norm(dim=-1), torch.ones(16, 16), atol=1e-5)
    # shapes3d depth is the distance along these rays: hit points reproject to their pixels.
    obj, _ = shapes3d.make_object(3, 0)
    out = shapes3d.render_object(obj, c2w, 16)
    hit = out["alpha"] > 0
    points = origins[hit] + out["depth"][hit][:, None] * dirs[hit]
    ij = project(points, c2w, 16, shapes3d.focal_from_fov(shapes3d.FOV_DEG, 16))
    rows, cols = hit.nonzero().unbind(1)
    assert torch.allclose(ij, torch.stack([rows, cols], 1).float() + 0.5, atol=1e-3)


def test_box_intervals_and_stratified_samples():
    near, far, hit = box_intervals(torch.tensor([[0.0, 0.0, 3.0], [0.0, 5.0, 3.0]]), torch.tensor([[0.0, 0.0, -1.0]] * 2))
    assert near[0] == pytest.approx(2.0) and far[0] == pytest.approx(4.0) and hit.tolist() == [True, False]
    t = stratified_depths(torch.tensor([2.0]), torch.tensor([4.0]), 8, torch.Generator().manual_seed(0))
    bins = torch.linspace(2, 4, 9)
    assert ((t[0] >= bins[:-1]) & (t[0] <= bins[1:])).all()  # one sample in each bin
    assert torch.allclose(stratified_depths(torch.tensor([2.0]), torch.tensor([4.0]), 4, jitter=False),
                          torch.tensor([[2.25, 2.75, 3.25, 3.75]]))


def test_volume_rendering_identity_opaque_first_sample():
    t = torch.tensor([[2.0, 2.5, 3.0, 3.5]])
    sigma = torch.tensor([[1e6, 0.3, 5.0, 1.0]])
    rgb = torch.tensor([[[0.2, 0.4, 0.6], [1, 0, 0], [0, 1, 0], [0, 0, 1]]])
    out = composite(sigma, rgb, t, torch.tensor([4.0]))
    assert torch.allclose(out["rgb"], torch.tensor([[0.2, 0.4, 0.6]]), atol=1e-5)
    assert out["depth"].item() == pytest.approx(2.0, abs=1e-4) and out["opacity"].item() == pytest.approx(1.0, abs=1e-6)
    empty = composite(torch.zeros(1, 4), rgb, t, torch.tensor([4.0]))
    assert torch.allclose(empty["rgb"], torch.ones(1, 3)) and empty["depth"].item() == 0 and empty["opacity"].item() == 0
    # Two half-transparent samples: weights 1/2 and 1/4.
    half = math.log(2) / 0.5
    two = composite(torch.tensor([[half, half]]), rgb[:, 1:3], torch.tensor([[2.0, 2.5]]), torch.tensor([3.0]))
    assert torch.allclose(two["weights"], torch.tensor([[0.5, 0.25]]), atol=1e-5)
    assert torch.allclose(two["rgb"], torch.tensor([[0.5 + 0.25, 0.25 + 0.25, 0.25]]), atol=1e-5)


def test_render_image_of_an_analytic_sphere():
    def sphere(points):  # an opaque red ball of radius 0.5 at the origin
        inside = (points.norm(dim=-1) < 0.5).float()
        return inside * 1e4, torch.tensor([1.0, 0.0, 0.0]).expand(*points.shape)

    out = render_image(sphere, torch.stack([Camera(10.0, 20.0).c2w()]), 32, samples=128, chunk=300)
    assert out["rgb"].shape == (1, 3, 32, 32) and out["depth"].shape == (1, 32, 32)
    assert out["opacity"][0, 16, 16] > 0.99 and out["depth"][0, 16, 16].item() == pytest.approx(2.5, abs=0.03)
    assert torch.allclose(out["rgb"][0, :, 16, 16], torch.tensor([1.0, 0, 0]), atol=1e-2)
    assert out["opacity"][0, 0, 0] == 0 and torch.allclose(out["rgb"][0, :, 0, 0], torch.ones(3))
    # Disc radius in pixels: f * tan(asin(0.5 / 3)).
    f = Camera().focal(32)
    radius = f * math.tan(math.asin(0.5 / 3))
    assert (out["opacity"][0] > 0.5).sum().item() == pytest.approx(math.pi * radius**2, rel=0.15)


def test_resolution_cap_and_orbit_angles():
    with pytest.raises(StudioError, match="above the cap"):
        render_image(lambda p: (p[..., 0], p), torch.eye(4)[None], MAX_RESOLUTION + 1, 8)
    angles = orbit_angles(4, start=90)
    assert angles == [90.0, -180.0, -90.0, 0.0]
