"""Checkpoints stay loadable without re-export: every shipped checkpoint's config fields and weight names match what
the code builds from it, each declares its tasks through the model protocol, and a renamed config field is read under
its old name (``renamed_fields``)."""
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch
from safetensors import safe_open
from torch import nn

from studio import registry  # noqa: F401  (registers every shipped kind)
from studio.errors import CheckpointError
from studio.hub import MODEL_KINDS, ModelCard, build_config, checkpoints_dir, load, read_config, save_checkpoint
from studio.kinds import register_model
from studio.protocol import StudioModel, offers

SHIPPED = sorted(p for p in checkpoints_dir().iterdir() if (p / "config.json").is_file() and (p / "model.safetensors").is_file())
# Kinds outside the protocol (no task to offer): the analytic toys and the reference classifiers.
NO_TASKS = {"evaluator", "toy-gaussian-mixture", "toy-ring"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_checkpoint_matches_the_code(path):
    payload = read_config(path)
    cls = MODEL_KINDS[payload["kind"]]
    config = build_config(cls, payload["config"], path.name)  # every stored field is known, with its type
    with safe_open(str(path / "model.safetensors"), framework="pt") as handle:
        stored = {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}
    with torch.device("meta"):  # the names and shapes only: no memory, no initialisation
        built = {k: tuple(v.shape) for k, v in cls(config).state_dict().items()}
    assert built == stored
    tasks, energy = offers(cls, config)
    if payload["kind"] in NO_TASKS:
        assert not tasks and energy is None
    else:
        assert issubclass(cls, StudioModel) and tasks, f"{path.name} offers no task"
        assert len({t.name for t in tasks}) == len(tasks)


@dataclass
class RenamedConfig:
    width: int = 4
    noise_std: float = 0.0  # was "noise" in checkpoints written before the rename
    renamed_fields: ClassVar[dict[str, str]] = {"noise": "noise_std"}


class Renamed(nn.Module):
    config_class = RenamedConfig

    def __init__(self, config: RenamedConfig):
        super().__init__()
        self.config = config
        self.linear = nn.Linear(config.width, 1)


@pytest.fixture
def renamed_kind():
    register_model("test-renamed")(Renamed)
    yield
    MODEL_KINDS.pop("test-renamed", None)


def test_a_renamed_config_field_is_read_under_its_old_name(tmp_path, renamed_kind):
    model = Renamed(RenamedConfig())
    # A checkpoint written before the rename: config.json (and the weights' metadata) say "noise".
    save_checkpoint(tmp_path / "old", "test-renamed", {"width": 4, "noise": 0.25}, model.state_dict(), ModelCard(summary="old"))
    loaded = load(tmp_path / "old")
    assert loaded.config == RenamedConfig(width=4, noise_std=0.25)
    torch.testing.assert_close(loaded.linear.weight, model.linear.weight)
    assert build_config(Renamed, {"noise_std": 0.5}, "new").noise_std == 0.5
    with pytest.raises(CheckpointError, match="both 'noise' and its new name 'noise_std'"):
        build_config(Renamed, {"noise": 0.1, "noise_std": 0.2}, "both")
