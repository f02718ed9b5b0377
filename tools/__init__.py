"""Tooling around the studio, outside the library: the benchmark (``python -m tools.bench``), the load test
(``python -m tools.loadtest``), a fresh ``pip install .`` for the packaging tests, and a server-process helper.
Run from the repository root; none of it ships in the ``ebm-studio`` package."""
