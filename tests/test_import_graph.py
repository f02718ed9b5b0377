"""The import graph: method modules register their kinds in ``studio.kinds`` and never load ``studio.hub``."""
import json
import subprocess
import sys

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
