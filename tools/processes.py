"""Start a server process, wait for its page, stop it: for the benchmark, the load test and the packaging tests."""
from __future__ import annotations

import contextlib
import shlex
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Iterator


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM, then SIGKILL if the process has not exited after ``timeout`` seconds; always reaped."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def serving(cmd: list[str], *, port: int, cwd: Path | None = None, env: dict | None = None,
            timeout: float = 120.0) -> Iterator[tuple[str, float, str]]:
    """Run ``cmd`` (a server that will listen on ``port``) and yield (url, seconds from the start to the first bytes
    of its page, the page's text) once it answers; the process is stopped afterwards. Raises RuntimeError, with the
    tail of its stderr, if it exits or does not answer within ``timeout`` seconds."""
    url = f"http://127.0.0.1:{port}/"
    with tempfile.TemporaryFile() as log:  # a file, not a pipe: a chatty server cannot fill it and stall
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            while True:
                try:
                    with urllib.request.urlopen(url, timeout=5) as response:
                        first = response.read(1)
                        seconds = time.perf_counter() - start
                        page = (first + response.read()).decode(errors="replace")
                    break
                except OSError:
                    if proc.poll() is not None or time.perf_counter() - start > timeout:
                        log.seek(0)
                        tail = log.read().decode(errors="replace")[-3000:]
                        state = f"exited with {proc.returncode}" if proc.poll() is not None else f"did not answer in {timeout:.0f} s"
                        raise RuntimeError(f"{shlex.join(map(str, cmd))} {state} ({url}): {tail}") from None
                    time.sleep(0.05)
            yield url, seconds, page
        finally:
            stop(proc)
