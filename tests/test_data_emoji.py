"""studio.data.emoji on a fake emoji tree the tests build (emoji.json + generated RGBA PNGs, both styles)."""
import json
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from studio.data import emoji
from studio.errors import DataNotFoundError, StudioError

BASES = [f"1F6{i:02X}" for i in range(24)]
TEST_BASE, TRAIN_BASE = "1F600", "1F601"  # pinned below: one base with skin variants in each split
TONES = ("1F3FB", "1F3FC")


def _colour(name: str, style: str) -> tuple[int, int, int]:
    """A distinct, known colour per (image, style), so pairing and order can be checked pixel-wise."""
    k = zlib.crc32(f"{style}/{name}".encode())
    return k & 255, (k >> 8) & 255, (k >> 16) & 255


def _write_png(path, rgb) -> None:
    """64x64 RGBA: opaque square in the middle, a half-transparent black bar, and a 16 px border that is
    fully transparent *red*, which must still come out white after compositing."""
    arr = np.zeros((64, 64, 4), np.uint8)
    arr[...] = (255, 0, 0, 0)
    arr[16:48, 16:48] = (*rgb, 255)
    arr[16:48, 40:48] = (0, 0, 0, 128)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, "RGBA").save(path)


def _entry(unified: str, category: str = "Smileys & Emotion", google: bool = True, tones=()) -> dict:
    e = {"unified": unified, "image": f"{unified.lower()}.png", "short_name": unified.lower(), "category": category,
         "has_img_twitter": True, "has_img_google": google}
    if tones:
        e["skin_variations"] = {t: {"unified": f"{unified}-{t}", "image": f"{unified.lower()}-{t.lower()}.png",
                                    "has_img_twitter": True, "has_img_google": True} for t in tones}
    return e


def build_tree(root, entries) -> None:
    """Write the same emoji.json for both styles (as the npm packs do) and a PNG wherever a flag says so."""
    for style in emoji.STYLES:
        (root / style).mkdir(parents=True, exist_ok=True)
        (root / style / "emoji.json").write_text(json.dumps(entries))
        for e in entries:
            for item in [e, *e.get("skin_variations", {}).values()]:
                if item[f"has_img_{style}"]:
                    _write_png(root / style / "img" / style / "64" / item["image"], _colour(item["image"], style))


def _entries() -> list[dict]:
    entries = [_entry(b, tones=TONES if b in (TEST_BASE, TRAIN_BASE) else ()) for b in BASES]
    entries[0]["skin_variations"]["1F3FC"]["has_img_google"] = False  # a variant missing in one style
    entries.append(_entry("1F3FB", category="Component"))
    entries.append(_entry("1F9FF", category="Objects", google=False))  # no Google drawing
    return entries


@pytest.fixture(autouse=True)
def data_home(tmp_path, monkeypatch):
    """Keep the loader's cache inside the test's tmp dir, never in the repo's data/."""
    monkeypatch.setenv("STUDIO_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture
def root(tmp_path):
    build_tree(tmp_path / "emoji", _entries())
    return tmp_path / "emoji"


EXPECTED = sorted([f"{b.lower()}.png" for b in BASES] + ["1f600-1f3fb.png", "1f601-1f3fb.png", "1f601-1f3fc.png"])


# ----------------------------------------------------------------------------- index and split


def test_split_of_is_pinned_and_near_fifteen_percent():
    # Shipped evaluator metrics are measured on this split: changing the hash silently changes the test set.
    assert [emoji.split_of(b) for b in ("1F600", "1F601", "1F602", "1F603", "1F385")] == ["test", "train", "train", "test", "test"]
    frac = np.mean([emoji.split_of(f"name-{i}") == "test" for i in range(3000)])
    assert 0.12 < frac < 0.18


def test_index_keeps_both_style_entries_and_their_variants(root):
    idx = emoji.index(root)
    assert sorted(e.image for e in idx) == EXPECTED  # no Component, no one-style emoji or variant
    by_image = {e.image: e for e in idx}
    assert by_image["1f601-1f3fc.png"].base == "1F601" and by_image["1f601-1f3fc.png"].category == "Smileys & Emotion"


def test_splits_are_disjoint_cover_everything_and_are_stable(root):
    train, test, every = (emoji.load_emoji_pairs(s, 32, root=root) for s in ("train", "test", "all"))
    assert set(train.names).isdisjoint(test.names)
    assert sorted(train.names + test.names) == sorted(every.names) == EXPECTED
    assert 0 < len(test) < len(train)
    for name in test.names:
        assert emoji.split_of(name.split("-")[0].split(".")[0].upper()) == "test"
    assert emoji.load_emoji_pairs("test", 32, root=root, cache=False).names == test.names


def test_holdout_fold_goes_by_base_emoji_and_is_pinned(root):
    train = emoji.load_emoji_pairs("train", 32, root=root)
    fold = emoji.holdout_mask(train.names, 0.3, root=root)
    held = {n for n, m in zip(train.names, fold.tolist()) if m}
    assert {"1f601.png", "1f601-1f3fb.png", "1f601-1f3fc.png"} <= held  # the base in the fold: its variants too
    assert held == {"1f601.png", "1f601-1f3fb.png", "1f601-1f3fc.png", "1f604.png", "1f605.png", "1f60e.png", "1f60f.png",
                    "1f612.png", "1f613.png", "1f617.png"}  # pinned: the same fold on every machine
    assert not emoji.holdout_mask(train.names, 0.0, root=root).any()
    bases = dict(zip(train.names, emoji.base_names(train.names, root=root)))
    assert bases["1f601-1f3fb.png"] == bases["1f601-1f3fc.png"] == bases["1f601.png"] != bases["1f604.png"]
    assert held < {n for n, m in zip(train.names, emoji.holdout_mask(train.names, 0.5, root=root).tolist()) if m}  # nested
    for bad in (-0.1, 1.0, float("nan")):
        with pytest.raises(StudioError, match="holdout fraction"):
            emoji.holdout_mask(train.names, bad, root=root)


def test_skin_variants_follow_their_base(root):
    train, test = emoji.load_emoji_pairs("train", 32, root=root), emoji.load_emoji_pairs("test", 32, root=root)
    assert {"1f600.png", "1f600-1f3fb.png"} <= set(test.names)  # base in test: its variant too
    assert {"1f601.png", "1f601-1f3fb.png", "1f601-1f3fc.png"} <= set(train.names)


# ----------------------------------------------------------------------------- pixels


def test_pixels_are_composited_on_white_and_paired(root):
    pairs = emoji.load_emoji_pairs("all", 64, root=root)
    assert pairs.twitter.shape == pairs.google.shape == (len(pairs), 3, 64, 64)
    assert pairs.twitter.dtype == torch.float32 and pairs.twitter.min() >= -1 and pairs.twitter.max() <= 1
    # Fully transparent red border -> exactly white (+1), never red.
    assert (pairs.twitter[:, :, :16] == 1.0).all() and (pairs.google[:, :, :, :16] == 1.0).all()
    # Half-transparent black over white -> mid grey.
    torch.testing.assert_close(pairs.twitter[:, :, 30, 44], torch.full((len(pairs), 3), 127 / 127.5 - 1))
    for i, name in enumerate(pairs.names):  # index i is the same emoji in both styles
        for style in emoji.STYLES:
            want = torch.tensor(_colour(name, style), dtype=torch.float32) / 127.5 - 1
            torch.testing.assert_close(pairs.style(style)[i, :, 32, 20], want)
    assert pairs.categories == ["Smileys & Emotion"] * len(pairs)


@pytest.mark.parametrize("size", [32, 48])
def test_resized_sizes_keep_colours_and_white_border(root, size):
    pairs = emoji.load_emoji_pairs("train", size, root=root)
    assert pairs.twitter.shape == (len(pairs), 3, size, size)
    assert pairs.twitter.min() >= -1 and pairs.twitter.max() <= 1
    assert torch.allclose(pairs.google[:, :, 0, 0], torch.ones(len(pairs), 3))
    c = size // 2 - size // 8  # well inside the opaque, solid-coloured part of the square
    want = torch.tensor([_colour(n, "twitter") for n in pairs.names], dtype=torch.float32) / 127.5 - 1
    torch.testing.assert_close(pairs.twitter[:, :, c, c], want, atol=2 / 127.5, rtol=0)


def test_composite_then_lanczos_matches_pil_reference(root):
    # The spec, spelled out with PIL: composite on white first, then LANCZOS (never the other way round).
    pairs = emoji.load_emoji_pairs("test", 32, root=root)
    im = Image.open(root / "google" / "img" / "google" / "64" / pairs.names[0])
    ref = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), im.convert("RGBA"))
    ref = np.asarray(ref.convert("RGB").resize((32, 32), Image.LANCZOS), np.float32) / 127.5 - 1
    torch.testing.assert_close(pairs.google[0], torch.from_numpy(ref).permute(2, 0, 1))


@pytest.mark.parametrize("size", [0, -32, 3.5, True, "64"])
def test_bad_sizes_are_rejected(root, size):
    with pytest.raises(StudioError, match="size"):
        emoji.load_emoji_pairs("train", size, root=root)


# ----------------------------------------------------------------------------- cache


def test_cache_is_reused_and_invalidated_when_the_install_changes(root, data_home, monkeypatch):
    first = emoji.load_emoji_pairs("all", 32, root=root)
    files = list((data_home / "cache").glob("*.npz"))
    assert len(files) == 1
    decode = emoji._load_image
    monkeypatch.setattr(emoji, "_load_image", lambda *a: pytest.fail("decoded although cached"))
    again = emoji.load_emoji_pairs("all", 32, root=root)
    assert again.names == first.names and torch.equal(again.twitter, first.twitter)
    monkeypatch.setattr(emoji, "_load_image", decode)
    # Swap one emoji for another: same count, different files, so only the file-list hash can tell.
    swapped = [e for e in _entries() if e["unified"] != BASES[-1]] + [_entry("1F680", category="Travel & Places")]
    build_tree(root, swapped)
    changed = emoji.load_emoji_pairs("all", 32, root=root)
    assert len(changed) == len(first) and "1f680.png" in changed.names
    k = changed.names.index("1f680.png")
    assert changed.categories[k] == "Travel & Places"
    want = torch.tensor(_colour("1f680.png", "twitter"), dtype=torch.float32) / 127.5 - 1
    torch.testing.assert_close(changed.twitter[k, :, 16, 10], want, atol=2 / 127.5, rtol=0)  # fresh pixels, not stale
    build_tree(root, _entries())
    for junk in (b"not an npz", None):  # a corrupt or wrongly shaped cache file is rebuilt, not trusted
        if junk is None:
            np.savez(files[0], twitter=np.zeros((1, 32, 32, 3), np.uint8), google=np.zeros((1, 32, 32, 3), np.uint8))
        else:
            files[0].write_bytes(junk)
        torch.testing.assert_close(emoji.load_emoji_pairs("all", 32, root=root).twitter, first.twitter)


def test_cache_false_writes_nothing(root, data_home):
    emoji.load_emoji_pairs("test", 32, root=root, cache=False)
    assert not (data_home / "cache").exists()


# ----------------------------------------------------------------------------- batching


def _tagged(n: int) -> emoji.EmojiPairs:
    """Pairs whose pixel values are their row index (Google rows offset by 1000), to follow rows through batching."""
    t = torch.arange(n, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 3, 4, 4)
    return emoji.EmojiPairs([f"{i}.png" for i in range(n)], t, t + 1000, ["c"] * n)


def _ids(batch: torch.Tensor, offset: int = 0) -> list[int]:
    return (batch[:, 0, 0, 0] - offset).long().tolist()


def test_unpaired_batches_shuffle_domains_independently():
    pairs, bs = _tagged(20), 4
    it = emoji.unpaired_batches(pairs, bs, torch.Generator().manual_seed(0))
    epoch = [next(it) for _ in range(20 // bs)]
    t_ids = [i for t, _ in epoch for i in _ids(t)]
    g_ids = [i for _, g in epoch for i in _ids(g, 1000)]
    assert all(t.shape == (bs, 3, 4, 4) and g.shape == (bs, 3, 4, 4) for t, g in epoch)
    assert sorted(t_ids) == sorted(g_ids) == list(range(20))  # each epoch visits every row once per domain
    assert t_ids != g_ids and t_ids != list(range(20))  # shuffled, and not in step with each other
    assert len(next(it)[0]) == bs  # endless: a new epoch starts
    same = emoji.unpaired_batches(pairs, bs, torch.Generator().manual_seed(0))
    assert [_ids(next(same)[0]) for _ in range(3)] == [_ids(t) for t, _ in epoch[:3]]  # seeded


def test_paired_batches_keep_pairs_and_order():
    pairs = _tagged(10)
    batches = list(emoji.paired_batches(pairs, 4))
    assert [len(t) for t, _ in batches] == [4, 4, 2]  # the last, partial batch is kept for evaluation
    assert [i for t, _ in batches for i in _ids(t)] == list(range(10))
    for t, g in batches:
        assert _ids(t) == _ids(g, 1000)


def test_batch_size_errors():
    pairs = _tagged(5)
    with pytest.raises(StudioError, match="exceeds"):
        next(emoji.unpaired_batches(pairs, 6, torch.Generator()))
    with pytest.raises(StudioError, match="batch_size"):
        next(emoji.paired_batches(pairs, 0))


# ----------------------------------------------------------------------------- errors


def test_missing_install_says_to_run_get_data(tmp_path, root):
    with pytest.raises(DataNotFoundError, match=r"twitter.*get_data\.sh") as info:
        emoji.load_emoji_pairs("train", root=tmp_path / "absent")
    assert str(tmp_path / "absent" / "twitter" / "emoji.json") in str(info.value)
    (root / "google" / "emoji.json").unlink()
    with pytest.raises(DataNotFoundError, match="'google'"):
        emoji.load_emoji_pairs("train", root=root)


def test_missing_png_and_bad_json(root):
    (root / "google" / "img" / "google" / "64" / "1f601.png").unlink()
    with pytest.raises(DataNotFoundError, match=r"1f601\.png.*get_data\.sh"):
        emoji.load_emoji_pairs("train", 32, root=root)
    (root / "twitter" / "emoji.json").write_text("{not json")
    with pytest.raises(StudioError, match="not valid JSON"):
        emoji.load_emoji_pairs("train", 32, root=root)


def test_bad_split(root):
    with pytest.raises(StudioError, match="Unknown split 'val'"):
        emoji.load_emoji_pairs("val", root=root)
