"""EBM Studio web app: `python app.py` (port from PORT or GRADIO_SERVER_PORT, default 7860)."""
import os

from studio.ui import build_app

demo = build_app()

if __name__ == "__main__":
    port = int(os.environ.get("PORT") or os.environ.get("GRADIO_SERVER_PORT") or 7860)
    demo.launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"), server_port=port)
