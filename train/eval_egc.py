"""EGC metrics (``python -m train.evaluate egc-fmnist``): one network judged as a classifier and as a generator.

* ``egc_test_accuracy``: argmax of the logits at t = 0 on the whole Fashion-MNIST test split (10,000).
* ``egc_fd`` and ``egc_class_accuracy_guided``: ``samples`` (2,000) class-guided DDIM samples, class i % 10 for
  seed i (200 per class), at the checkpoint's default guidance scale and default DDIM steps (``sample_steps``: what the tab uses). The FD is in
  evaluator-fmnist's feature space against the first ``samples`` of a fixed permutation of the test split
  (``fd_floor`` beside it: real train vs real test at the same count); the class accuracy is evaluator-fmnist's
  accuracy on the same samples. One set of samples serves both numbers (sampling is the expensive part).
* ``fgsm_accuracy_egc`` and ``fgsm_accuracy_evaluator``: FGSM at eps = 0.1 (in [-1, 1] units) on the same
  ``FGSM_IMAGES`` (1,000) test images, each model attacked white-box through its own gradient; the clean
  accuracies on those images are given beside them.
* ``egc_denoise_gain_t100``: the denoising loss (mean squared eps error per pixel) of the analytic base term
  alone minus the full model's, at t = 100 on ``DENOISE_IMAGES`` (1,000) test images with seeded noise: what
  the learned network adds to the score. ``egc_denoise_base_t{t}`` / ``egc_denoise_full_t{t}`` at t = 10, 100,
  250 beside it.
* ``egc_train_hours``: the training wall time summed over every run the checkpoint came from.
"""
from __future__ import annotations

import time

import torch

from studio.egc import fgsm
from studio.metrics import batched_features, class_accuracy, fd_floor, frechet_distance

from .eval_common import fmnist_reference

FGSM_EPS = 0.1
FGSM_IMAGES = 1000
DENOISE_IMAGES = 1000


def guided_samples(model, seeds: list[int], classes: list[int], guidance: float, steps: int, batch: int = 100) -> torch.Tensor:
    out = []
    for i in range(0, len(seeds), batch):
        x, _ = model.generate(classes[i : i + batch], seeds=",".join(map(str, seeds[i : i + batch])), guidance=guidance, steps=steps)
        out.append(x.cpu())
    return torch.cat(out)


def fgsm_metrics(model, judge, images: torch.Tensor, labels: torch.Tensor, eps: float = FGSM_EPS) -> dict:
    """Clean and FGSM accuracy of EGC (t = 0) and of the evaluator on the same images."""
    _, acc_egc = model.fgsm_accuracy(images, labels, eps)
    judge.eval()
    adv = torch.cat([fgsm(judge, images[i : i + 250], labels[i : i + 250], eps) for i in range(0, len(images), 250)])
    return {
        "fgsm_accuracy_egc": round(acc_egc, 4),
        "fgsm_accuracy_evaluator": round(class_accuracy(judge.predict(adv), labels), 4),
        "clean_accuracy_egc_fgsm_images": round(class_accuracy(model.predict(images), labels), 4),
        "clean_accuracy_evaluator_fgsm_images": round(class_accuracy(judge.predict(images), labels), 4),
        "fgsm_epsilon": eps,
        "fgsm_images": len(images),
    }


def evaluate_egc(model, samples: int, seed: int) -> dict:
    from .datasets import labelled_split

    started = time.time()
    judge, test, perm, real_feats = fmnist_reference(samples, seed)
    test_split = labelled_split("fashion-mnist", "test")
    metrics: dict = {"egc_test_accuracy": round(class_accuracy(model.predict(test_split.images), test_split.labels), 4),
                     "egc_test_images": len(test_split.labels), "egc_parameters": model.num_parameters()}
    seeds = list(range(seed * 100000, seed * 100000 + samples))
    classes = [i % model.config.num_classes for i in range(samples)]
    guidance, steps = float(model.config.guidance), int(model.config.sample_steps)  # the tab's defaults
    x = guided_samples(model, seeds, classes, guidance, steps)
    metrics["egc_fd"] = round(frechet_distance(batched_features(judge.features, x), real_feats), 3)
    metrics["egc_class_accuracy_guided"] = round(class_accuracy(judge.predict(x), torch.tensor(classes)), 4)
    metrics.update({"egc_samples": samples, "egc_ddim_steps": steps, "egc_guidance": guidance})
    metrics["fd_floor"] = round(fd_floor(judge.features, labelled_split("fashion-mnist", "train").images, test, samples, seed), 3)
    clean = test_split.images[perm[:DENOISE_IMAGES]]
    for t in (10, 100, 250):
        base, full = model.denoising_loss(clean, t, seed=seed, base_only=True), model.denoising_loss(clean, t, seed=seed)
        metrics[f"egc_denoise_base_t{t}"], metrics[f"egc_denoise_full_t{t}"] = round(base, 4), round(full, 4)
    metrics["egc_denoise_gain_t100"] = round(metrics["egc_denoise_base_t100"] - metrics["egc_denoise_full_t100"], 4)
    idx = perm[:FGSM_IMAGES]
    metrics.update(fgsm_metrics(model, judge, test_split.images[idx], test_split.labels[idx]))
    runs = [*model.checkpoint.extra.get("earlier_training", []), model.checkpoint.extra.get("training", {})]
    walls = [r["wall_time_minutes"] for r in runs if r.get("wall_time_minutes") is not None]
    if walls:  # a model continued with --init-from costs all of its runs
        metrics["egc_train_hours"] = round(sum(walls) / 60, 2)
        metrics["egc_train_runs"] = len(walls)
    metrics["eval_minutes"] = round((time.time() - started) / 60, 1)
    return metrics


def card_extra(metrics: dict) -> str:
    if "egc_fd" not in metrics:
        return ""
    return (f"FD and guided class accuracy: {metrics['egc_samples']} class-guided DDIM samples ({metrics['egc_ddim_steps']} steps, "
            f"guidance {metrics['egc_guidance']}), {metrics['egc_samples'] // 10} per class, against held-out test images in evaluator-fmnist's feature "
            f"space (floor {metrics['fd_floor']}). FGSM: eps {metrics['fgsm_epsilon']} in [-1, 1] units on {metrics['fgsm_images']} "
            "test images, each model attacked through its own gradient.")
