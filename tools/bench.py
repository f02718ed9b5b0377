"""Measure the studio's samplers and app on whatever device is present.

    python -m tools.bench [--json] [--only KEY[,KEY...]] [--repeats N]

Each benchmark needs its checkpoint in checkpoints/ (or its module); a missing one is skipped with a
note instead of failing. Timings are medians over ``--repeats`` runs after one warm-up run, with fixed
seeds; ratios (overheads, speed-ups) are medians of ratios between runs made back to back in the
same round, so that both sides of a ratio saw the same load on a shared machine.
The thread count follows ``studio.runtime.configure_threads`` (OMP_NUM_THREADS / STUDIO_THREADS win).

Keys with a bar (see ``BARS``):

* ``engine_overhead``: one CDRL level of K = 15 Langevin steps through ``studio.langevin`` (w = 1,
  16 samples) / (K x one bare forward + input-gradient pass of the same EBM on the same batch).
* ``speedup_vs_naive``: ``naive_cdrl_generate`` (the straightforward implementation, below) / the
  real ``CDRL.generate``, 16 samples, w = 1, K = 15.
* ``nerf_seconds_view_64`` / ``nerf_seconds_orbit_24``: one 64x64 view; a 24-view orbit (per view <= 0.5 s).
* ``app_cold_start_seconds``: from spawning ``python app.py`` to the app answering HTTP.
* ``import_seconds``: ``python -c "import studio"`` started outside the repository, after ``pip install .``
  into a fresh venv (``tools.fresh_install``; median after a warm-up run).
* ``device``: the device the benchmark ran on (``studio.device.resolve_device``: ``STUDIO_DEVICE``, else CUDA, ...).
* ``first_frame_seconds``: a gradio_client caller's wait for the first streamed frame of CDRL generate
  (median over warm requests; ``first_frame_seconds_first_request`` includes loading the model).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import Tensor
from torch.nn.utils import parametrize

from studio.device import resolve_device
from studio.errors import CheckpointError, SamplingError
from studio.langevin import frozen, make_generators, parse_seeds, randn
from studio.runtime import configure_threads
from tools.processes import free_port, serving

ROOT = Path(__file__).resolve().parents[1]

# key -> (bar description, check) for the keys that have a bar.
BARS: dict[str, tuple[str, Callable[[float], bool]]] = {
    "trace_overhead": ("<= 0.15", lambda v: v <= 0.15),
    "engine_overhead": ("<= 1.10", lambda v: v <= 1.10),
    "speedup_vs_naive": (">= 2.0", lambda v: v >= 2.0),
    "nerf_seconds_view_64": ("<= 0.5", lambda v: v <= 0.5),
    "nerf_seconds_orbit_24": ("<= 12 (0.5 per view)", lambda v: v <= 24 * 0.5),
    "app_cold_start_seconds": ("<= 15", lambda v: v <= 15),
    "import_seconds": ("<= 3", lambda v: v <= 3),
    "first_frame_seconds": ("<= 1.5", lambda v: v <= 1.5),
}


class Skipped(Exception):
    """A benchmark that cannot run here (module or checkpoint absent); reported as a note."""


def timed(fn: Callable[[], object], repeats: int, warmup: bool = True) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs, after one warm-up run (caches, allocator)."""
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _load(name: str):
    """A checkpoint from checkpoints/ (never the Hub: a missing one is skipped, not downloaded)."""
    from studio import load
    from studio.registry import local_names

    if name not in local_names():
        raise Skipped(f"checkpoints/{name} is absent")
    return load(name)


# ----------------------------------------------------------------------------- engine cost


def _cdrl_level(model, n: int = 16, t_int: int = 0, class_name: str = "Trouser"):
    """A fixed CDRL level-t batch: proposal y0, anchor x_{t+1}, levels, labels and per-sample generators."""
    cfg = model.config
    gens = make_generators(f"0-{n - 1}")
    shape = (n, cfg.channels, cfg.image_size, cfg.image_size)
    y0, x_next = randn(shape, gens).to(model.device), randn(shape, gens).to(model.device)
    t = torch.full((n,), t_int, dtype=torch.long, device=model.device)
    labels = torch.full((n,), cfg.class_names.index(class_name) + 1, dtype=torch.long, device=model.device)
    return y0, x_next, t, labels, gens


def bare_passes(model, y: Tensor, t: Tensor, labels: Tensor, steps: int, w: float = 1.0) -> None:
    """``steps`` bare network passes: the guided evaluation one step needs (cond + null, one batched call,
    ``CDRL.guided_fhat``) and one input-gradient pass, spectral-norm weights computed once and parameters
    frozen: the floor of a Langevin step, with nothing of the engine around it."""
    with torch.enable_grad(), frozen(model.ebm), parametrize.cached():
        for _ in range(steps):
            x = y.detach().requires_grad_(True)
            torch.autograd.grad(model.guided_fhat(x, t, labels, w).sum(), x)


def paired(fns: dict[str, Callable[[], object]], rounds: int, only_first: dict[str, int] | None = None) -> dict[str, list[float]]:
    """Wall times of several functions run back to back in each round, so a ratio between two of them
    is taken between runs that saw the same machine load (this machine may be shared). ``only_first``
    limits a slow function to the first n rounds."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(rounds):
        for name, fn in fns.items():
            if r < (only_first or {}).get(name, rounds):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return times


def ratio(times: dict[str, list[float]], num: str, den: str) -> float:
    """Median over rounds of num / den, each pair from the same round."""
    return statistics.median(a / b for a, b in zip(times[num], times[den]))


def bench_engine(repeats: int, steps: int = 15) -> dict:
    """engine_overhead: one CDRL level of K steps through the engine (w = 1, 16 samples) against K bare passes."""
    model = _load("cdrl-fmnist")
    y0, x_next, t, labels, gens = _cdrl_level(model)
    chain = lambda: model.refine(y0, x_next, t, labels, steps=steps, w=1.0, generator=gens)  # noqa: E731
    bare = lambda: bare_passes(model, y0, t, labels, steps)  # noqa: E731
    chain(), bare()  # warm-up (the first chain also converts the EBM to channels-last)
    times = paired({"bare": bare, "chain": chain}, max(3, repeats))
    return {"engine_overhead": round(ratio(times, "chain", "bare"), 3),
            "bare_pass_ms": round(1000 * statistics.median(times["bare"]) / steps, 2)}


# ----------------------------------------------------------------------------- the naive baseline


def naive_cdrl_generate(model, class_name: str | None, seeds, guidance: float, steps: int,
                        power_iteration: bool = True) -> Tensor:
    """CDRL sampling written the straightforward way: the baseline of ``speedup_vs_naive``.

    Same algorithm, schedule and per-sample noise as ``CDRL.generate`` (the same seeds give the same
    samples up to float error; exactly the same math with ``power_iteration=False``), without the
    fast paths: spectral norm recomputed by a power iteration at every network call (the EBM in
    train mode), parameter gradients computed at every step (``backward()``), guidance as two
    separate calls, a host copy of every frame and energy and a finiteness check per step. It runs on
    a private copy of the model, so the real model's spectral-norm state is untouched.
    """
    net = copy.deepcopy(model)
    net.requires_grad_(True)
    net.ebm.train(power_iteration)  # train mode: one power iteration inside every forward
    cfg, dev = net.config, net.device
    seed_list = parse_seeds(seeds)
    n = len(seed_list)
    gens = make_generators(seed_list)
    label = 0 if class_name is None else cfg.class_names.index(class_name) + 1
    labels = torch.full((n,), label, dtype=torch.long, device=dev)
    null = torch.zeros_like(labels)
    shape = (n, cfg.channels, cfg.image_size, cfg.image_size)
    w = guidance if label else 0.0

    def fhat(y: Tensor, t: Tensor) -> Tensor:
        if not w:
            return net.fhat(y, t, labels)
        return (w + 1) * net.fhat(y, t, labels) - w * net.fhat(y, t, null)

    frames, energies = [], []
    x = randn(shape, gens).to(dev)
    for t_int in range(cfg.num_levels - 1, -1, -1):
        t = torch.full((n,), t_int, dtype=torch.long, device=dev)
        mean = net.propose(x, t, labels)
        if w:
            mean = (w + 1) * mean - w * net.propose(x, t, null)
        y = mean.detach() + net.init_std[t_int] * randn(shape, gens).to(dev)
        frames.append(y.detach().cpu().clone())
        s_train_sq = net.step_sq[t_int]
        s_sq = s_train_sq * cfg.langevin_steps / steps
        quad_on = float(net.alpha_eff[t_int] != 1)
        sig_sq = net.sigma[t_int] ** 2
        for _ in range(steps):
            y = y.detach().requires_grad_(True)
            energy = -fhat(y, t) / s_train_sq + quad_on * ((y - x) ** 2).flatten(1).sum(1) / (2 * sig_sq)
            net.zero_grad()
            energy.sum().backward()  # fills the .grad of every parameter as well as of y
            energies.append(energy.detach().cpu().tolist())
            if not math.isfinite(sum(energies[-1])):
                raise SamplingError("The naive sampler diverged.")
            y = y.detach() - s_sq / 2 * y.grad + s_sq.sqrt() * randn(shape, gens).to(dev)
            frames.append(y.cpu().clone())
        x = y.detach() / net.alpha_eff[t_int]
    xr = x.detach().requires_grad_(True)
    net.zero_grad()
    (fhat(xr, torch.zeros(n, dtype=torch.long, device=dev)) / net.step_sq[0]).sum().backward()
    x = (x + cfg.tweedie_coef * net.sbar[0] ** 2 * xr.grad) / net.abar[0]
    return x.detach().clamp(-1, 1)


# ----------------------------------------------------------------------------- samplers


def bench_cdrl(repeats: int) -> dict:
    """CDRL at w = 1 for 16 samples (K = 15 and K = 5), the cost of recording a frame every step,
    and the naive implementation of the K = 15 run."""
    model = _load("cdrl-fmnist")
    run = lambda k, every: model.generate("Trouser", seeds="0-15", guidance=1.0, steps=k, record_every=every)  # noqa: E731
    run(15, 1)  # warm-up
    times = paired({"plain": lambda: run(15, 0), "recorded": lambda: run(15, 1), "k5": lambda: run(5, 0),
                    "naive": lambda: naive_cdrl_generate(model, "Trouser", "0-15", 1.0, 15)},
                   repeats, only_first={"naive": max(1, (repeats + 1) // 2)})  # the naive run is slow: fewer rounds
    med = {name: statistics.median(v) for name, v in times.items()}
    return {"cdrl_seconds_16": round(med["plain"], 3), "cdrl_seconds_16_k5": round(med["k5"], 3),
            "cdrl_seconds_16_recorded": round(med["recorded"], 3),
            "trace_overhead": round(ratio(times, "recorded", "plain") - 1, 4),
            "naive_seconds_16": round(med["naive"], 3), "speedup_vs_naive": round(ratio(times, "naive", "plain"), 3)}


def bench_cfebm(repeats: int) -> dict:
    model = _load("cfebm-fmnist")
    return {"cfebm_seconds_16": round(timed(lambda: model.generate(seeds="0-15"), repeats), 3)}


def bench_cfebm_translation(repeats: int) -> dict:
    model = _load("cfebm-emoji-t2g")
    image = torch.zeros(3, 64, 64)
    return {"cfebm_translate_seconds_1": round(timed(lambda: model.translate(image, seeds="0"), repeats), 3)}


def bench_letit(repeats: int) -> dict:
    """One 64x64 Twitter -> Google translation with the direction's trained sampler settings."""
    model = _load("letit-emoji")
    if "t2g" not in model.trained_directions:
        raise Skipped("letit-emoji has no trained t2g latent EBM yet")
    image = torch.zeros(3, model.config.image_size, model.config.image_size)
    return {"letit_seconds_1": round(timed(lambda: model.translate(image, "t2g", seeds="0"), repeats), 3)}


def bench_nerf(repeats: int) -> dict:
    """One 64x64 view and a 24-view orbit of one object of the NeRF latent EBM (``studio.nerf_lebm``),
    latents drawn from its prior by Langevin (not timed)."""
    try:
        from studio import nerf_lebm  # noqa: F401  (registers the model kind)
    except ImportError:
        raise Skipped("studio.nerf_lebm is not in this checkout") from None
    model = _load("nerf-lebm-shapes")
    z_s, z_a = model.sample_latents(seeds="0")
    view = timed(lambda: model.render(z_s, z_a, azimuth=30.0, elevation=20.0, resolution=64), repeats)
    orbit = timed(lambda: model.orbit(z_s, z_a, frames=24, elevation=20.0, resolution=64), max(1, repeats // 2), warmup=False)
    return {"nerf_seconds_view_64": round(view, 3), "nerf_seconds_orbit_24": round(orbit, 3),
            "nerf_seconds_per_orbit_view": round(orbit / 24, 3)}


# ----------------------------------------------------------------------------- the app


@contextlib.contextmanager
def serve_app(timeout: float = 120.0, env: dict | None = None) -> Iterator[tuple[str, float]]:
    """Spawn ``python app.py`` on a free port; yield (url, seconds from spawn to the first HTTP answer)."""
    port = free_port()
    child_env = {**os.environ, **(env or {}), "PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1",
                 "GRADIO_ANALYTICS_ENABLED": "False"}
    with serving([sys.executable, str(ROOT / "app.py")], port=port, cwd=ROOT, env=child_env, timeout=timeout) as (url, cold, _):
        yield url, cold


# The CDRL tab's inputs: class, guidance w, K, first seed, samples, noise, Tweedie, initializer only, compare with DRL.
CDRL_REQUEST = ("Trouser", 1.0, 10, 0, 16, True, True, False, False)


def first_frame(client, args=CDRL_REQUEST) -> tuple[float, float]:
    """(seconds to the first streamed output, seconds to the final result) of one CDRL generate call."""
    start = time.perf_counter()
    job = client.submit(*args, api_name="/cdrl_generate")
    while not job.outputs() and not job.done():
        time.sleep(0.002)
    first = time.perf_counter() - start
    job.result()
    return first, time.perf_counter() - start


def bench_app(repeats: int) -> dict:
    """Cold start of ``python app.py`` and the first streamed CDRL frame seen by a gradio_client caller."""
    from gradio_client import Client

    from studio.registry import local_names

    out = {}
    with serve_app() as (url, cold):
        out["app_cold_start_seconds"] = round(cold, 3)
        if "cdrl-fmnist" not in local_names():
            return out
        client = Client(url, verbose=False)
        first, total = first_frame(client)  # includes loading the model (lazily, on first use)
        warm = [first_frame(client) for _ in range(repeats)]
        out.update({"first_frame_seconds": round(statistics.median(f for f, _ in warm), 3),
                    "first_frame_seconds_first_request": round(first, 3),
                    "cdrl_request_seconds": round(statistics.median(t for _, t in warm), 3)})
    return out


def bench_import(repeats: int, python: Path | None = None) -> dict:
    """``import studio`` in a fresh venv after ``pip install .`` (``python``: an environment installed already)."""
    from tools.fresh_install import import_seconds, install

    with tempfile.TemporaryDirectory() as where:
        return {"import_seconds": round(import_seconds(python or install(Path(where)), repeats), 3)}


BENCHES: dict[str, Callable[[int], dict]] = {
    "engine": bench_engine, "cdrl": bench_cdrl, "cfebm": bench_cfebm, "cfebm-translation": bench_cfebm_translation,
    "letit": bench_letit, "nerf": bench_nerf, "app": bench_app, "import": bench_import,
}


def machine() -> str:
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({platform.machine()}, {os.cpu_count()} cores)"
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return f"{device}, torch {torch.__version__}, {torch.get_num_threads()} threads{load}"


def run(names: list[str], repeats: int) -> tuple[dict, list[str]]:
    results, notes = {}, []
    for name in names:
        try:
            results.update(BENCHES[name](repeats))
        except (CheckpointError, Skipped) as err:
            notes.append(f"{name}: skipped ({err})")
    return results, notes


def table(results: dict) -> str:
    rows = ["| key | value | bar |", "|---|---|---|"]
    for key, value in results.items():
        bar = ""
        if key in BARS:
            text, ok = BARS[key]
            bar = f"{text} ({'met' if ok(value) else 'MISSED'})"
        rows.append(f"| `{key}` | {value} | {bar} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--only", default=",".join(BENCHES), help=f"comma-separated subset of {', '.join(BENCHES)}")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (median)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(BENCHES))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {sorted(BENCHES)}")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    configure_threads(jobs=1, dedicated=True)  # a benchmark owns the machine (run it on a quiet one)
    start = time.perf_counter()
    results, notes = run(names, args.repeats)
    seconds = round(time.perf_counter() - start, 1)
    if args.json:
        print(json.dumps({**results, "device": str(resolve_device()), "machine": machine(), "bench_seconds": seconds, "skipped": notes}))
    else:
        print(f"Machine: {machine()}, device {resolve_device()}\n\n{table(results)}\n\nBench wall time: {seconds} s")
        for note in notes:
            print(note)


if __name__ == "__main__":
    main()
