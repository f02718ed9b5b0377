"""EBM Studio web app: `python app.py` (port from PORT or GRADIO_SERVER_PORT, default 7860)."""
import os

from studio.runtime import configure_threads
from studio.ui import QUEUE, build_app

# Threads per request: the queue runs up to default_concurrency_limit jobs per event at once, so
# each gets that share of the free cores, unless STUDIO_THREADS or OMP_NUM_THREADS says otherwise.
configure_threads(jobs=QUEUE["default_concurrency_limit"])
demo = build_app()

if __name__ == "__main__":
    port = int(os.environ.get("PORT") or os.environ.get("GRADIO_SERVER_PORT") or 7860)
    demo.launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"), server_port=port)
