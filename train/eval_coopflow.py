"""CoopFlow metrics (``python -m train.evaluate coopflow-fmnist``): flow-only vs Langevin-refined FD.

Both FDs use the same seeds (sample i: latent z from seed i, then the Langevin flow from that very
proposal) and the same held-out reference (the first ``samples`` of a fixed permutation of the
Fashion-MNIST test split, in evaluator-fmnist's feature space), so their difference is what the T
Langevin steps did. The refined FD is also given at the training step size, to show what the paper's
4/3 larger sampling step buys, together with the flow's test bits/dim and the training time.
"""
from __future__ import annotations

import time

import torch

from studio.metrics import batched_features, fd_floor, frechet_distance

BPD_IMAGES = 1000  # test images for the flow's bits/dim


def _samples(model, seeds: list[int], batch: int = 100, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    flow, refined = [], []
    for i in range(0, len(seeds), batch):
        out = model.sample(",".join(map(str, seeds[i : i + batch])), **kwargs)
        flow.append(out.flow)
        refined.append(out.refined)
    return torch.cat(flow), torch.cat(refined)


def flow_vs_refined_fd(model, samples: int, seed: int, reference=None, **sample_kwargs) -> dict:
    """FD of flow proposals and of the same proposals after the Langevin flow (default sampler settings)."""
    if reference is None:
        from .evaluate import _fmnist_reference

        judge, _, _, real_feats = _fmnist_reference(samples, seed)
    else:
        judge, real_feats = reference
    seeds = list(range(seed * 100000, seed * 100000 + samples))
    flow, refined = _samples(model, seeds, **sample_kwargs)
    fd = lambda x: round(frechet_distance(batched_features(judge.features, x), real_feats), 3)  # noqa: E731
    return {"coopflow_fd_flow": fd(flow), "coopflow_fd_refined": fd(refined)}


def evaluate_coopflow(model, samples: int, seed: int) -> dict:
    from .datasets import labelled_split
    from .evaluate import _fmnist_reference

    judge, test, perm, real_feats = _fmnist_reference(samples, seed)
    metrics = flow_vs_refined_fd(model, samples, seed, (judge, real_feats))
    train_delta = model.config.train_step_size
    metrics["coopflow_fd_refined_train_step"] = flow_vs_refined_fd(model, samples, seed, (judge, real_feats),
                                                                   step_size=train_delta)["coopflow_fd_refined"]
    metrics["fd_floor"] = round(fd_floor(judge.features, labelled_split("fashion-mnist", "train").images, test, samples, seed), 3)
    gen = torch.Generator().manual_seed(seed)
    held_out = test[perm[:BPD_IMAGES]]
    with torch.no_grad():
        bpd = torch.cat([model.nll_bits_per_dim(held_out[i : i + 250], gen) for i in range(0, len(held_out), 250)])
    metrics["coopflow_flow_test_bpd"] = round(float(bpd.mean()), 3)
    wall = model.checkpoint.extra.get("training", {}).get("wall_time_minutes")
    if wall is not None:
        metrics["coopflow_train_hours"] = round(wall / 60, 2)
    metrics["langevin_steps"] = model.config.langevin_steps
    metrics["step_size"] = model.config.step_size
    metrics["train_step_size"] = train_delta
    start = time.perf_counter()
    model.sample("0-15")
    metrics["seconds_per_16_samples"] = round(time.perf_counter() - start, 2)
    metrics["samples"] = samples
    return metrics


def card_extra(m: dict) -> str:
    """What the numbers mean, written from the numbers themselves."""
    if "coopflow_fd_refined" not in m:
        return ""
    won = m["coopflow_fd_refined"] < m["coopflow_fd_flow"]
    return (f"- Flow-only vs refined at the same {m['samples']} seeds: FD {m['coopflow_fd_flow']} -> {m['coopflow_fd_refined']} "
            f"after T = {m['langevin_steps']} Langevin steps (delta {m['step_size']}); the Langevin flow "
            f"{'improved' if won else 'did not improve'} the flow's samples. At the training delta {m['train_step_size']}: "
            f"{m['coopflow_fd_refined_train_step']}. FD floor (real train vs real test): {m['fd_floor']}.\n"
            f"- The flow's test likelihood: {m['coopflow_flow_test_bpd']} bits/dim ({BPD_IMAGES} test images, one "
            "uniform dequantisation draw each).")
