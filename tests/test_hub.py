"""Checkpoint round trips, the offline Hub path, and every error a user can hit."""
import json
from pathlib import Path

import pytest
import torch
import yaml

import studio
from studio.errors import CheckpointError
from studio.hub import ModelCard, load, save_checkpoint, update_card_metrics
from studio.toy import GaussianMixture2D, GaussianMixtureConfig, Ring2D, RingConfig

ZERO_SHA = "0" * 40


def _save_ring(path: Path, radius=1.5) -> Ring2D:
    model = Ring2D(RingConfig(radius=radius, width=0.3))
    save_checkpoint(path, "toy-ring", model.config, model.state_dict(), ModelCard(summary="A test ring.", metrics={"acc": 0.5}))
    return model


def test_round_trip_files_and_metadata(tmp_path):
    model = _save_ring(tmp_path / "ring")
    payload = json.loads((tmp_path / "ring" / "config.json").read_text())
    assert payload["kind"] == "toy-ring" and payload["config"] == {"radius": 1.5, "width": 0.3}
    from safetensors import safe_open
    with safe_open(str(tmp_path / "ring" / "model.safetensors"), "pt") as f:
        meta = f.metadata()
    assert json.loads(meta["config"]) == payload["config"] and meta["format_version"] == "1"
    card = (tmp_path / "ring" / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front["library_name"] == "ebm-studio" and front["description"] == "A test ring."
    assert "| `acc` | 0.5 |" in card

    loaded = load(tmp_path / "ring")
    assert isinstance(loaded, Ring2D) and not loaded.training
    assert all(not p.requires_grad for p in loaded.parameters())
    x = torch.randn(5, 2)
    torch.testing.assert_close(loaded.energy(x), model.energy(x))
    assert loaded.checkpoint.kind == "toy-ring" and loaded.checkpoint.source == "local"


def test_update_card_metrics_replaces_table(tmp_path):
    _save_ring(tmp_path / "ring")
    card = tmp_path / "ring" / "README.md"
    update_card_metrics(card, {"fd": 1.23456})
    text = card.read_text()
    assert "| `fd` | 1.235 |" in text and "`acc`" not in text and text.count("metrics:start") == 1


def test_registry_name_resolves_to_local_checkpoints(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_CHECKPOINTS", str(tmp_path))
    _save_ring(tmp_path / "my-ring")
    assert load("my-ring").checkpoint.source == "registry"
    assert "my-ring" in studio.list_models()


def test_list_models_describes_shipped_models():
    models = studio.list_models()
    assert "toy-ring" in models and models["toy-ring"]


def test_unknown_name_lists_known_ones():
    with pytest.raises(CheckpointError, match="Unknown model 'nope'.*Known models: .*toy-ring"):
        load("nope")


def test_missing_files(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        load(tmp_path / "empty")
    _save_ring(tmp_path / "ring")
    (tmp_path / "ring" / "model.safetensors").unlink()
    torch.save({}, tmp_path / "ring" / "pytorch_model.bin")  # a pickle next to it is never read
    with pytest.raises(CheckpointError, match="no model.safetensors.*never pickles"):
        load(tmp_path / "ring")


def test_corrupt_and_truncated_weights(tmp_path):
    _save_ring(tmp_path / "ring")
    weights = tmp_path / "ring" / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load(tmp_path / "ring")
    weights.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load(tmp_path / "ring")
    (tmp_path / "ring" / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load(tmp_path / "ring")


def test_kind_mismatches(tmp_path):
    _save_ring(tmp_path / "ring")
    with pytest.raises(CheckpointError, match="is a 'toy-ring' model, but a 'cdrl' model was requested"):
        load(tmp_path / "ring", kind="cdrl")
    cfg = tmp_path / "ring" / "config.json"
    payload = json.loads(cfg.read_text())
    payload["kind"] = "toy-gaussian-mixture"
    cfg.write_text(json.dumps(payload))
    with pytest.raises(CheckpointError, match="weights say 'toy-ring'"):
        load(tmp_path / "ring")
    payload["kind"] = "no-such-kind"
    cfg.write_text(json.dumps(payload))
    with pytest.raises(CheckpointError, match="kind 'no-such-kind'"):
        load(tmp_path / "ring")


def test_config_fields_must_match(tmp_path):
    model = Ring2D(RingConfig())
    save_checkpoint(tmp_path / "r", "toy-ring", {"radius": 1.0, "width": 0.2, "bogus": 3}, model.state_dict(), "x")
    with pytest.raises(CheckpointError, match=r"fields \['bogus'\]"):
        load(tmp_path / "r")


def test_missing_unexpected_and_misshapen_weights(tmp_path):
    model = GaussianMixture2D(GaussianMixtureConfig(num_components=3))
    sd = model.state_dict()
    save_checkpoint(tmp_path / "a", "toy-gaussian-mixture", model.config, {k: v for k, v in sd.items() if k != "logits"}, "x")
    with pytest.raises(CheckpointError, match=r"missing weights \['logits'\]"):
        load(tmp_path / "a")
    save_checkpoint(tmp_path / "b", "toy-gaussian-mixture", model.config, {**sd, "extra.weight": torch.zeros(1)}, "x")
    with pytest.raises(CheckpointError, match=r"unexpected weights \['extra.weight'\]"):
        load(tmp_path / "b")
    save_checkpoint(tmp_path / "c", "toy-gaussian-mixture", model.config, {**sd, "logits": torch.zeros(4)}, "x")
    with pytest.raises(CheckpointError, match=r"'logits' has shape \(4,\), the model expects \(3,\)"):
        load(tmp_path / "c")


def _put_in_hf_cache(cache: str, repo_id: str, source: Path) -> None:
    """Lay out a checkpoint like huggingface_hub's cache: refs/main -> snapshots/<sha>/files."""
    repo_dir = Path(cache) / ("models--" + repo_id.replace("/", "--"))
    snap = repo_dir / "snapshots" / ZERO_SHA
    snap.mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / "main").write_text(ZERO_SHA)  # no trailing newline, as the hub writes it
    for f in source.iterdir():
        (snap / f.name).write_bytes(f.read_bytes())


def test_hub_download_through_offline_cache(tmp_path, hf_cache):
    model = _save_ring(tmp_path / "ring", radius=2.25)
    _put_in_hf_cache(hf_cache, "someone/ring", tmp_path / "ring")
    loaded = load("someone/ring")
    assert loaded.checkpoint.source == "hub" and float(loaded.radius) == 2.25
    assert str(loaded.checkpoint.path).startswith(hf_cache)
    assert float(load("someone/ring@main").radius) == 2.25
    x = torch.randn(4, 2)
    torch.testing.assert_close(loaded.energy(x), model.energy(x))


def test_hub_offline_and_missing_entries(tmp_path, hf_cache):
    with pytest.raises(CheckpointError, match="unreachable or offline mode is on.*not in the Hugging Face cache"):
        load("someone/not-cached")
    _save_ring(tmp_path / "ring")
    (tmp_path / "ring" / "model.safetensors").unlink()
    _put_in_hf_cache(hf_cache, "someone/no-weights", tmp_path / "ring")
    with pytest.raises(CheckpointError, match="someone/no-weights"):
        load("someone/no-weights")


def test_registry_name_falls_back_to_hub(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_CHECKPOINTS", str(tmp_path / "nothing-here"))
    with pytest.raises(CheckpointError, match="Hub repo 'ebm-studio/toy-ring'.*also tried the local folder"):
        load("toy-ring")


def test_shipped_toy_checkpoints_load_and_sample():
    x, trace = studio.load("toy-ring").sample(seeds="0-31", steps=300, step_size=0.01)
    r = x.norm(dim=1)
    assert x.shape == (32, 2) and trace.num_steps == 300
    assert (r - 2.0).abs().mean() < 0.3
