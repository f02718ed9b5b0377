"""CoopFlow's bar on the shipped checkpoint: Langevin-refined samples beat flow-only samples in FD."""
import pytest

import studio


@pytest.mark.slow
def test_shipped_checkpoint_refined_beats_flow_only():
    """The issue's bar at a small count: FD (evaluator-fmnist features) of refined < flow-only, same seeds."""
    from train.eval_coopflow import flow_vs_refined_fd

    fd = flow_vs_refined_fd(studio.load("coopflow-fmnist"), samples=300, seed=0)
    assert fd["coopflow_fd_refined"] < fd["coopflow_fd_flow"], fd
