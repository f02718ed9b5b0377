"""Export the analytic 2-D toy energies as checkpoints (nothing to train).

    python -m train.toy            # writes checkpoints/toy-gaussian-mixture and checkpoints/toy-ring
"""
from __future__ import annotations

import argparse
from pathlib import Path

from studio.hub import ModelCard, checkpoints_dir, save_checkpoint
from studio.toy import GaussianMixture2D, GaussianMixtureConfig, Ring2D, RingConfig

CARD_BODY = """An analytic energy, not a trained network: its parameters are stored as weights so that it
loads, samples and plots through exactly the same code path as the image models.

```python
import studio
x, trace = studio.load("{name}").sample(seeds="0-63", steps=200, step_size=0.02)
```

Reproduce: `python -m train.toy`."""


def export(out_root: Path) -> list[Path]:
    written = []
    for name, model, summary in [
        ("toy-gaussian-mixture", GaussianMixture2D(GaussianMixtureConfig()), "A 2-D mixture of 8 Gaussians on a circle of radius 2.5."),
        ("toy-ring", Ring2D(RingConfig()), "A 2-D ring energy E(x) = (|x| - 2)^2 / (2 * 0.25^2)."),
    ]:
        card = ModelCard(summary=summary, body=CARD_BODY.format(name=name), tags=["toy", "langevin"])
        written.append(save_checkpoint(out_root / name, model.kind, model.config, model.state_dict(), card,
                                       extra={"training": {"command": "python -m train.toy"}}))
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=checkpoints_dir(), help="checkpoint root folder")
    args = parser.parse_args(argv)
    for path in export(args.out):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
