"""Choose CF-EBM's sampler defaults on validation images, without touching the test split.

    python -m train.cfebm_choose_sampler cfebm-fmnist [--samples 1000] [--json runs/cfebm-sampler.json]

Two questions, each answered by the Frechet distance (evaluator-fmnist features) between samples and the
5,000 validation images that no CF-EBM saw in training (``load_fashion_mnist("val")``), at seeds that the
test evaluation (``python -m train.evaluate``, seeds 0..N-1) never uses:

1. Single scale, the clean ending. The trained noise schedule eta_t = eta0 - eta0 / (T - t + 1) is still
   sqrt(eta0 / 2) = 0.1 in std at the chain's last step (t = T - 1), so every sample ends with fresh noise
   on it: the speckle. The scan appends ``final_steps`` noise-free steps of the same dynamics.
2. Multi-scale: steps per scale and the share of fresh noise blended into each upsampled coarse sample
   (``blend``; training's explicit smooth sampling uses the same mix while a stage fades in), with the clean
   ending chosen in 1. The class histogram's entropy (evaluator-fmnist's predictions) is printed beside
   each FD, since the fault to fix was a collapse onto trousers and sneakers.

The rule: the lowest validation FD. It prints one line per candidate and a JSON summary; the choice
becomes ``CFEBMConfig``'s defaults (``final_steps``, ``scale_steps``, ``multiscale_blend``) by hand, with
the scan in the model card.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import studio
from studio.metrics import batched_features, frechet_distance

SEED_OFFSET = 7_000_000  # far from the test evaluation's seeds


def class_entropy(judge, x: torch.Tensor) -> float:
    """Entropy (nats) of the judge's predicted-class histogram; ln 10 = 2.303 is all classes evenly."""
    pred = judge.predict(x)  # class indices
    p = torch.bincount(pred, minlength=10).double() / len(pred)
    return float(-(p[p > 0] * p[p > 0].log()).sum())


def samples(model, n: int, batch: int = 100, **kwargs) -> torch.Tensor:
    out = []
    for i in range(0, n, batch):
        seeds = ",".join(str(SEED_OFFSET + j) for j in range(i, min(n, i + batch)))
        out.append(model.generate(seeds=seeds, **kwargs)[0].cpu())
    return torch.cat(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="a CF-EBM checkpoint trained on Fashion-MNIST")
    parser.add_argument("--samples", type=int, default=1000, help="samples per candidate (and validation images)")
    parser.add_argument("--final-grid", default="0,1,2,3,5,8,12,16,24", help="noise-free final steps to try")
    parser.add_argument("--scale-steps-grid", default="trained,15,30",
                        help="multi-scale steps per scale to try; 'trained' is the config's multiscale_steps")
    parser.add_argument("--blend-grid", default="0,0.3,0.5,0.7,0.9", help="multi-scale noise blends to try")
    parser.add_argument("--json", default=None, help="also write the scan here")
    args = parser.parse_args(argv)

    from studio.data.fashion_mnist import load_fashion_mnist

    model = studio.load(args.name)
    judge = studio.load("evaluator-fmnist")
    val = load_fashion_mnist("val").images[: args.samples]
    real = batched_features(judge.features, val)

    def score(label: str, **kwargs) -> dict:
        x = samples(model, args.samples, **kwargs)
        row = {"candidate": label, **kwargs, "fd_val": round(frechet_distance(batched_features(judge.features, x), real), 3),
               "class_entropy": round(class_entropy(judge, x), 3)}
        print(json.dumps(row), flush=True)
        return row

    single = [score(f"single final={k}", final_steps=k) for k in map(int, args.final_grid.split(","))]
    best_final = min(single, key=lambda r: r["fd_val"])["final_steps"]
    multi = []
    if model.coarse:
        trained = model.config.multiscale_steps or None
        for text in args.scale_steps_grid.split(","):
            k = trained if text == "trained" else int(text)
            if k is None:
                continue  # 'trained' asked of a model without multiscale_steps: scale_steps is in the grid anyway
            for b in map(float, args.blend_grid.split(",")):
                multi.append(score(f"multi steps={k} blend={b}", multiscale=True, steps=k, blend=b, final_steps=best_final))
    out = {"validation_images": len(val), "samples": args.samples, "seed_offset": SEED_OFFSET, "single": single,
           "multi": multi, "chosen_final_steps": best_final}
    if multi:
        best = min(multi, key=lambda r: r["fd_val"])
        out.update(chosen_scale_steps=best["steps"], chosen_blend=best["blend"])
    print(json.dumps({k: v for k, v in out.items() if k.startswith("chosen")}))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
