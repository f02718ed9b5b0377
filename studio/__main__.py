"""``python -m studio``: the app's launcher (the same as the ``ebm-studio`` command; see ``studio/cli.py``)."""
from .cli import main

main()
