"""The latent-design comparison behind LETIT's 16x16x8 map (studio/letit.py docstring, model card).

    python -m train.letit_latent_study [--steps 300] [--threads 1]

Trains three autoencoders with the recipe of ``train/letit.py --stage autoencoder``
(noisy codes, latent L2, Adam with a one-cycle schedule, batch 32, no augmentation)
for the same number of steps on the union of both emoji styles, then prints the
reconstruction PSNR at 64x64 on the held-out test images of both styles.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from studio.data.emoji import load_emoji_pairs
from studio.letit import LETIT, LETITConfig
from studio.metrics import psnr

VARIANTS = {
    "16x16x8 map": dict(ae_widths=[32, 64, 96], ae_blocks=[0, 1, 2], latent_channels=8),
    "8x8x16 map": dict(ae_widths=[32, 64, 96, 128], ae_blocks=[0, 1, 1, 1], latent_channels=16),
    "256-d vector": dict(ae_widths=[32, 64, 96, 128], ae_blocks=[0, 1, 1, 1], latent_channels=32, latent_dim=256),
}


def study(name: str, steps: int, train: torch.Tensor, test: torch.Tensor) -> dict:
    torch.manual_seed(0)
    model = LETIT(LETITConfig(**VARIANTS[name]))
    params = [*model.encoder.parameters(), *model.decoder.parameters()]
    opt = torch.optim.Adam(params, 1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=steps, pct_start=0.05)
    gen = torch.Generator().manual_seed(0)
    start = time.time()
    for _ in range(steps):
        x = train[torch.randint(0, len(train), (32,), generator=gen)]
        out = model.autoencoder_loss(x, 0.1, 1e-3, gen)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        rec = torch.cat([model.decode_raw(model.encode_raw(test[i : i + 128])).clamp(-1, 1) for i in range(0, len(test), 128)])
    return {"latent": name, "numbers": int(torch.tensor(model.config.latent_shape).prod()), "steps": steps,
            "test_psnr": round(float(psnr(rec, test).mean()), 2), "seconds": round(time.time() - start)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    tr, te = load_emoji_pairs("train"), load_emoji_pairs("test")
    train, test = torch.cat([tr.twitter, tr.google]), torch.cat([te.twitter, te.google])
    for name in VARIANTS:
        print(json.dumps(study(name, args.steps, train, test)), flush=True)


if __name__ == "__main__":
    main()
