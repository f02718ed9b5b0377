"""Checkpoint safety: loading never unpickles, corrupt files are caught, exports are atomic.

tests/test_hub.py covers the everyday errors (missing files, half-truncated weights, kind and
shape mismatches); this file adds the hostile cases: planted pickles whose payload would run code,
bit flips inside the tensor data, malformed config entries, an architecture bomb in config.json,
and crashes in the middle of an export.
"""
import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import studio
import studio.hub as hub
from studio.errors import CheckpointError
from studio.evaluator import EvaluatorConfig, EvaluatorNet
from studio.hub import ModelCard, load, save_checkpoint
from studio.toy import Ring2D, RingConfig


def _save_ring(path: Path, radius=1.5) -> Ring2D:
    model = Ring2D(RingConfig(radius=radius, width=0.3))
    save_checkpoint(path, "toy-ring", model.config, model.state_dict(), ModelCard(summary="A ring."))
    return model


class _Payload:
    """Unpickling this creates ``marker``: a stand-in for arbitrary code execution."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def malicious(tmp_path):
    """Pickle bytes that *do* execute when unpickled (shown here, on a separate marker)."""
    probe = tmp_path / "probe-executed"
    pickle.loads(pickle.dumps(_Payload(probe))).close()
    assert probe.exists()  # the payload is live: unpickling it runs code
    marker = tmp_path / "PWNED"
    return pickle.dumps({"weight": _Payload(marker)}), marker


def test_planted_pickle_next_to_a_valid_config_is_refused_not_executed(tmp_path, malicious, monkeypatch):
    payload, marker = malicious
    _save_ring(tmp_path / "ring")
    (tmp_path / "ring" / "model.safetensors").unlink()
    (tmp_path / "ring" / "pytorch_model.bin").write_bytes(payload)
    with pytest.raises(CheckpointError, match="no model.safetensors.*never pickles"):
        load(tmp_path / "ring")
    # The pickle disguised as the safetensors file is parsed as safetensors (and rejected), never unpickled.
    (tmp_path / "ring" / "model.safetensors").write_bytes(payload)
    with pytest.raises(CheckpointError, match="corrupt"):
        load(tmp_path / "ring")
    # --init-from in training goes through the same reader.
    from train.common import init_from_checkpoint

    with pytest.raises(CheckpointError, match="corrupt"):
        init_from_checkpoint(Ring2D(RingConfig()), str(tmp_path / "ring"))
    assert not marker.exists()


def test_valid_checkpoint_loads_with_every_unpickler_disabled(tmp_path, malicious, monkeypatch):
    payload, marker = malicious
    model = _save_ring(tmp_path / "ring", radius=2.5)
    (tmp_path / "ring" / "pytorch_model.bin").write_bytes(payload)  # sits next to valid weights: ignored

    def forbidden(*args, **kwargs):
        raise AssertionError("studio.load tried to unpickle something")

    for target, name in [(pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")]:
        monkeypatch.setattr(target, name, forbidden)
    loaded = load(tmp_path / "ring")
    assert float(loaded.radius) == 2.5 and not marker.exists()
    x = torch.randn(3, 2)
    torch.testing.assert_close(loaded.energy(x), model.energy(x))


def test_hub_download_fetches_only_safetensors(tmp_path, hf_cache, malicious):
    """A Hub repo with a pickle in it: only config.json, model.safetensors and README.md are fetched."""
    from test_hub import _put_in_hf_cache

    payload, marker = malicious
    _save_ring(tmp_path / "ring", radius=1.75)
    (tmp_path / "ring" / "pytorch_model.bin").write_bytes(payload)
    _put_in_hf_cache(hf_cache, "attacker/ring", tmp_path / "ring")
    assert float(load("attacker/ring").radius) == 1.75 and not marker.exists()


# -- corrupt weights ------------------------------------------------------------------------------


def _header_len(path: Path) -> int:
    return 8 + int.from_bytes(path.read_bytes()[:8], "little")


@pytest.mark.parametrize("damage, match", [
    ("flip a bit in the tensor data", "corrupt: it does not match the SHA-256"),
    ("flip a bit in the header", "corrupt"),
    ("header length far beyond the file", "corrupt or truncated"),
    ("cut to 8 bytes", "corrupt or truncated"),
    ("empty file", "corrupt or truncated"),
    ("append garbage", "corrupt"),
])
def test_damaged_weights_give_a_clear_error(tmp_path, damage, match):
    _save_ring(tmp_path / "ring")
    weights = tmp_path / "ring" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    if damage == "flip a bit in the tensor data":
        data[_header_len(weights) + 2] ^= 0x10  # the safetensors header cannot see this one
    elif damage == "flip a bit in the header":
        data[12] ^= 0x04
    elif damage == "header length far beyond the file":
        data[:8] = (2**62).to_bytes(8, "little")
    elif damage == "cut to 8 bytes":
        data = data[:8]
    elif damage == "empty file":
        data = bytearray()
    else:
        data += b"\x00garbage"
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=match):
        load(tmp_path / "ring")


def test_weights_directory_and_corrupt_metadata(tmp_path):
    _save_ring(tmp_path / "ring")
    weights = tmp_path / "ring" / "model.safetensors"
    weights.unlink()
    weights.mkdir()  # a folder where the file should be
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        load(tmp_path / "ring")
    weights.rmdir()
    model = Ring2D(RingConfig(radius=1.5, width=0.3))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights),
              metadata={"kind": "toy-ring", "config": "{not json"})
    cfg = json.loads((tmp_path / "ring" / "config.json").read_text())
    cfg.pop("weights_sha256")  # as in checkpoints written before checksums (still loadable)
    (tmp_path / "ring" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="stored with the weights is not valid JSON"):
        load(tmp_path / "ring")


# -- malformed config.json ------------------------------------------------------------------------


@pytest.mark.parametrize("edit, match", [
    (lambda p: p.pop("config"), "lacks the 'config' entry"),
    (lambda p: p.pop("kind"), "lacks the 'kind' entry"),
    (lambda p: p.update(kind=["toy-ring"]), "'kind' must be a string"),
    (lambda p: p.update(config=[1.5, 0.3]), "'config' must be a mapping"),
    (lambda p: p.update(weights_sha256="0" * 64), "does not match the SHA-256"),
])
def test_malformed_config_entries(tmp_path, edit, match):
    _save_ring(tmp_path / "ring")
    path = tmp_path / "ring" / "config.json"
    payload = json.loads(path.read_text())
    edit(payload)
    path.write_text(json.dumps(payload))
    with pytest.raises(CheckpointError, match=match):
        load(tmp_path / "ring")
    (tmp_path / "ring" / "config.json").write_text("[1, 2, 3]")
    with pytest.raises(CheckpointError, match="lacks the 'kind' and 'config' entries"):
        load(tmp_path / "ring")


@pytest.mark.parametrize("config, match", [
    ({"radius": "1.5; import os", "width": 0.3}, "field 'radius' should be float"),
    ({"radius": 1.5, "width": None}, "field 'width' should be float"),
    ({"radius": True, "width": 0.3}, "field 'radius' should be float"),
])
def test_config_values_of_the_wrong_type(tmp_path, config, match):
    """Consistent files (config.json and the weights' metadata agree) whose values have the wrong type."""
    save_checkpoint(tmp_path / "r", "toy-ring", config, Ring2D(RingConfig()).state_dict(), "x")
    with pytest.raises(CheckpointError, match=match):
        load(tmp_path / "r")


def test_architecture_bomb_in_config_is_refused(tmp_path):
    """width = 10**6 would need terabytes: building the model fails, and that is a CheckpointError, not a crash."""
    model = EvaluatorNet(EvaluatorConfig(width=2, feature_dim=4, class_names=[str(i) for i in range(10)]))
    save_checkpoint(tmp_path / "ev", "evaluator", model.config, model.state_dict(), "tiny")
    path = tmp_path / "ev" / "config.json"
    payload = json.loads(path.read_text())
    payload["config"]["width"] = 10**6
    path.write_text(json.dumps(payload))
    from safetensors.torch import load_file

    tensors = load_file(str(tmp_path / "ev" / "model.safetensors"))
    save_file(tensors, str(tmp_path / "ev" / "model.safetensors"),
              metadata={"kind": "evaluator", "config": json.dumps(payload["config"])})
    payload.pop("weights_sha256")
    path.write_text(json.dumps(payload))
    with pytest.raises(CheckpointError, match="cannot build a 'evaluator' model"):
        load(tmp_path / "ev")


def test_bad_references():
    for ref, match in [(None, "must be a name"), (42, "must be a name"), ("x" * 5000, "too long"), ("a\x00b", "NUL"),
                       ("   ", "Empty model reference"), ("../../etc/passwd", "Unknown model|not a checkpoint|Hub")]:
        with pytest.raises(CheckpointError, match=match):
            load(ref)


# -- atomic exports -------------------------------------------------------------------------------


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith("."))


def test_crash_mid_export_leaves_no_checkpoint_under_the_final_name(tmp_path, monkeypatch):
    real_save = hub.save_file

    def dies_halfway(tensors, filename, metadata=None):
        real_save(tensors, filename, metadata=metadata)
        Path(filename).write_bytes(Path(filename).read_bytes()[:40])  # a torn write ...
        raise KeyboardInterrupt("killed while writing the weights")  # ... then the process dies

    monkeypatch.setattr(hub, "save_file", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        _save_ring(tmp_path / "ring")
    assert not (tmp_path / "ring").exists() and _leftovers(tmp_path) == []


def test_crash_mid_re_export_keeps_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    old = _save_ring(tmp_path / "ring", radius=1.0)
    (tmp_path / "ring" / "metrics.json").write_text('{"fd": 1.0}')
    before = {p.name: p.read_bytes() for p in (tmp_path / "ring").iterdir()}

    def card_fails(self, name):
        raise OSError("disk full while writing the model card")

    monkeypatch.setattr(ModelCard, "render", card_fails)  # weights and config already written to the temp folder
    with pytest.raises(OSError, match="disk full"):
        _save_ring(tmp_path / "ring", radius=3.0)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in (tmp_path / "ring").iterdir()} == before
    assert _leftovers(tmp_path) == []
    x = torch.randn(4, 2)
    torch.testing.assert_close(load(tmp_path / "ring").energy(x), old.energy(x))

    # A successful re-export replaces the weights and carries the other files over.
    _save_ring(tmp_path / "ring", radius=3.0)
    assert float(load(tmp_path / "ring").radius) == 3.0
    assert (tmp_path / "ring" / "metrics.json").read_text() == '{"fd": 1.0}' and _leftovers(tmp_path) == []


def test_export_without_atomic_exchange_falls_back_to_rename(tmp_path, monkeypatch):
    _save_ring(tmp_path / "ring", radius=1.0)
    monkeypatch.setattr(hub, "_exchange", lambda a, b: False)  # e.g. macOS or an old kernel
    _save_ring(tmp_path / "ring", radius=2.0)
    assert float(studio.load(tmp_path / "ring").radius) == 2.0 and _leftovers(tmp_path) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match="not a directory"):
        _save_ring(tmp_path / "file")
    assert _leftovers(tmp_path) == []


def test_training_export_is_atomic_too(tmp_path, monkeypatch):
    """train.common.export (every train script's last step) goes through the same atomic writer."""
    from train.common import export

    model = Ring2D(RingConfig(radius=1.25))

    def crash(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(hub, "_fsync_tree", crash)  # everything written, not yet renamed into place
    with pytest.raises(KeyboardInterrupt):
        export("ring", model, ModelCard(summary="r"), wall_seconds=1.0, steps=1, export_dir=str(tmp_path / "ring"))
    assert not (tmp_path / "ring").exists() and _leftovers(tmp_path) == []
    monkeypatch.undo()
    export("ring", model, ModelCard(summary="r"), wall_seconds=1.0, steps=1, export_dir=str(tmp_path / "ring"))
    assert float(load(tmp_path / "ring").radius) == 1.25
