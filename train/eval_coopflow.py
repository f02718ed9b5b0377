"""CoopFlow metrics (``python -m train.evaluate coopflow-fmnist``): flow-only vs Langevin-refined FD, the class
spread of the samples, and FD along the chain.

All FDs use the same seeds (sample i: latent z from seed i, then the Langevin flow from that very proposal) and
the same held-out reference (the first ``samples`` of a fixed permutation of the Fashion-MNIST test split, in
evaluator-fmnist's feature space), so their differences are what the Langevin steps did.

* ``coopflow_fd_flow`` / ``coopflow_fd_refined``: the proposals, and the same proposals after the sampler's default
  T, delta and noise (the checkpoint's ``sampler_defaults``, chosen on validation images by
  train/coopflow_choose_sampler.py).
* ``coopflow_fd_refined_T<t>``: FD after t steps of that chain, for t in {0, T_train / 2, T_train, 2 T_train} and
  the default T (T_train: what the EBM was trained with). One chain of the longest T gives every row: its state
  after t steps is exactly a t-step chain's result. A short-run EBM is not a convergent sampler, so the rows past
  T_train show what running longer than trained does.
* ``coopflow_class_entropy``: entropy (nats) of evaluator-fmnist's predicted-class histogram over the refined
  samples; ln 10 = 2.303 is all ten classes evenly, 0 a single class (a collapsed sampler). ``_flow`` for the
  proposals.
* The refined FD at the training delta, the flow's test bits/dim and the training time (summed over runs).
"""
from __future__ import annotations

import math
import time

import torch

from studio.metrics import batched_features, fd_floor, frechet_distance

from .eval_common import fmnist_reference, training_cost

BPD_IMAGES = 1000  # test images for the flow's bits/dim
SEED_STRIDE = 100000  # evaluation seed s uses sample seeds s * SEED_STRIDE + i


def histogram_entropy(counts) -> float:
    """Entropy (nats) of a histogram of counts (empty bins add nothing)."""
    p = torch.as_tensor(counts, dtype=torch.float64)
    if p.dim() != 1 or (p < 0).any() or p.sum() <= 0:
        raise ValueError(f"A histogram needs non-negative counts with a positive total; got {counts!r}.")
    p = p[p > 0] / p.sum()
    return float(-(p * p.log()).sum())


def class_entropy(judge, x: torch.Tensor, num_classes: int = 10) -> float:
    """Entropy (nats) of the judge's predicted-class histogram over images x (ln num_classes: all classes evenly)."""
    return histogram_entropy(torch.bincount(judge.predict(x).cpu(), minlength=num_classes))


def eval_seeds(samples: int, seed: int) -> list[int]:
    return list(range(seed * SEED_STRIDE, seed * SEED_STRIDE + samples))


def chain_states(model, seeds: list[int], steps: list[int], batch: int = 100, **sample_kwargs) -> dict[int, torch.Tensor]:
    """{t: the samples after t Langevin steps} for every t in ``steps`` (0: the flow's proposals), from one chain of
    max(steps) steps per batch; ``sample_kwargs`` (step_size, noise, temperature) go to ``model.sample``."""
    wanted = sorted(set(int(t) for t in steps))
    top = wanted[-1]
    every = math.gcd(*[t for t in wanted if t > 0]) if top else 0
    out: dict[int, list[torch.Tensor]] = {t: [] for t in wanted}
    for i in range(0, len(seeds), batch):
        res = model.sample(",".join(map(str, seeds[i : i + batch])), steps=top, record_every=every, **sample_kwargs)
        frames = dict(zip(res.trace.frame_steps, res.trace.frames)) if every else {}
        frames[0], frames[top] = res.flow.cpu(), res.refined.cpu()
        for t in wanted:
            out[t].append(frames[t])
    return {t: torch.cat(xs) for t, xs in out.items()}


def _reference(samples: int, seed: int, reference):
    if reference is not None:
        return reference
    judge, _, _, real_feats = fmnist_reference(samples, seed)
    return judge, real_feats


def flow_vs_refined_fd(model, samples: int, seed: int, reference=None, **sample_kwargs) -> dict:
    """FD of the flow's proposals and of the same proposals after the Langevin flow (the sampler defaults unless
    ``sample_kwargs`` say otherwise), and the class entropy of the refined samples."""
    judge, real_feats = _reference(samples, seed, reference)
    steps = sample_kwargs.pop("steps", None)
    steps = model.sampler_defaults()["steps"] if steps is None else steps
    states = chain_states(model, eval_seeds(samples, seed), [0, steps], **sample_kwargs)
    fd = lambda x: round(frechet_distance(batched_features(judge.features, x), real_feats), 3)  # noqa: E731
    return {"coopflow_fd_flow": fd(states[0]), "coopflow_fd_refined": fd(states[steps]),
            "coopflow_class_entropy": round(class_entropy(judge, states[steps]), 3)}


def fd_table_steps(trained: int, default: int) -> list[int]:
    """0 (the flow), half the trained T, the trained T, twice it, and the default T."""
    return sorted({0, trained // 2, trained, 2 * trained, default})


def evaluate_coopflow(model, samples: int, seed: int) -> dict:
    from .datasets import labelled_split
    judge, test, perm, real_feats = fmnist_reference(samples, seed)
    defaults, trained = model.sampler_defaults(), model.trained_steps
    ts = fd_table_steps(trained, defaults["steps"])
    seeds = eval_seeds(samples, seed)
    states = chain_states(model, seeds, ts)
    fd = lambda x: round(frechet_distance(batched_features(judge.features, x), real_feats), 3)  # noqa: E731
    table = {t: fd(states[t]) for t in ts}
    metrics = {"coopflow_fd_flow": table[0], "coopflow_fd_refined": table[defaults["steps"]],
               "coopflow_class_entropy": round(class_entropy(judge, states[defaults["steps"]]), 3),
               "coopflow_class_entropy_flow": round(class_entropy(judge, states[0]), 3)}
    metrics.update({f"coopflow_fd_refined_T{t}": v for t, v in table.items()})
    del states
    train_delta = model.config.train_step_size
    metrics["coopflow_fd_refined_train_step"] = flow_vs_refined_fd(
        model, samples, seed, (judge, real_feats), step_size=train_delta)["coopflow_fd_refined"]
    metrics["fd_floor"] = round(fd_floor(judge.features, labelled_split("fashion-mnist", "train").images, test, samples, seed), 3)
    gen = torch.Generator().manual_seed(seed)
    held_out = test[perm[:BPD_IMAGES]]
    with torch.no_grad():
        bpd = torch.cat([model.nll_bits_per_dim(held_out[i : i + 250], gen) for i in range(0, len(held_out), 250)])
    metrics["coopflow_flow_test_bpd"] = round(float(bpd.mean()), 3)
    cost = training_cost(model)
    if cost:
        metrics["coopflow_train_hours"] = cost["train_hours"]
        metrics["coopflow_train_runs"] = cost["train_runs"]
    metrics["langevin_steps"] = trained  # T in training
    metrics["sample_steps"] = defaults["steps"]
    metrics["step_size"] = defaults["step_size"]
    metrics["noise"] = defaults["noise"]
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
    t = m.get("sample_steps", m["langevin_steps"])
    noise = m.get("noise", 0.0)
    lines = [f"- Flow-only vs refined at the same {m['samples']} seeds: FD {m['coopflow_fd_flow']} -> {m['coopflow_fd_refined']} "
             f"after T = {t} Langevin steps (delta {m['step_size']}" + (f", noise {noise:g} delta" if noise else ", no noise")
             + f"); the Langevin flow {'improved' if won else 'did not improve'} the flow's samples. At the training delta "
             f"{m['train_step_size']}: {m['coopflow_fd_refined_train_step']}. FD floor (real train vs real test): {m['fd_floor']}."]
    if "coopflow_class_entropy" in m:
        flow = f" (flow proposals: {m['coopflow_class_entropy_flow']})" if "coopflow_class_entropy_flow" in m else ""
        lines.append(f"- Predicted-class entropy of the refined samples (evaluator-fmnist): {m['coopflow_class_entropy']} nats{flow}; "
                     "ln 10 = 2.303 is all ten classes evenly.")
    rows = sorted((int(k[len("coopflow_fd_refined_T"):]), v) for k, v in m.items() if k.startswith("coopflow_fd_refined_T")
                  and k[len("coopflow_fd_refined_T"):].isdigit())
    if rows:
        trained = m["langevin_steps"]

        def label(s: int) -> str:
            marks = ["flow"] * (s == 0) + ["trained"] * (s == trained) + ["default"] * (s == t and s != 0)
            return f"T = {s}" + (f" ({', '.join(marks)})" if marks else "")

        lines.append(f"- FD along the chain (delta {m['step_size']}, same seeds; trained with T = {trained}):\n\n"
                     f"| {' | '.join(label(s) for s, _ in rows)} |\n|{'---|' * len(rows)}\n"
                     f"| {' | '.join(str(v) for _, v in rows)} |\n")
    lines.append(f"- The flow's test likelihood: {m['coopflow_flow_test_bpd']} bits/dim ({BPD_IMAGES} test images, one "
                 "uniform dequantisation draw each).")
    return "\n".join(lines)
