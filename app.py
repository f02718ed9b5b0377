"""EBM Studio web app: ``python app.py [--port PORT] [--host HOST] [--share]`` (what Spaces and the Docker
image run). The same launcher as ``ebm-studio`` and ``python -m studio``: ``studio/cli.py``."""
from studio.cli import main

if __name__ == "__main__":
    main()
