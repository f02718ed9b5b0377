"""studio.push_to_hub and the train scripts' --push-to-hub, against a local stand-in for the Hub API (no network).

``LocalHub`` stands in for ``huggingface_hub.HfApi``: it keeps repos in a folder and files an
``upload_folder`` call the way the Hub does (``allow_patterns`` filtered by huggingface_hub's own
``filter_repo_objects``, one commit per call on the given branch). ``hf_cache_snapshot`` then lays a
repo's branch out as huggingface_hub's cache, so ``studio.load("owner/name@branch")`` runs the real
download path offline and the round trip can be compared weight for weight.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import shutil
from pathlib import Path

import pytest
import torch

import studio
from studio.errors import CheckpointError, StudioError
from studio.hub import ModelCard, save_checkpoint
from studio.publish import PUBLISHED, check_repo_id
from studio.toy import Ring2D, RingConfig


class LocalHub:
    """What push_to_hub needs of ``HfApi``, backed by ``root/<owner>/<name>/<branch>/``; every call is logged."""

    instances: list["LocalHub"] = []

    def __init__(self, root: Path, token=None):
        self.root, self.token, self.calls = root, token, []
        LocalHub.instances.append(self)

    def create_repo(self, repo_id, *, private=None, exist_ok=False, repo_type=None, **_):
        self.calls.append(("create_repo", repo_id, private))
        repo = self.root / repo_id
        if repo.exists() and not exist_ok:
            raise FileExistsError(repo_id)
        (repo / "main").mkdir(parents=True, exist_ok=True)
        (repo / "private").write_text(json.dumps(bool(private)))

    def create_branch(self, repo_id, *, branch, exist_ok=False, repo_type=None, **_):
        self.calls.append(("create_branch", repo_id, branch))
        target = self.root / repo_id / branch
        if not target.exists():
            shutil.copytree(self.root / repo_id / "main", target)
        elif not exist_ok:
            raise FileExistsError(branch)

    def upload_folder(self, *, repo_id, folder_path, revision=None, allow_patterns=None, commit_message=None, repo_type=None, **_):
        from huggingface_hub.utils import filter_repo_objects

        branch = self.root / repo_id / (revision or "main")
        if not branch.is_dir():
            raise FileNotFoundError(f"no branch {revision} in {repo_id}")
        names = sorted(p.name for p in Path(folder_path).iterdir() if p.is_file())
        chosen = list(filter_repo_objects(names, allow_patterns=allow_patterns))
        for name in chosen:
            shutil.copy2(Path(folder_path) / name, branch / name)
        oid = hashlib.sha1("".join(chosen).encode() + str(len(self.calls)).encode()).hexdigest()
        self.calls.append(("upload_folder", repo_id, revision, tuple(chosen), commit_message))
        return type("CommitInfo", (), {"oid": oid, "commit_url": f"local://{repo_id}/commit/{oid}"})()


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """huggingface_hub.HfApi replaced by LocalHub (with a token in the environment); yields the repos' folder."""
    import huggingface_hub

    root = tmp_path / "hub"
    LocalHub.instances.clear()
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda token=None: LocalHub(root, token))
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    return root


def hf_cache_snapshot(cache: str, repo_id: str, branch_dir: Path, ref: str) -> None:
    """Lay out one branch of a LocalHub repo as huggingface_hub's cache (refs/<ref> -> snapshots/<sha>)."""
    sha = hashlib.sha1(f"{repo_id}@{ref}".encode()).hexdigest()
    repo = Path(cache) / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / sha
    snap.mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / ref).write_text(sha)
    for f in branch_dir.iterdir():
        shutil.copy2(f, snap / f.name)


def _checkpoint(folder: Path, radius: float = 1.7) -> Ring2D:
    model = Ring2D(RingConfig(radius=radius, width=0.3))
    save_checkpoint(folder, model.kind, model.config, model.state_dict(), ModelCard(summary="A ring to publish."))
    (folder / "metrics.json").write_text('{"radius": 1.7}')
    (folder / "optimizer.pt").write_bytes(b"\x80\x04pickled")  # never published: a pickle
    (folder / "notes.txt").write_text("scratch")  # nor a stray file
    return model


def test_push_uploads_the_checkpoint_files_and_round_trips(tmp_path, hub, hf_cache):
    model = _checkpoint(tmp_path / "ring")
    info = studio.push_to_hub(tmp_path / "ring", "someone/ring", private=True)
    api = LocalHub.instances[-1]
    assert api.token == "hf_test_token"
    assert api.calls[0] == ("create_repo", "someone/ring", True)
    (_, repo, revision, uploaded, message), = [c for c in api.calls if c[0] == "upload_folder"]
    assert (repo, revision) == ("someone/ring", None) and info.commit_url.startswith("local://someone/ring")
    assert set(uploaded) == {"config.json", "model.safetensors", "README.md", "metrics.json"} == set(PUBLISHED)
    assert sorted(p.name for p in (hub / "someone/ring/main").iterdir()) == sorted(uploaded)
    # The round trip: the Hub's files, fetched through huggingface_hub's offline cache, load the same weights.
    hf_cache_snapshot(hf_cache, "someone/ring", hub / "someone/ring/main", "main")
    loaded = studio.load("someone/ring")
    assert loaded.checkpoint.source == "hub" and str(loaded.checkpoint.path).startswith(hf_cache)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_push_to_a_branch(tmp_path, hub, hf_cache):
    _checkpoint(tmp_path / "v1", radius=1.5)
    _checkpoint(tmp_path / "v2", radius=2.5)
    studio.push_to_hub(tmp_path / "v1", "someone/rings")
    studio.push_to_hub(tmp_path / "v2", "someone/rings", revision="v2")
    calls = [c[0:3] for api in LocalHub.instances for c in api.calls if c[0] != "upload_folder"]
    assert ("create_branch", "someone/rings", "v2") in calls
    for ref in ("main", "v2"):
        hf_cache_snapshot(hf_cache, "someone/rings", hub / "someone/rings" / ref, ref)
    assert float(studio.load("someone/rings").radius) == 1.5
    assert float(studio.load("someone/rings@v2").radius) == 2.5


def test_push_by_registry_name(tmp_path, hub, monkeypatch):
    monkeypatch.setenv("STUDIO_CHECKPOINTS", str(tmp_path))
    _checkpoint(tmp_path / "my-ring")
    studio.push_to_hub("my-ring", "someone/my-ring")
    assert (hub / "someone/my-ring/main/model.safetensors").is_file()


def test_refuses_a_folder_that_does_not_load(tmp_path, hub):
    _checkpoint(tmp_path / "ring")
    weights = tmp_path / "ring" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # a flipped bit: the SHA-256 in config.json no longer matches
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="Not publishing .*does not load with studio.load.*SHA-256"):
        studio.push_to_hub(tmp_path / "ring", "someone/ring")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="does not load"):
        studio.push_to_hub(tmp_path / "empty", "someone/ring")
    with pytest.raises(CheckpointError, match="not a local checkpoint folder"):
        studio.push_to_hub(tmp_path / "missing", "someone/ring")
    assert all(not api.calls for api in LocalHub.instances)  # nothing reached the Hub


@pytest.mark.parametrize("repo_id", ["ring", "a/b/c", "-a/b", "a/b-", "a/b--c", "a/..b", "a b/c", "", None, 3, "o/" + "x" * 97])
def test_malformed_repo_ids(tmp_path, hub, repo_id):
    _checkpoint(tmp_path / "ring")
    with pytest.raises(StudioError, match="is not a Hub repo id: use owner/name"):
        studio.push_to_hub(tmp_path / "ring", repo_id)
    assert not LocalHub.instances


def test_no_token(tmp_path, hub, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "no-login"))  # no saved token either
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-login" / "token"))
    _checkpoint(tmp_path / "ring")
    with pytest.raises(StudioError, match="needs a Hugging Face token.*hf auth login.*HF_TOKEN"):
        studio.push_to_hub(tmp_path / "ring", "someone/ring")
    assert check_repo_id("someone/ring") == "someone/ring"


# -- the train scripts ---------------------------------------------------------------------------------

TRAIN_SCRIPTS = ["cdrl", "cfebm", "coopflow", "egc", "evaluator", "letit", "nerf_lebm"]
REQUIRED = {"letit": ["--stage", "autoencoder"]}  # the scripts' own required arguments


@pytest.mark.parametrize("script", TRAIN_SCRIPTS)
def test_train_scripts_check_the_target_before_training(script, tmp_path, hub, monkeypatch, capsys):
    """Every train script takes --push-to-hub; a bad repo id, then a missing token, stop it before a run starts."""
    main = importlib.import_module(f"train.{script}").main
    run_dir = tmp_path / "run"
    common = [*REQUIRED.get(script, []), "--run-dir", str(run_dir), "--export-dir", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as err:
        main(["--push-to-hub", "not a repo", *common])
    assert err.value.code == 2 and "--push-to-hub: 'not a repo' is not a Hub repo id" in capsys.readouterr().err
    monkeypatch.delenv("HF_TOKEN")
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-login" / "token"))
    with pytest.raises(SystemExit):
        main(["--push-to-hub", "someone/model", *common])
    assert "needs a Hugging Face token" in capsys.readouterr().err
    assert not run_dir.exists() and not (tmp_path / "out").exists()


def test_export_publishes_with_push_to_hub(tmp_path, hub, monkeypatch):
    """start() records --push-to-hub and the export that ends a run publishes the checkpoint it wrote."""
    from train import common

    monkeypatch.setattr(common, "PUSH_TO_HUB", {"repo": None})
    monkeypatch.setattr(common, "make_accelerator", lambda cpu=False, **kw: type("Acc", (), {"process_index": 0})())
    monkeypatch.setattr(common, "configure_threads", lambda acc, n: 1)
    from train.cdrl import CDRLRunConfig

    args, cfg, _acc = common.start("doc", "train/configs/cdrl_fmnist.yaml", CDRLRunConfig,
                                   ["--push-to-hub", "someone/exported", "--export-dir", str(tmp_path / "x")])
    assert args.push_to_hub == "someone/exported" and common.PUSH_TO_HUB["repo"] == "someone/exported"
    model = Ring2D(RingConfig())
    path = common.export("ring", model, ModelCard(summary="exported"), wall_seconds=1.0, steps=1, export_dir=str(tmp_path / "x"))
    assert (hub / "someone/exported/main/model.safetensors").read_bytes() == (path / "model.safetensors").read_bytes()
