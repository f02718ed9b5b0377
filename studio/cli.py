"""The app's one launcher: ``ebm-studio``, ``python -m studio`` and ``python app.py`` all run ``main``.

    ebm-studio [--port PORT] [--host HOST] [--share]

``--port`` defaults to ``$PORT``, else ``$GRADIO_SERVER_PORT``, else 7860; ``--host`` to
``$GRADIO_SERVER_NAME``, else 127.0.0.1 (this machine only; the Docker image and Spaces set
0.0.0.0). Checkpoints are found as ``studio.paths`` says; models run where ``studio.device`` says.
"""
from __future__ import annotations

import argparse
import os
import sys


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is between 1 and 65535; got {port}")
    return port


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env_port = os.environ.get("PORT") or os.environ.get("GRADIO_SERVER_PORT") or "7860"
    parser = argparse.ArgumentParser(prog="ebm-studio", description="Run the EBM Studio web app (Gradio).")
    parser.add_argument("--port", type=_port, default=None, help=f"port to serve on (default: $PORT, $GRADIO_SERVER_PORT or 7860; now {env_port})")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1",
                        help="address to bind: 127.0.0.1 for this machine only, 0.0.0.0 for every interface "
                             "(default: $GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--share", action="store_true", help="also open a temporary public gradio.live link")
    args = parser.parse_args(argv)
    if args.port is None:
        try:
            args.port = _port(env_port)
        except argparse.ArgumentTypeError as err:
            parser.error(f"$PORT / $GRADIO_SERVER_PORT: {err}")
    return args


def create_app():
    """The Gradio app, ready to launch: threads sized for the queue, models preloaded on ZeroGPU."""
    from .ui.gpu import on_zero_gpu

    if on_zero_gpu():
        import spaces  # noqa: F401  (first, as its documentation asks: it patches torch before any CUDA use)
    from .runtime import configure_threads
    from .ui import QUEUE, build_app
    from .ui.gpu import preload

    # Threads per request: the queue runs up to default_concurrency_limit jobs per event at once, so
    # each gets that share of the free cores, unless STUDIO_THREADS or OMP_NUM_THREADS says otherwise.
    configure_threads(jobs=QUEUE["default_concurrency_limit"])
    demo = build_app()
    preload()  # on ZeroGPU: every checkpoint now, in this process (a no-op elsewhere)
    return demo


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    demo = create_app()
    demo.launch(server_name=args.host, server_port=args.port, share=args.share)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
