"""Measure the studio's samplers on whatever device is present.

    python -m studio.bench [--json] [--only KEY[,KEY...]] [--repeats N]

Each benchmark needs its checkpoint; a missing one is skipped with a note instead of failing.
Timings are medians over ``--repeats`` runs after one warm-up run, with fixed seeds.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from typing import Callable

import torch

from .errors import CheckpointError

# key -> (bar description, check) for the keys that have a bar.
BARS: dict[str, tuple[str, Callable[[float], bool]]] = {
    "trace_overhead": ("<= 0.15", lambda v: v <= 0.15),
}


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs, after one warm-up run (caches, allocator)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _load(name: str):
    from . import load

    return load(name)


def bench_cdrl(repeats: int) -> dict:
    """CDRL at w = 1 for 16 samples (K = 15 and K = 5), and the cost of recording a frame every step."""
    model = _load("cdrl-fmnist")
    run = lambda k, every: model.generate("Trouser", seeds="0-15", guidance=1.0, steps=k, record_every=every)  # noqa: E731
    plain = timed(lambda: run(15, 0), repeats)
    recorded = timed(lambda: run(15, 1), repeats)
    return {"cdrl_seconds_16": round(plain, 3), "cdrl_seconds_16_k5": round(timed(lambda: run(5, 0), repeats), 3),
            "cdrl_seconds_16_recorded": round(recorded, 3), "trace_overhead": round(recorded / plain - 1, 4)}


def bench_cfebm(repeats: int) -> dict:
    model = _load("cfebm-fmnist")
    return {"cfebm_seconds_16": round(timed(lambda: model.generate(seeds="0-15"), repeats), 3)}


def bench_cfebm_translation(repeats: int) -> dict:
    model = _load("cfebm-emoji-t2g")
    image = torch.zeros(3, 64, 64)
    return {"cfebm_translate_seconds_1": round(timed(lambda: model.translate(image, seeds="0"), repeats), 3)}


BENCHES: dict[str, Callable[[int], dict]] = {"cdrl": bench_cdrl, "cfebm": bench_cfebm, "cfebm-translation": bench_cfebm_translation}


def machine() -> str:
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({platform.machine()}, {os.cpu_count()} cores)"
    return f"{device}, torch {torch.__version__}, {torch.get_num_threads()} threads"


def run(names: list[str], repeats: int) -> tuple[dict, list[str]]:
    results, notes = {}, []
    for name in names:
        try:
            results.update(BENCHES[name](repeats))
        except CheckpointError as err:
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
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(BENCHES))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {sorted(BENCHES)}")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    results, notes = run(names, args.repeats)
    if args.json:
        print(json.dumps({**results, "machine": machine(), "skipped": notes}))
    else:
        print(f"Machine: {machine()}\n\n{table(results)}")
        for note in notes:
            print(note)


if __name__ == "__main__":
    main()
