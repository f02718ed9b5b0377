"""Publish a checkpoint folder to the Hugging Face Hub: ``studio.push_to_hub``.

    >>> studio.push_to_hub("cdrl-fmnist", "my-org/cdrl-fmnist")              # checkpoints/cdrl-fmnist
    >>> studio.push_to_hub("runs/x/export", "my-org/x", private=True, revision="v2")

Only a folder that ``studio.load`` accepts is published (strict weights, matching config, SHA-256),
and only a checkpoint's own files go up: ``config.json``, ``model.safetensors``, the card
``README.md`` and ``metrics.json`` when present; never a pickle or a stray file. The upload goes
through ``huggingface_hub.HfApi.upload_folder`` (one commit), so whoever loads ``org/name`` with
``studio.load`` gets exactly these files. ``check_push_target`` is what train scripts run before
training (``--push-to-hub``): a malformed repo id or a missing token fails at once, not after hours.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import CheckpointError, StudioError
from .hub import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, checkpoints_dir

PUBLISHED = (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME, "metrics.json")
# The Hub's rule for each half of owner/name: 1-96 letters, digits, '-', '_' and '.', not starting or ending
# with '-' or '.', and without '--' or '..'.
_PART = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?$")


def check_repo_id(repo_id) -> str:
    """``repo_id`` if it is of the form ``owner/name`` the Hub accepts, else a ``StudioError`` saying so."""
    parts = repo_id.split("/") if isinstance(repo_id, str) else []
    if len(parts) != 2 or not all(_PART.match(p) and "--" not in p and ".." not in p for p in parts):
        raise StudioError(f"{repo_id!r} is not a Hub repo id: use owner/name, e.g. 'my-org/cdrl-fmnist' (letters, digits, "
                          "'-', '_' and '.'; at most 96 characters each).")
    return repo_id


def check_token(token: str | None = None) -> str:
    """The Hugging Face token to publish with (``token``, else ``HF_TOKEN`` or a saved login), or a ``StudioError``."""
    if token:
        return token
    from huggingface_hub import get_token

    found = get_token()
    if not found:
        raise StudioError("Publishing to the Hub needs a Hugging Face token with write access: run `hf auth login` or set "
                          "HF_TOKEN (https://huggingface.co/settings/tokens).")
    return found


def check_push_target(repo_id, token: str | None = None) -> tuple[str, str]:
    """(repo id, token) after checking both; what ``--push-to-hub`` runs before any training starts."""
    return check_repo_id(repo_id), check_token(token)


def checkpoint_folder(name_or_path: str | os.PathLike) -> Path:
    """A local checkpoint folder: a path, or a name under ``studio.paths.checkpoints_dir()``."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    local = checkpoints_dir() / str(name_or_path)
    if isinstance(name_or_path, str) and "/" not in name_or_path and local.is_dir():
        return local
    raise CheckpointError(f"{str(name_or_path)!r} is not a local checkpoint folder (looked in {local.parent} too): "
                          "push_to_hub publishes a folder with config.json and model.safetensors.")


def push_to_hub(name_or_path: str | os.PathLike, repo_id: str, private: bool = False, revision: str | None = None, *,
                token: str | None = None):
    """Upload a checkpoint folder to the Hub repo ``repo_id`` (created if needed; ``private`` applies to a new repo),
    on branch ``revision`` (created from main if needed; None = main). Refuses a folder that fails ``studio.load``.

    Returns huggingface_hub's ``CommitInfo`` (``.commit_url``, ``.oid``)."""
    from huggingface_hub import HfApi

    from .hub import load

    folder = checkpoint_folder(name_or_path)
    check_repo_id(repo_id)
    if revision is not None and (not isinstance(revision, str) or not revision.strip()):
        raise StudioError(f"revision must be a branch name or None; got {revision!r}.")
    try:
        load(folder, device="cpu")
    except StudioError as err:
        raise CheckpointError(f"Not publishing {folder}: it does not load with studio.load ({err})") from None
    files = [name for name in PUBLISHED if (folder / name).is_file()]
    api = HfApi(token=check_token(token))
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    if revision:
        api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
    return api.upload_folder(repo_id=repo_id, folder_path=folder, repo_type="model", revision=revision, allow_patterns=files,
                             commit_message=f"Upload EBM Studio checkpoint {folder.name}")
