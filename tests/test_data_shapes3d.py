"""shapes3d: cameras, rendering, the cached dataset and the reprojection check (other loaders: test_data_*.py)."""

import numpy as np
import pytest
import torch

from studio.data import shapes3d
from studio.errors import StudioError


# ----------------------------------------------------------------------------- shapes3d


def test_cameras_are_orthonormal_and_look_at_origin():
    c2w = shapes3d.camera_to_world(30.0, 20.0, radius=3.0)
    rot = c2w[:3, :3]
    torch.testing.assert_close(rot.T @ rot, torch.eye(3), atol=1e-6, rtol=0)
    assert float(torch.linalg.det(rot)) == pytest.approx(1.0, abs=1e-6)
    assert float(c2w[:3, 3].norm()) == pytest.approx(3.0, abs=1e-6)
    torch.testing.assert_close(-rot[:, 2], -c2w[:3, 3] / 3.0, atol=1e-6, rtol=0)  # looks down -z at the origin
    o, d = shapes3d.get_rays(c2w, 8, shapes3d.focal_from_fov(40, 8))
    centre = (o[3:5, 3:5] + 3.0 * d[3:5, 3:5]).reshape(-1, 3)  # rays around the centre reach near the origin
    assert centre.norm(dim=1).max() < 0.3
    torch.testing.assert_close(d.norm(dim=-1), torch.ones(8, 8))


def test_every_category_renders_a_partial_mask_on_white():
    for c, name in enumerate(shapes3d.CATEGORIES):
        obj = shapes3d.random_object(name, np.random.default_rng(c))
        r = shapes3d.render_object(obj, shapes3d.camera_to_world(40.0, 25.0), size=24)
        a = r["alpha"]
        assert 0.02 < float(a.mean()) < 0.9, name
        bg = a == 0
        assert torch.all(r["rgb"][:, bg] == 1.0) and torch.all(r["depth"][bg] == 0)
        assert r["depth"][~bg].min() > 1.0
    with pytest.raises(StudioError):
        shapes3d.random_object("boat", np.random.default_rng(0))


def test_dataset_is_deterministic_and_cached(tmp_path):
    a = shapes3d.build_dataset("train", 3, views=4, size=16, seed=1, cache_dir=tmp_path)
    assert a.rgb.shape == (3, 4, 3, 16, 16) and a.rgb.dtype == torch.uint8 and a.c2w.shape == (3, 4, 4, 4)
    assert a.label.tolist() == [0, 1, 2]
    files = list(tmp_path.iterdir())
    assert len(files) == 1
    b = shapes3d.build_dataset("train", 3, views=4, size=16, seed=1, cache_dir=tmp_path)
    c = shapes3d.build_dataset("train", 3, views=4, size=16, seed=1, cache_dir=tmp_path, use_cache=False)
    for field in ("rgb", "alpha", "depth", "c2w", "azimuth"):
        assert torch.equal(getattr(a, field), getattr(b, field)) and torch.equal(getattr(a, field), getattr(c, field))
    d = shapes3d.build_dataset("train", 3, views=4, size=16, seed=2, cache_dir=tmp_path)
    assert not torch.equal(a.rgb, d.rgb) and len(list(tmp_path.iterdir())) == 2
    test = shapes3d.build_dataset("test", 3, views=4, size=16, seed=1, cache_dir=tmp_path)
    assert set(test.object_id.tolist()).isdisjoint(a.object_id.tolist())


def test_reprojection_surface_points_land_inside_other_views_masks():
    size = 32
    focal = shapes3d.focal_from_fov(shapes3d.FOV_DEG, size)
    inside = total = 0
    for oid in range(6):
        obj, _ = shapes3d.make_object(oid, seed=0)
        c2w = torch.stack([shapes3d.camera_to_world(az, el) for az, el in ((10.0, 20.0), (100.0, 35.0))])
        r = shapes3d.render_object(obj, c2w, size, focal)
        o, d = shapes3d.get_rays(c2w[0], size, focal)
        hit = r["alpha"][0] > 0.5
        pts = (o + r["depth"][0][..., None] * d)[hit]  # world points on the surface seen by view 0
        w2c = torch.linalg.inv(c2w[1])
        cam = pts @ w2c[:3, :3].T + w2c[:3, 3]
        j = cam[:, 0] / -cam[:, 2] * focal + size / 2
        i = -cam[:, 1] / -cam[:, 2] * focal + size / 2
        ii, jj = i.floor().long().clamp(0, size - 1), j.floor().long().clamp(0, size - 1)
        # Pixel centres sample the silhouette: allow one pixel of discretisation at its border.
        mask = torch.nn.functional.max_pool2d(r["alpha"][1][None, None], 3, 1, 1)[0, 0] > 0.5
        inside += int(mask[ii, jj].sum())
        total += len(pts)
    frac = inside / total
    print(f"reprojection: {frac:.4f} of {total} surface points inside the other view's mask")
    assert frac >= 0.995
