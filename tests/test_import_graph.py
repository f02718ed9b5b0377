"""The import graph: method modules register their kinds in ``studio.kinds`` and never load ``studio.hub``; the
train modules import each other without a cycle; the library imports neither train/ nor tools/."""
import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

METHODS = ["cdrl", "cfebm", "coopflow", "egc", "evaluator", "lab", "letit", "nerf_lebm", "toy"]


def test_method_modules_register_without_importing_the_hub():
    code = ("import importlib, json, sys\n"
            f"for name in {METHODS!r}: importlib.import_module('studio.' + name)\n"
            "from studio.kinds import MODEL_KINDS\n"
            "print(json.dumps(sorted(MODEL_KINDS))); print('studio.hub' in sys.modules, 'studio.registry' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[-1] == "False False", "a method module imports studio.hub (or the registry): that re-creates the import cycle"
    kinds = json.loads(out[-2])
    assert {"cdrl", "cfebm", "coopflow", "egc", "letit", "nerf_lebm"} <= set(kinds)


def test_hub_reads_the_same_kind_table():
    from studio import hub, kinds

    assert hub.MODEL_KINDS is kinds.MODEL_KINDS and hub.register_model is kinds.register_model


def _imports(path: Path) -> set[str]:
    """The absolute names of the modules ``path`` imports anywhere in it (function-level imports included); for
    ``from package import name``, both the package and ``package.name``."""
    package = path.relative_to(ROOT).parent.as_posix().replace("/", ".")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]) if node.level else ""
            module = ".".join(filter(None, [base, node.module]))
            found |= {module, *(f"{module}.{a.name}" for a in node.names)}
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``graph`` (as a path that ends where it starts), or [] if there is none."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(node: str, path: list[str]) -> list[str]:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt, [*path, nxt])):
                return found
        state[node] = 2
        return []

    for start in sorted(graph):
        if start not in state and (found := visit(start, [start])):
            return found
    return []


def test_train_modules_import_each_other_without_a_cycle():
    """evaluate.py imports the per-method evaluators (eval_*.py); their shared helpers live in eval_common.py, so
    none of them imports evaluate.py back. Checked over every train module, lazy imports included."""
    modules = {f"train.{p.stem}": p for p in sorted((ROOT / "train").glob("*.py")) if p.stem != "__init__"}
    graph = {name: _imports(path) & set(modules) for name, path in modules.items()}
    assert "train.eval_common" in graph["train.evaluate"] and "train.eval_coopflow" in graph["train.evaluate"]
    assert "train.eval_common" in graph["train.eval_egc"] and "train.evaluate" not in graph["train.eval_egc"]
    assert _cycle(graph) == []
    loop = _cycle({**graph, "train.eval_egc": {*graph["train.eval_egc"], "train.evaluate"}})  # the loop this test guards against
    assert loop[0] == loop[-1] and {"train.evaluate", "train.eval_egc"} <= set(loop)


def test_the_library_imports_neither_train_nor_tools():
    for path in sorted((ROOT / "studio").rglob("*.py")):
        assert not {m for m in _imports(path) if m.split(".")[0] in ("train", "tools")}, path
