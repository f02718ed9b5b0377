"""Checkpoint I/O: resolve a reference, read and write safetensors checkpoints, model cards.

A checkpoint is a directory with

* ``config.json``: ``{"kind", "format_version", "config", ...extra}``, where
  ``config`` holds the arguments of the model's typed config dataclass;
* ``model.safetensors``: the (EMA) weights, with the same config JSON and the
  format version in the safetensors ``__metadata__``;
* ``README.md``: a model card with YAML front matter.

Loading never unpickles anything and is strict: a missing or unexpected
weight, a shape mismatch or a kind mismatch is an error that names it.
``config.json`` records the SHA-256 of the weights file, so a bit flip or a
partial download is caught on load, not sampled from. Saving is atomic: the
files are written to a temporary folder next to the target, which then takes
the target's place in one rename, so a crash mid-export never leaves a
half-written checkpoint under the final name.
"""
from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .errors import CheckpointError, StudioError

FORMAT_VERSION = "1"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
REPO_ROOT = Path(__file__).resolve().parents[1]
METRICS_START, METRICS_END = "<!-- metrics:start -->", "<!-- metrics:end -->"

# The kind table lives in studio.kinds (the bottom of the import graph); re-exported here for callers.
from .kinds import MODEL_KINDS, register_model  # noqa: E402,F401


def _import_method_modules() -> None:
    """Import the modules that register model kinds (lazily: keeps `import studio` light)."""
    from . import registry  # noqa: F401  (registry imports every method module)


def checkpoints_dir() -> Path:
    """Local checkpoint folder: ``$STUDIO_CHECKPOINTS``, else the repository's ``checkpoints/`` (see ``studio.paths``)."""
    from .paths import checkpoints_dir as local

    return local()


# ----------------------------------------------------------------------------- model card


@dataclass
class ModelCard:
    """What goes into a checkpoint's README.md. ``metrics`` are rendered as a table."""

    summary: str
    body: str = ""
    license: str = "mit"
    tags: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    pipeline_tag: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)

    def front_matter(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"library_name": "ebm-studio", "license": self.license, "tags": ["energy-based-model", *self.tags]}
        if self.datasets:
            meta["datasets"] = self.datasets
        if self.pipeline_tag:
            meta["pipeline_tag"] = self.pipeline_tag
        meta["description"] = self.summary
        return meta

    def render(self, name: str) -> str:
        front = yaml.safe_dump(self.front_matter(), sort_keys=False).strip()
        parts = [f"---\n{front}\n---", f"# {name}", self.summary.strip()]
        if self.body.strip():
            parts.append(self.body.strip())
        parts.append("## Metrics\n" + render_metrics_block(self.metrics))
        return "\n\n".join(parts) + "\n"


def render_metrics_block(metrics: Mapping[str, Any], extra: str = "") -> str:
    """A markdown table (plus optional extra markdown) between markers, so `train/evaluate.py` can replace it in place."""
    if metrics:
        rows = "\n".join(f"| `{k}` | {_fmt(v)} |" for k, v in metrics.items())
        table = f"Measured by `python -m train.evaluate`:\n\n| metric | value |\n|---|---|\n{rows}"
    else:
        table = "Not measured yet: run `python -m train.evaluate <name>`."
    if extra:
        table += "\n\n" + extra.strip()
    return f"{METRICS_START}\n{table}\n{METRICS_END}"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def update_card_metrics(card_path: Path, metrics: Mapping[str, Any], extra: str = "") -> None:
    """Replace the metrics table of an existing model card (or append one)."""
    text = card_path.read_text() if card_path.exists() else ""
    block = render_metrics_block(metrics, extra)
    pattern = re.compile(re.escape(METRICS_START) + ".*?" + re.escape(METRICS_END), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text)
    else:
        text = text.rstrip() + "\n\n## Metrics\n" + block + "\n"
    card_path.write_text(text)


def read_card(path: Path) -> tuple[dict[str, Any], str]:
    """Split a model card into (front matter, markdown body)."""
    text = path.read_text()
    if text.startswith("---"):
        _, front, body = text.split("---", 2)
        try:
            meta = yaml.safe_load(front) or {}
        except yaml.YAMLError as err:
            raise CheckpointError(f"Model card {path} has malformed YAML front matter: {err}") from None
        return (meta if isinstance(meta, dict) else {}), body.lstrip()
    return {}, text


# ----------------------------------------------------------------------------- save


def _git_sha() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def config_to_dict(config: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    if isinstance(config, Mapping):
        return dict(config)
    raise CheckpointError(f"config must be a dataclass instance or a dict; got {type(config).__name__}.")


def save_checkpoint(
    directory: str | os.PathLike,
    kind: str,
    config: Any,
    state_dict: Mapping[str, torch.Tensor],
    card: ModelCard | str,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``config.json``, ``model.safetensors`` and ``README.md`` into ``directory``, atomically.

    ``extra`` adds top-level entries to config.json (sampler defaults, data,
    training command, wall time, ...). Other files already in ``directory``
    (e.g. ``metrics.json``) are carried over.
    """
    out = Path(directory)
    out.parent.mkdir(parents=True, exist_ok=True)
    cfg = config_to_dict(config)
    code_version = _git_sha()
    # safetensors refuses shared or non-contiguous storage; make each tensor standalone.
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    metadata = {"format_version": FORMAT_VERSION, "kind": kind, "config": json.dumps(cfg), "code_version": code_version}
    card_obj = card if isinstance(card, ModelCard) else ModelCard(summary=str(card))
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        save_file(tensors, str(tmp / WEIGHTS_NAME), metadata=metadata)
        payload = {"kind": kind, "format_version": FORMAT_VERSION, "config": cfg, "code_version": code_version,
                   "weights_sha256": file_sha256(tmp / WEIGHTS_NAME), **(extra or {})}
        (tmp / CONFIG_NAME).write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
        (tmp / CARD_NAME).write_text(card_obj.render(out.name))
        if out.is_dir():
            for item in out.iterdir():
                if item.name not in (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME):
                    (shutil.copytree if item.is_dir() else shutil.copy2)(item, tmp / item.name)
        _fsync_tree(tmp)
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_tree(folder: Path) -> None:
    """Flush the files to disk before the rename makes them visible (a power cut must not publish empty files)."""
    for f in folder.iterdir():
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())


def _replace_dir(new: Path, target: Path) -> None:
    """Put ``new`` at ``target`` in one step. An existing target is swapped out atomically where the OS
    can (Linux renameat2 RENAME_EXCHANGE), else renamed aside first: the target is then missing for an
    instant, but never holds a mix of old and new files."""
    if not target.exists():
        os.rename(new, target)
        return
    if not target.is_dir():
        raise CheckpointError(f"Cannot export to {target}: it exists and is not a directory.")
    aside = target.parent / f".{target.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
    if _exchange(new, target):
        os.rename(new, aside)  # `new` now holds the previous checkpoint
    else:
        os.rename(target, aside)
        os.rename(new, target)
    shutil.rmtree(aside, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux >= 3.15); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


# ----------------------------------------------------------------------------- resolve


@dataclass
class Resolved:
    """Where a reference was found: a local directory and how we got there."""

    path: Path
    source: str  # "local", "registry", "hub"
    ref: str


_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+(@[\w./-]+)?$")


def resolve(ref: str | os.PathLike) -> Resolved:
    """Resolve a registry name, a local directory or ``org/name[@revision]`` to a local folder."""
    from .registry import REGISTRY, known_names

    if not isinstance(ref, (str, os.PathLike)):
        raise CheckpointError(f"A model reference must be a name, a folder or a Hub id (a string); got {type(ref).__name__}.")
    text = os.fspath(ref)
    if not isinstance(text, str):
        text = os.fsdecode(text)
    if "\x00" in text or len(text) > 1024:
        raise CheckpointError("That model reference is not a valid name, folder or Hub id (too long or contains NUL).")
    if not text or not text.strip():
        raise CheckpointError("Empty model reference. Known models: " + ", ".join(known_names()))
    path = Path(text).expanduser()
    if path.is_dir():
        return Resolved(path, "local", text)
    local = checkpoints_dir() / text
    if "/" not in text and local.is_dir():
        return Resolved(local, "registry", text)
    if text in REGISTRY:
        return Resolved(download_from_hub(REGISTRY[text].repo_id, tried_local=local), "hub", text)
    if _HUB_ID.match(text) and not path.exists():
        repo_id, _, revision = text.partition("@")
        return Resolved(download_from_hub(repo_id, revision or None), "hub", text)
    if path.exists():
        raise CheckpointError(f"'{text}' is a file, not a checkpoint directory (expected {CONFIG_NAME} and {WEIGHTS_NAME} inside).")
    raise CheckpointError(
        f"Unknown model '{text}': it is not a directory, not in {checkpoints_dir()}, and not a Hub id like 'org/name'. "
        f"Known models: {', '.join(known_names()) or '(none)'}."
    )


def download_from_hub(repo_id: str, revision: str | None = None, tried_local: Path | None = None) -> Path:
    """Fetch a checkpoint's files through huggingface_hub (honours HF_HUB_OFFLINE and the cache)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HFValidationError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"Hub repo '{repo_id}'" + (f" at revision '{revision}'" if revision else "")
    also = f" (also tried the local folder {tried_local})" if tried_local else ""
    try:
        files = {}
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            files[name] = Path(hf_hub_download(repo_id, name, revision=revision))
        try:
            hf_hub_download(repo_id, CARD_NAME, revision=revision)
        except (EntryNotFoundError, LocalEntryNotFoundError):
            pass  # the card is optional for loading
        return files[CONFIG_NAME].parent
    except RevisionNotFoundError:
        raise CheckpointError(f"{where}: that revision does not exist{also}. Check the branch, tag or commit.") from None
    except RepositoryNotFoundError:
        raise CheckpointError(f"{where} does not exist or is private{also}. Check the id, or log in with `hf auth login`.") from None
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        # LocalEntryNotFoundError is also an EntryNotFoundError: catch it first.
        raise CheckpointError(
            f"Could not fetch {where}: the Hub is unreachable or offline mode is on (HF_HUB_OFFLINE), and the files are "
            f"not in the Hugging Face cache{also}. Connect and retry, or download the checkpoint into checkpoints/."
        ) from None
    except EntryNotFoundError:
        raise CheckpointError(f"{where} lacks {CONFIG_NAME} or {WEIGHTS_NAME}{also}: it is not an EBM Studio checkpoint.") from None
    except HFValidationError as err:
        raise CheckpointError(f"'{repo_id}' is not a valid Hub repo id ({err}).") from None
    except OSError as err:
        raise CheckpointError(f"Could not fetch {where}: {err}{also}.") from None


# ----------------------------------------------------------------------------- load


@dataclass
class CheckpointInfo:
    """Attached to loaded models as ``model.checkpoint``."""

    name: str
    path: Path
    source: str
    kind: str
    config: dict[str, Any]
    extra: dict[str, Any]


def read_config(path: Path) -> dict[str, Any]:
    file = path / CONFIG_NAME
    if not file.is_file():
        raise CheckpointError(f"{path} has no {CONFIG_NAME}: not a checkpoint directory (expected {CONFIG_NAME}, {WEIGHTS_NAME}).")
    try:
        payload = json.loads(file.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{file} is not valid JSON ({err}). Re-download or re-export the checkpoint.") from None
    if not isinstance(payload, dict) or "kind" not in payload or "config" not in payload:
        missing = [k for k in ("kind", "config") if not isinstance(payload, dict) or k not in payload]
        raise CheckpointError(f"{file} lacks the {' and '.join(repr(k) for k in missing)} "
                              f"entr{'ies' if len(missing) > 1 else 'y'} of an EBM Studio checkpoint.")
    if not isinstance(payload["kind"], str):
        raise CheckpointError(f"{file}: 'kind' must be a string naming the model kind; got {payload['kind']!r}.")
    if not isinstance(payload["config"], dict):
        raise CheckpointError(f"{file}: 'config' must be a mapping of config fields; got {type(payload['config']).__name__}.")
    return payload


def read_weights(path: Path, sha256: str | None = None) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read safetensors weights and metadata; a corrupt or truncated file is a clear error.

    ``sha256`` (from config.json) is checked when given, which also catches bit flips inside
    the tensor data that the safetensors header cannot see."""
    file = path / WEIGHTS_NAME
    if not file.is_file():
        raise CheckpointError(f"{path} has no {WEIGHTS_NAME}. Only safetensors weights are loaded (never pickles).")
    try:
        from safetensors import safe_open

        with safe_open(str(file), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
        tensors = load_file(str(file))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(
            f"{file} is corrupt or truncated ({err}). Delete it and download or export the checkpoint again."
        ) from None
    if sha256 is not None and file_sha256(file) != sha256:
        raise CheckpointError(f"{file} is corrupt: it does not match the SHA-256 recorded in {CONFIG_NAME} (a flipped "
                              "bit or an interrupted download). Delete it and download or export the checkpoint again.")
    return tensors, metadata


def build_config(cls: type[nn.Module], raw: Mapping[str, Any], where: str) -> Any:
    """Instantiate ``cls.config_class`` from a dict, refusing unknown fields, missing required ones and
    values of the wrong type (fields added after a checkpoint was written take their defaults).

    Checkpoints are never re-exported for a rename: a config class that renames a field lists it in a class
    attribute ``renamed_fields = {"old name": "new name"}`` (a ``ClassVar``), and a checkpoint written under the old
    name is read into the new field."""
    config_class = cls.config_class
    raw = dict(raw)
    for old, new in getattr(config_class, "renamed_fields", {}).items():
        if old in raw:
            if new in raw:
                raise CheckpointError(f"{where}: config has both '{old}' and its new name '{new}'; keep one.")
            raw[new] = raw.pop(old)
    names = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise CheckpointError(f"{where}: config has fields {unknown} that {config_class.__name__} does not know.")
    required = sorted(f.name for f in dataclasses.fields(config_class)
                      if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name not in raw)
    if required:
        raise CheckpointError(f"{where}: config lacks the required fields {required} of {config_class.__name__}.")
    hints = typing.get_type_hints(config_class)
    for key, value in raw.items():
        if not _type_ok(value, hints.get(key, Any)):
            raise CheckpointError(f"{where}: config field '{key}' should be {_type_name(hints[key])}; got {value!r}.")
    try:
        return config_class(**raw)
    except TypeError as err:
        raise CheckpointError(f"{where}: config does not match {config_class.__name__}: {err}") from None


def _type_ok(value: Any, hint: Any) -> bool:
    """A shallow check of JSON values against simple annotations (int, float, bool, str, list, dict, Optional)."""
    origin = typing.get_origin(hint)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint is list or origin in (list, tuple):
        return isinstance(value, (list, tuple))
    if hint is dict or origin is dict:
        return isinstance(value, dict)
    return True  # anything more elaborate is left to the config class


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def load_strict(model: nn.Module, tensors: Mapping[str, torch.Tensor], where: str) -> None:
    """Copy weights into ``model``; any missing/unexpected key or shape mismatch is named."""
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing weights {missing[:8]}{' ...' if len(missing) > 8 else ''}")
        if unexpected:
            parts.append(f"unexpected weights {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}")
        raise CheckpointError(f"{where}: {'; '.join(parts)}. The checkpoint does not match this version of the model.")
    for key, value in tensors.items():
        if own[key].shape != value.shape:
            raise CheckpointError(f"{where}: weight '{key}' has shape {tuple(value.shape)}, the model expects {tuple(own[key].shape)}.")
    model.load_state_dict(dict(tensors), strict=True)


def load(ref: str | os.PathLike, kind: str | None = None, device: str | torch.device | None = None) -> nn.Module:
    """Load a checkpoint by registry name, local directory or Hub id; return the model in eval mode.

    ``kind`` optionally asserts what the checkpoint must be (e.g. ``"cdrl"``). ``device`` is where the
    model computes; ``None`` follows ``studio.device.resolve_device``: ``$STUDIO_DEVICE``, else CUDA
    when available, then MPS, else the CPU. Parameters come back frozen (``requires_grad=False``):
    the studio's samplers only need gradients with respect to their inputs.
    """
    from .device import resolve_device

    target = resolve_device(device)  # before any file is read: a device this machine lacks fails fast
    _import_method_modules()
    resolved = resolve(ref)
    payload = read_config(resolved.path)
    found_kind = payload["kind"]
    where = f"checkpoint '{resolved.ref}' ({resolved.path})"
    if kind is not None and found_kind != kind:
        raise CheckpointError(f"{where} is a '{found_kind}' model, but a '{kind}' model was requested.")
    if found_kind not in MODEL_KINDS:
        raise CheckpointError(f"{where} has kind '{found_kind}', which this version of studio does not know. Known kinds: {sorted(MODEL_KINDS)}.")
    sha = payload.get("weights_sha256")
    tensors, metadata = read_weights(resolved.path, sha if isinstance(sha, str) else None)
    if metadata.get("kind", found_kind) != found_kind:
        raise CheckpointError(f"{where}: config.json says kind '{found_kind}' but the weights say '{metadata['kind']}'. The files come from different checkpoints.")
    try:
        stored_config = json.loads(metadata["config"]) if "config" in metadata else payload["config"]
    except json.JSONDecodeError:
        raise CheckpointError(f"{where}: the config stored with the weights is not valid JSON; the weights file is corrupt.") from None
    if stored_config != payload["config"]:
        raise CheckpointError(f"{where}: config.json does not match the config stored with the weights. The files come from different checkpoints.")
    cls = MODEL_KINDS[found_kind]
    config = build_config(cls, payload["config"], where)
    try:
        model = cls(config)
    except StudioError:
        raise
    except (ValueError, TypeError, RuntimeError, KeyError, IndexError, MemoryError) as err:
        # e.g. sizes no allocator can satisfy in a tampered config.json
        raise CheckpointError(f"{where}: its config cannot build a '{found_kind}' model ({str(err)[:300]}).") from None
    load_strict(model, tensors, where)
    model.eval().requires_grad_(False).to(target)
    extra = {k: v for k, v in payload.items() if k not in {"kind", "config"}}
    model.checkpoint = CheckpointInfo(resolved.ref, resolved.path, resolved.source, found_kind, payload["config"], extra)
    return model
