"""Pair one CoopFlow checkpoint's flow with another's EBM, as the start of a further cooperative run.

    python -m train.coopflow_pair --flow coopflow-fmnist --ebm runs/coop5-export --out runs/coop-paired
    accelerate launch train/coopflow.py --init-from runs/coop-paired --set train.pretrain_steps=0 ...

Why: a cooperative run at a flow learning rate that is too high lets the flow drift away from the data while the
EBM is still learning (issue 20, run 6: validation FD 7.5 -> 9.4), yet the EBM it trained is useful. Putting the
pretrained flow back in front of that EBM and continuing at a small flow learning rate keeps both gains. The
written checkpoint keeps the EBM checkpoint's training records (the flow's pretraining is among them when the EBM
run itself started from the flow checkpoint) and says in its newest record which flow replaced the trained one,
so the card's history stays true. Both checkpoints must have the same architecture.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import studio
from studio.errors import CheckpointError
from studio.hub import ModelCard, config_to_dict, save_checkpoint

# The EBM checkpoint's records that stay true for the pair. Not its sampler_defaults / sampler_scan: they were
# measured with its own flow, so a pair must have its sampler chosen again.
KEPT_FROM_EBM = ("training", "earlier_training", "data", "init_from", "phases", "final_stats", "validation_bpd")
# Sampling settings only: the architecture must be the same in both checkpoints.
SAMPLER_FIELDS = {"step_size", "noise", "update_clip"}


def pair(flow_ref: str, ebm_ref: str, out: str | Path) -> Path:
    """Write a checkpoint with ``flow_ref``'s flow and ``ebm_ref``'s EBM (and the EBM checkpoint's config)."""
    flow_model, ebm_model = studio.load(flow_ref, kind="coopflow"), studio.load(ebm_ref, kind="coopflow")
    a, b = config_to_dict(flow_model.config), config_to_dict(ebm_model.config)
    differ = sorted(k for k in a if a[k] != b.get(k) and k not in SAMPLER_FIELDS)
    if differ:
        raise CheckpointError(f"{flow_ref} and {ebm_ref} differ in {', '.join(differ)}: only checkpoints of the same "
                              f"architecture can be paired.")
    flow_state = {k: v for k, v in flow_model.state_dict().items() if k.startswith("flow.")}
    ebm_model.load_state_dict({**ebm_model.state_dict(), **flow_state}, strict=True)
    extra = {k: ebm_model.checkpoint.extra[k] for k in KEPT_FROM_EBM if k in ebm_model.checkpoint.extra}
    if "training" in extra:
        extra["training"] = {**extra["training"], "note": f"its EBM is kept; its flow was replaced by the flow of "
                                                          f"{flow_ref} before training continued"}
    card = ModelCard(summary=f"The flow of {flow_ref} paired with the EBM of {ebm_ref} (train/coopflow_pair.py): "
                             f"a start point for --init-from.")
    return save_checkpoint(out, "coopflow", ebm_model.config, ebm_model.state_dict(), card, extra=extra)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flow", required=True, help="CoopFlow checkpoint (name or folder) whose flow is used")
    parser.add_argument("--ebm", required=True, help="CoopFlow checkpoint (name or folder) whose EBM is used")
    parser.add_argument("--out", required=True, help="folder to write the paired checkpoint to")
    args = parser.parse_args(argv)
    print(f"Wrote {pair(args.flow, args.ebm, args.out)}")


if __name__ == "__main__":
    main()
