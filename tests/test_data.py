"""Loaders on tiny fixtures the tests build: IDX files, an emoji tree with RGBA PNGs, rendered views."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from studio.data import emoji, fashion_mnist, shapes3d
from studio.errors import DataNotFoundError, StudioError


# ----------------------------------------------------------------------------- Fashion-MNIST


@pytest.fixture
def fmnist_root(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 60), ("t10k", 20)):
        fashion_mnist.write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        fashion_mnist.write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))
    return tmp_path


def test_fashion_mnist_shapes_range_padding_and_labels(fmnist_root):
    test = fashion_mnist.load_fashion_mnist("test", root=fmnist_root)
    assert test.images.shape == (20, 1, 32, 32) and test.labels.tolist() == [i % 10 for i in range(20)]
    assert test.images.min() >= -1 and test.images.max() <= 1
    assert (test.images[:, :, :2] == -1).all() and (test.images[:, :, :, -2:] == -1).all()
    raw = fashion_mnist.read_idx(fmnist_root / "t10k-images-idx3-ubyte.gz")
    torch.testing.assert_close(test.images[3, 0, 2:30, 2:30], torch.from_numpy(raw[3].copy()).float() / 127.5 - 1)
    assert test.class_names[9] == "Ankle boot"


def test_fashion_mnist_val_split_is_fixed_and_disjoint(fmnist_root):
    train = fashion_mnist.load_fashion_mnist("train", root=fmnist_root)
    val = fashion_mnist.load_fashion_mnist("val", root=fmnist_root)
    full = fashion_mnist.load_fashion_mnist("train_full", root=fmnist_root)
    assert len(train) + len(val) == len(full) == 60 and len(val) == 6
    rows = {tuple(x.flatten().tolist()) for x in train.images}
    assert not any(tuple(x.flatten().tolist()) in rows for x in val.images)
    torch.testing.assert_close(val.images, fashion_mnist.load_fashion_mnist("val", root=fmnist_root).images)


def test_fashion_mnist_errors(tmp_path, fmnist_root):
    with pytest.raises(DataNotFoundError, match="get_data.sh"):
        fashion_mnist.load_fashion_mnist("test", root=tmp_path / "missing")
    with pytest.raises(StudioError, match="Unknown split"):
        fashion_mnist.load_fashion_mnist("dev", root=fmnist_root)
    bad = tmp_path / "bad.gz"
    import gzip
    bad.write_bytes(gzip.compress(b"\x01\x02\x03\x04hello"))
    with pytest.raises(StudioError, match="magic"):
        fashion_mnist.read_idx(bad)
    trunc = tmp_path / "trunc"
    fashion_mnist.write_idx(trunc, np.zeros((3, 4), np.uint8))
    trunc.write_bytes(trunc.read_bytes()[:-2])
    with pytest.raises(StudioError, match="truncated"):
        fashion_mnist.read_idx(trunc)


# ----------------------------------------------------------------------------- emoji


def _png(path, colour, alpha):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.zeros((64, 64, 4), np.uint8)
    arr[16:48, 16:48] = [*colour, alpha]
    Image.fromarray(arr, "RGBA").save(path)


@pytest.fixture
def emoji_root(tmp_path):
    """Eight base emoji (one with a skin variant), one Component entry, one missing a Google image."""
    entries = []
    for i in range(8):
        e = {"unified": f"1F60{i}", "image": f"1f60{i}.png", "category": "Smileys", "has_img_twitter": True, "has_img_google": True}
        if i == 0:
            e["skin_variations"] = {"1F3FB": {"unified": "1F600-1F3FB", "image": "1f600-1f3fb.png", "has_img_twitter": True, "has_img_google": True}}
        entries.append(e)
    entries.append({"unified": "1F3FB", "image": "1f3fb.png", "category": "Component", "has_img_twitter": True, "has_img_google": True})
    entries.append({"unified": "1F999", "image": "1f999.png", "category": "Animals", "has_img_twitter": True, "has_img_google": False})
    for style, colour in (("twitter", (200, 30, 30)), ("google", (30, 30, 200))):
        (tmp_path / style).mkdir()
        meta = [dict(e) for e in entries]
        if style == "google":
            meta[-1]["has_img_google"] = False
        (tmp_path / style / "emoji.json").write_text(json.dumps(meta))
        for e in entries:
            for item in [e, *e.get("skin_variations", {}).values()]:
                _png(tmp_path / style / "img" / style / "64" / item["image"], colour, 255)
    return tmp_path


def test_emoji_index_split_and_pairs(emoji_root, monkeypatch, tmp_path):
    monkeypatch.setenv("STUDIO_DATA_DIR", str(tmp_path / "cache-root"))
    idx = emoji.index(emoji_root)
    names = [e.image for e in idx]
    assert "1f3fb.png" not in names and "1f999.png" not in names and "1f600-1f3fb.png" in names and len(idx) == 9
    variant = next(e for e in idx if e.image == "1f600-1f3fb.png")
    assert variant.base == "1F600"
    train = emoji.load_emoji_pairs("train", 32, root=emoji_root)
    test = emoji.load_emoji_pairs("test", 32, root=emoji_root)
    assert set(train.names).isdisjoint(test.names) and len(train) + len(test) == 9
    both = train.names + test.names
    assert ("1f600.png" in train.names) == ("1f600-1f3fb.png" in train.names)  # variants follow their base
    assert sorted(both) == sorted(names)
    assert train.twitter.shape == (len(train), 3, 32, 32)
    # Transparent corners composite to white (+1); the drawn square keeps its colour.
    full = emoji.load_emoji_pairs("all", 64, root=emoji_root)
    assert torch.allclose(full.twitter[:, :, 0, 0], torch.ones(len(full), 3))
    assert full.twitter[0, 0, 32, 32] > 0.5 and full.google[0, 2, 32, 32] > 0.5 and full.google[0, 0, 32, 32] < -0.5
    cached = emoji.load_emoji_pairs("all", 64, root=emoji_root)
    torch.testing.assert_close(cached.twitter, full.twitter)


def test_emoji_unpaired_vs_paired_batches(emoji_root, monkeypatch, tmp_path):
    monkeypatch.setenv("STUDIO_DATA_DIR", str(tmp_path / "c"))
    pairs = emoji.load_emoji_pairs("all", 16, root=emoji_root)
    pairs.twitter = torch.arange(len(pairs)).view(-1, 1, 1, 1).float().expand(-1, 3, 16, 16)  # tag rows by index
    pairs.google = 11 * pairs.twitter
    mismatched = 0
    it = emoji.unpaired_batches(pairs, 4, torch.Generator().manual_seed(0))
    for _ in range(6):
        t, g = next(it)
        # google row k holds twitter row k + 10 k = 11 k, so its own index is g / 11.
        mismatched += int((t[:, 0, 0, 0] != (g[:, 0, 0, 0] / 11).round()).sum())
    assert mismatched > 0
    for t, g in emoji.paired_batches(pairs, 4):
        torch.testing.assert_close(g[:, 0, 0, 0] / 11, t[:, 0, 0, 0])


def test_emoji_errors(tmp_path):
    with pytest.raises(DataNotFoundError, match="get_data.sh"):
        emoji.load_emoji_pairs("train", root=tmp_path)
    with pytest.raises(StudioError, match="Unknown split"):
        emoji.load_emoji_pairs("val", root=tmp_path)


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
