"""A short load run on the app: concurrent gradio_client callers on the CDRL tab.

    python -m tools.loadtest [--callers 8] [--requests 3] [--samples 16] [--steps 10] [--json]

Spawns ``python app.py`` on a free port (as ``tools.bench`` does), sends one warm-up request (which
loads the model), then lets ``--callers`` clients send ``--requests`` generate requests each, one
after another, all clients at once. Reports latency percentiles (submit to final result), the
failures, the wall time and the app's queue settings (``studio.ui.QUEUE``).
"""
from __future__ import annotations

import argparse
import json
import statistics
import threading
import time

from tools.bench import CDRL_REQUEST, serve_app


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), linear between order statistics."""
    if not values:
        return float("nan")
    data = sorted(values)
    pos = (len(data) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def run(url: str, callers: int, requests: int, args: tuple) -> dict:
    """Drive ``callers`` threads of ``requests`` sequential CDRL requests against ``url``."""
    from gradio_client import Client

    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    start_line = threading.Barrier(callers)

    def caller(i: int) -> None:
        try:
            client = Client(url, verbose=False)
        except Exception as err:  # noqa: BLE001  (a load test reports every failure, whatever it is)
            with lock:
                failures.extend([f"caller {i}: could not connect ({err})"] * requests)
            start_line.abort()
            return
        try:
            start_line.wait()
        except threading.BrokenBarrierError:
            pass
        for r in range(requests):
            start = time.perf_counter()
            try:
                client.predict(*args, api_name="/cdrl_generate")
                with lock:
                    latencies.append(time.perf_counter() - start)
            except Exception as err:  # noqa: BLE001
                with lock:
                    failures.append(f"caller {i} request {r}: {type(err).__name__}: {err}")

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(callers)]
    wall = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - wall
    return {"callers": callers, "requests_per_caller": requests, "completed": len(latencies), "failed": len(failures),
            "p50_seconds": round(percentile(latencies, 50), 2), "p95_seconds": round(percentile(latencies, 95), 2),
            "max_seconds": round(max(latencies), 2) if latencies else float("nan"),
            "mean_seconds": round(statistics.fmean(latencies), 2) if latencies else float("nan"),
            "wall_seconds": round(wall, 1), "failures": failures[:5]}


def main(argv: list[str] | None = None) -> dict:
    from studio.ui import QUEUE
    from tools.bench import machine

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--callers", type=int, default=8, help="concurrent gradio_client callers")
    parser.add_argument("--requests", type=int, default=3, help="sequential requests per caller")
    parser.add_argument("--samples", type=int, default=16, help="images per request")
    parser.add_argument("--steps", type=int, default=10, help="Langevin steps K per level")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.callers < 1 or args.requests < 1:
        parser.error("--callers and --requests must be at least 1")
    request = list(CDRL_REQUEST)
    request[2], request[4] = args.steps, args.samples
    with serve_app() as (url, _):
        from gradio_client import Client

        warm = time.perf_counter()
        Client(url, verbose=False).predict(*request, api_name="/cdrl_generate")  # loads the model
        warm = time.perf_counter() - warm
        result = run(url, args.callers, args.requests, tuple(request))
    result = {**result, "warmup_request_seconds": round(warm, 2), "request": f"{args.samples} samples, K = {args.steps}, w = 1",
              "queue": dict(QUEUE), "machine": machine()}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"Machine: {result['machine']}\nQueue: {result['queue']}\nRequest: {result['request']}\n")
        for key in ("callers", "requests_per_caller", "completed", "failed", "p50_seconds", "p95_seconds", "max_seconds",
                    "mean_seconds", "wall_seconds", "warmup_request_seconds"):
            print(f"{key:24s} {result[key]}")
        for failure in result["failures"]:
            print("failure:", failure)
    return result


if __name__ == "__main__":
    main()
