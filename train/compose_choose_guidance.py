"""Choose an attribute model's default composition guidance w on seeds the evaluation never uses.

    python -m train.compose_choose_guidance cdrl-fmnist-attributes [--grid 3,6,7,8,10] [--per-setting 40] [--grids DIR]

For each w in the grid: ``--per-setting`` samples of every single- and two-attribute setting at seeds 1,000,000+
(the evaluation's are below 100,000), judged as ``python -m train.evaluate`` judges them
(``train.eval_compose.evaluate_compose_attributes``). One JSON line per w. ``--grids DIR`` also writes each w's grid
of all full attribute combinations, to look at: a large w raises the accuracy while the samples saturate. The rule
and its result are written beside ``studio.compose.ATTRIBUTE_GUIDANCE`` and in the model card.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import studio

from .eval_compose import evaluate_compose_attributes, write_combination_grid

SEED_BLOCK = 10  # evaluate_compose_attributes' seed s uses seeds s * 100,000 + i: block 10 is 1,000,000 up


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="an attribute-conditional CDRL checkpoint (name or folder)")
    parser.add_argument("--grid", default="3,6,7,8,10", help="guidance values w, comma-separated")
    parser.add_argument("--per-setting", type=int, default=40, help="samples per setting")
    parser.add_argument("--grids", type=Path, default=None, help="write each w's combination grid (PNG) here")
    args = parser.parse_args(argv)
    model = studio.load(args.model)
    if not getattr(model.config, "attributes", None):
        parser.error(f"{args.model} has no attributes: the guidance scan is for attribute-conditional CDRL.")
    for w in (float(v) for v in args.grid.split(",")):
        m = evaluate_compose_attributes(model, per_setting=args.per_setting, seed=SEED_BLOCK, guidance=w, max_size=2)
        print(json.dumps({"guidance": w, "single": m["compose_single_accuracy"], "pair": m["compose_pair_accuracy"]}),
              flush=True)
        if args.grids:
            write_combination_grid(model, args.grids / f"combinations-w{w:g}.png", guidance=w)


if __name__ == "__main__":
    main()
