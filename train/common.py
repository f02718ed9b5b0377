"""Shared training machinery: typed YAML configs, Accelerator, EMA, save_state/resume, guards, export.

Every `train/<method>.py` uses these pieces, most of them through the one training loop in
``train/trainer.py``, so a run can be stopped at any moment and resumed with ``--resume``, and
the same script runs on one CPU or many GPUs (``accelerate launch``).
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import platform
import re
import shlex
import sys
import time
import warnings
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar, get_type_hints

import torch
import yaml
from torch import nn

from studio.errors import StudioError
from studio.hub import ModelCard, checkpoints_dir, save_checkpoint

T = TypeVar("T")
REPO_ROOT = Path(__file__).resolve().parents[1]


class ConfigError(StudioError):
    """A training config file or override is malformed."""


class DivergenceError(RuntimeError):
    """Training produced non-finite or exploding values; the message says what to try."""


# ----------------------------------------------------------------------------- configs


class _ConfigLoader(yaml.SafeLoader):
    """YAML 1.1 (PyYAML) reads an exponent without a dot, `1e-4`, as a string; configs read it as the number
    YAML 1.2 and every user mean, in files, in `--set` overrides and in untyped (dict) sections alike."""


_ConfigLoader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
                                    list("-+0123456789."))


def _coerce(value: Any, typ: Any, where: str) -> Any:
    """Check/convert a YAML value to a dataclass field type (no eval, no bool-from-string tricks)."""
    origin = getattr(typ, "__origin__", None)
    if is_dataclass(typ):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {typ.__name__}, got {value!r}.")
        return build_dataclass(typ, value, where)
    if typ is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}.")
        return value
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}.")
        return value
    if typ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}.")
        return float(value)
    if typ is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}.")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}.")
        (inner, *_) = getattr(typ, "__args__", (Any,))
        items = [_coerce(v, inner, f"{where}[{i}]") if inner is not Any and inner is not Ellipsis else v for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    return value


def build_dataclass(cls: type[T], raw: dict[str, Any], where: str = "config") -> T:
    """Build ``cls`` from a dict, refusing unknown keys and checking types."""
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; {cls.__name__} accepts {sorted(known)}.")
    return cls(**{k: _coerce(v, hints[k], f"{where}.{k}") for k, v in raw.items()})


def load_config(cls: type[T], path: str | os.PathLike | None, overrides: list[str] = ()) -> T:
    """Read a YAML config into ``cls``; ``overrides`` are ``a.b=value`` strings parsed as YAML scalars."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = yaml.load(Path(path).read_text(), Loader=_ConfigLoader) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"Cannot read config {path}: {err}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: the top level must be a mapping.")
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"Override '{item}' must look like key=value (e.g. train.steps=100).")
        node = raw
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.load(text, Loader=_ConfigLoader)
    return build_dataclass(cls, raw, str(path or "config"))


def base_parser(description: str, default_config: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", default=default_config, help="YAML config (typed; unknown keys are errors)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config entry, e.g. --set train.steps=200 (repeatable)")
    parser.add_argument("--resume", action="store_true", help="continue from the run folder's last saved state")
    parser.add_argument("--run-dir", default=None, help="where states are saved (default runs/<name>)")
    parser.add_argument("--export-dir", default=None, help="checkpoint output folder (default checkpoints/<name>)")
    parser.add_argument("--init-from", default=None, metavar="CHECKPOINT",
                        help="start from an exported checkpoint's weights (continue training without the run folder)")
    parser.add_argument("--cpu", action="store_true",
                        help="train on the CPU even when a GPU is present; with `accelerate launch --multi_gpu "
                             "--num_processes N` this runs N gloo processes on the CPU")
    parser.add_argument("--push-to-hub", default=None, metavar="REPO",
                        help="publish the exported checkpoint to this Hub repo (owner/name) with studio.push_to_hub; "
                             "the id and a token (hf auth login or HF_TOKEN) are checked before training starts")
    return parser


def init_from_checkpoint(model: nn.Module, ref: str, new_parts: tuple[str, ...] = ()) -> list[str]:
    """Copy weights from an exported checkpoint. Strict: the architecture must match, except that keys
    starting with one of ``new_parts`` may be absent from the checkpoint (parts the continued model adds,
    which keep their fresh initialisation). Returns the keys that started fresh."""
    from studio.hub import load_strict, read_config, read_weights, resolve

    path = resolve(ref).path
    tensors, _ = read_weights(path, read_config(path).get("weights_sha256"))
    fresh = [k for k in model.state_dict() if k not in tensors and k.startswith(new_parts)] if new_parts else []
    if fresh:
        tensors = {**tensors, **{k: v for k, v in model.state_dict().items() if k in fresh}}
    load_strict(model, tensors, f"--init-from {ref}")
    return fresh


def earlier_training(init_from: str | None) -> list[dict]:
    """The training records of the runs a --init-from checkpoint came from (oldest first), so the cost of a
    continued model is the sum of all its runs."""
    if not init_from:
        return []
    import studio

    extra = studio.load(init_from).checkpoint.extra
    return [*extra.get("earlier_training", []), *([extra["training"]] if "training" in extra else [])]


# ----------------------------------------------------------------------------- EMA


class EMA(nn.Module):
    """Exponential moving average of a model's parameters and buffers (exported for publishing).

    ``warmup`` uses decay min(decay, (1 + n) / (10 + n)) so early averages are not stuck at init.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999):
        super().__init__()
        self.decay = decay
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        n = int(self.num_updates)
        d = min(self.decay, (1 + n) / (10 + n))
        for s, p in zip(self.shadow.parameters(), model.parameters()):
            s.lerp_(p.detach(), 1 - d)
        for s, b in zip(self.shadow.buffers(), model.buffers()):
            s.copy_(b)
        self.num_updates += 1


# ----------------------------------------------------------------------------- runs


def make_accelerator(cpu: bool = False, **kwargs):
    """An Accelerator that works on CPU-only machines and on GPUs unchanged.

    ``batch_size`` in every config is the *global* batch: all processes draw the same batch and each
    trains on its slice (``shard``), so a run means the same thing on 1 or 8 processes.
    ``split_batches=True`` tells accelerate so: its schedulers then step once per optimisation step
    instead of once per process.
    """
    from accelerate import Accelerator, DataLoaderConfiguration

    kwargs.setdefault("dataloader_config", DataLoaderConfiguration(split_batches=True))
    return Accelerator(cpu=cpu or not torch.cuda.is_available(), **kwargs)


def shard(acc, *tensors: torch.Tensor, trace_dir: Path | None = None, step: int = 0):
    """This process's contiguous slice of a global batch that every process drew identically.

    With ``STUDIO_TRACE_BATCHES=1`` each process appends what it got to
    ``<trace_dir>/batches-rank<r>.jsonl`` (row sums of the first tensor), so tests and
    sceptical users can check that the ranks split the global batch without overlap.
    """
    n, world, rank = tensors[0].shape[0], acc.num_processes, acc.process_index
    if n % world:
        raise ConfigError(f"The global batch size {n} is not divisible by the {world} processes; "
                          f"use a multiple of {world} (--set train.batch_size=...).")
    per = n // world
    out = tuple(t[rank * per : (rank + 1) * per] for t in tensors)
    if trace_dir is not None and os.environ.get("STUDIO_TRACE_BATCHES") == "1":
        first = out[0]
        rows = first.flatten(1).double().sum(1) if first.dim() > 1 else first.double()
        Path(trace_dir).mkdir(parents=True, exist_ok=True)
        with open(Path(trace_dir) / f"batches-rank{rank}.jsonl", "a") as fh:
            fh.write(json.dumps({"step": step, "rows": [round(v, 4) for v in rows.tolist()]}) + "\n")
    return out if len(out) > 1 else out[0]


def step_generator(seed: int, step: int, rank: int = 0, device: str | torch.device = "cpu") -> torch.Generator:
    """A generator seeded by (seed, step, rank): a resumed run draws exactly what the uninterrupted one would."""
    return torch.Generator(device=device).manual_seed((seed * 1_000_003 + step) * 64 + rank)


def replica_checksums(acc, modules) -> list[float]:
    """One number per process summarising its parameters (position-weighted, in float64); equal
    numbers mean the replicas are in sync. Every process must call this (it is a collective)."""
    total = torch.zeros((), dtype=torch.float64)
    for module in modules:
        for p in acc.unwrap_model(module).parameters():
            flat = p.detach().to("cpu", torch.float64).flatten()
            total += (flat * (1 + torch.arange(flat.numel(), dtype=torch.float64) % 7)).sum()
    if acc.num_processes == 1:
        return [float(total)]
    return [float(v) for v in acc.gather(total.view(1).to(acc.device)).cpu()]


def check_replicas(checksums: list[float], step: int) -> None:
    if max(checksums) - min(checksums) > 1e-9 * max(1.0, max(abs(c) for c in checksums)):
        raise DivergenceError(f"The processes' model replicas differ at step {step} (checksums {checksums}): gradients "
                              "are not being synchronised. Make sure the trained module goes through accelerator.prepare.")


def append_log(path: Path, step: int, stats: dict) -> None:
    """One JSON line per step (the loss curve); kept consistent with the saved state on resume."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.write(json.dumps({"step": step, **{k: round(float(v), 7) for k, v in stats.items()}}) + "\n")


def truncate_log(path: Path, step: int) -> None:
    """Drop log lines past the resumed state's step: a killed run re-trains those steps."""
    if not path.exists():
        return
    keep = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(line + "\n" for line in keep))
    os.replace(tmp, path)


@dataclass
class RunState:
    """Plain counters saved next to accelerate's state (the only thing not in tensors)."""

    step: int = 0
    epoch: int = 0
    elapsed: float = 0.0
    extra: dict = dataclasses.field(default_factory=dict)


class Run:
    """A run folder: periodic ``save_state``, ``--resume`` and the loss log.

    Layout: ``<run_dir>/state`` (accelerate: models, optimisers, EMA, RNG, plus ``run.json`` with
    step and wall time), ``<run_dir>/run.json`` (a copy, for people and older runs) and
    ``<run_dir>/log.jsonl`` (one line per step). A state is written to ``state.tmp`` with its
    counters inside and renamed, so a crash (even SIGKILL) at any moment leaves a complete state
    whose counters match its weights: ``state``, or ``state.old`` if the crash hit between the
    two renames.
    """

    def __init__(self, accelerator, run_dir: Path, resume: bool):
        self.acc = accelerator
        self.dir = Path(run_dir)
        self.log_file = self.dir / "log.jsonl"
        self.state = RunState()
        self.started = time.time()
        self.resumed = False
        if resume:
            state_dir = next((d for d in (self.dir / "state", self.dir / "state.old") if d.is_dir()), None)
            info = next((f for f in ((state_dir / "run.json") if state_dir else None, self.dir / "run.json")
                         if f is not None and f.exists()), None)
            if state_dir is None or info is None:
                raise ConfigError(f"--resume: no saved state in {self.dir}. Start without --resume, or pass --run-dir.")
            self.state = RunState(**json.loads(info.read_text()))
            self.acc.load_state(str(state_dir))
            self.resumed = True
            if self.acc.is_main_process:
                truncate_log(self.log_file, self.state.step)
        elif self.acc.is_main_process and self.log_file.exists():
            self.log_file.unlink()  # a fresh run starts a fresh curve
        self.acc.wait_for_everyone()

    def elapsed(self) -> float:
        return self.state.elapsed + (time.time() - self.started)

    def log(self, stats: dict) -> None:
        if self.acc.is_main_process:
            append_log(self.log_file, self.state.step, stats)

    def save(self) -> None:
        # Replicas must agree before their (rank 0) weights become the saved state.
        checksums = replica_checksums(self.acc, self.acc._models)
        check_replicas(checksums, self.state.step)
        self.state.extra["replicas"] = {"processes": self.acc.num_processes, "checksums": checksums}
        tmp = self.dir / "state.tmp"
        if self.acc.is_main_process and tmp.exists():
            _rmtree(tmp)  # left by a crash mid-save
        self.acc.wait_for_everyone()
        self.acc.save_state(str(tmp))
        self.acc.wait_for_everyone()
        if self.acc.is_main_process:
            text = json.dumps(dataclasses.asdict(dataclasses.replace(self.state, elapsed=self.elapsed())))
            (tmp / "run.json").write_text(text)
            final, old = self.dir / "state", self.dir / "state.old"
            if final.exists():
                if old.exists():
                    _rmtree(old)
                final.rename(old)
            tmp.rename(final)
            _write_atomic(self.dir / "run.json", text)
            if old.exists():
                _rmtree(old)
        self.acc.wait_for_everyone()


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path)


def check_finite(step: int, **values: float) -> None:
    """Stop with a clear message at the first non-finite loss (instead of training on NaNs)."""
    bad = {k: v for k, v in values.items() if not math.isfinite(v)}
    if bad:
        raise DivergenceError(
            f"Training diverged at step {step}: {bad} is not finite. Resume from the last saved state with a lower "
            "learning rate (--set train.lr=...), or raise the energy regulariser."
        )


def infinite_batches(tensors: tuple[torch.Tensor, ...], batch_size: int, seed: int, start_epoch: int = 0) -> Iterator[tuple[torch.Tensor, ...]]:
    """Endless shuffled mini-batches; epoch e uses seed + e, so a resumed run sees the same order."""
    n = tensors[0].shape[0]
    epoch = start_epoch
    while True:
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))
        for i in range(0, n - batch_size + 1, batch_size):
            idx = perm[i : i + batch_size]
            yield tuple(t[idx] for t in tensors)
        epoch += 1


def hardware() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()}x {torch.cuda.get_device_name(0)}"
    n = torch.get_num_threads()
    return f"CPU ({platform.processor() or platform.machine()}, {n} thread{'' if n == 1 else 's'})"


def command_line() -> str:
    """The command that started this run, for the model card."""
    launcher = "accelerate launch " if "ACCELERATE_MIXED_PRECISION" in os.environ or "LOCAL_RANK" in os.environ else "python "
    script = os.path.relpath(sys.argv[0], REPO_ROOT) if sys.argv else "?"
    return launcher + " ".join(shlex.quote(a) for a in [script, *sys.argv[1:]])


PUSH_TO_HUB: dict[str, str | None] = {"repo": None}  # --push-to-hub of this process's run: export() publishes there


def export(name: str, model: nn.Module, card: ModelCard, *, wall_seconds: float, steps: int, export_dir: str | None = None,
           extra: dict | None = None) -> Path:
    """Write a checkpoint with the training facts (command, wall time, hardware) in config and card."""
    out = Path(export_dir) if export_dir else checkpoints_dir() / name
    training = {"command": command_line(), "wall_time_minutes": round(wall_seconds / 60, 1), "steps": steps, "hardware": hardware()}
    card.body = (card.body.rstrip() + "\n\n## Training\n"
                 f"- Command: `{training['command']}`\n- Steps: {steps}\n"
                 f"- Wall time: {training['wall_time_minutes']} min\n- Hardware: {training['hardware']}\n"
                 + history_markdown((extra or {}).get("earlier_training", []), training))
    path = save_checkpoint(out, model.kind, model.config, model.state_dict(), card, extra={"training": training, **(extra or {})})
    if PUSH_TO_HUB["repo"]:  # --push-to-hub (checked in start())
        from studio.publish import push_to_hub

        print(f"Published {path} to {push_to_hub(path, PUSH_TO_HUB['repo']).commit_url}")
    return path


def history_markdown(earlier: list[dict], last: dict) -> str:
    """The card's list of every run a continued checkpoint came from, oldest first, with the summed cost."""
    if not earlier:
        return ""
    runs = [*earlier, last]
    lines = [f"{i}. `{r.get('command', '?')}`: {r.get('steps', '?')} steps, {r.get('wall_time_minutes', '?')} min, "
             f"{r.get('hardware', '?')}" for i, r in enumerate(runs, 1)]
    total = sum(r.get("wall_time_minutes") or 0 for r in runs)
    return ("\n## Training history\nThis checkpoint continues earlier runs (`--init-from`); all of them, oldest first:\n\n"
            + "\n".join(lines) + f"\n\nIn all: {round(total, 1)} min ({round(total / 60, 2)} h) in {len(runs)} runs.\n")


def configure_threads(accelerator, requested: int = 0) -> int:
    """CPU threads per process. `accelerate launch` exports OMP_NUM_THREADS=1, which would leave a
    single-process CPU run on one core; default to sharing the machine's cores between processes.
    STUDIO_THREADS=n in the environment wins over the config (for runs that share a machine)."""
    env = os.environ.get("STUDIO_THREADS", "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ConfigError(f"STUDIO_THREADS must be a positive integer; got {env!r}.")
        requested = int(env)
    if requested:
        n = requested
    elif accelerator.device.type == "cpu":
        n = max(1, (os.cpu_count() or 1) // accelerator.num_processes)
    else:
        return torch.get_num_threads()
    torch.set_num_threads(n)
    return n


def start(doc: str, default_config: str, config_cls: type[T], argv: list[str] | None = None,
          add_arguments: Callable[[argparse.ArgumentParser], None] | None = None, accelerator_kwargs: dict | None = None):
    """The common preamble of every train script: parse args, read the typed config, set up
    the Accelerator (``--cpu`` forces the CPU), threads and seed. Returns (args, config, accelerator)."""
    parser = base_parser(doc, default_config)
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    if args.push_to_hub:  # a malformed repo id or a missing token fails now, not after training
        from studio.errors import StudioError
        from studio.publish import check_push_target

        try:
            check_push_target(args.push_to_hub)
        except StudioError as err:
            parser.error(f"--push-to-hub: {err}")
    PUSH_TO_HUB["repo"] = args.push_to_hub
    # DDP's note about grad strides (some convolutions return channels-last grads on CPU) is about
    # speed, not correctness; it would fill every multi-process log.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    cfg = load_config(config_cls, args.config, args.overrides)
    acc = make_accelerator(cpu=args.cpu, **(accelerator_kwargs or {}))
    configure_threads(acc, cfg.train.threads)
    torch.manual_seed(cfg.train.seed + acc.process_index)
    return args, cfg, acc
