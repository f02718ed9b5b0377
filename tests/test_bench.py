"""tools.bench and tools.loadtest on tiny checkpoints: keys, bars, the skip path and argument errors."""
import json

import pytest
import torch

from studio.cdrl import CDRL, CDRLConfig
from studio.hub import ModelCard, save_checkpoint
from tools import bench, loadtest


@pytest.fixture
def tiny_cdrl(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = CDRL(CDRLConfig(ebm_width=4, init_width=4, temb_dim=16, langevin_steps=2))
    save_checkpoint(tmp_path / "cdrl-fmnist", "cdrl", model.config, model.state_dict(), ModelCard(summary="tiny"))
    monkeypatch.setenv("STUDIO_CHECKPOINTS", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # keep the test's own thread count
    return tmp_path


def test_sampler_benches_report_every_key(tiny_cdrl, capsys):
    bench.main(["--json", "--only", "engine,cdrl,cfebm,letit,nerf", "--repeats", "1"])
    out = json.loads(capsys.readouterr().out)
    for key in ("engine_overhead", "bare_pass_ms", "cdrl_seconds_16", "cdrl_seconds_16_k5", "cdrl_seconds_16_recorded",
                "trace_overhead", "naive_seconds_16", "speedup_vs_naive"):
        assert isinstance(out[key], float) and out[key] == out[key] and out[key] > -1, key
    assert out["cdrl_seconds_16"] > 0 and out["engine_overhead"] > 0 and out["speedup_vs_naive"] > 0
    for name in ("cfebm", "letit", "nerf"):  # no such checkpoints (or module) here
        assert any(note.startswith(f"{name}: skipped") for note in out["skipped"]), name
    assert "CPU" in out["machine"] or "GPU" in out["machine"] or "cuda" in out["machine"].lower()
    assert out["device"] == "cpu"  # studio.device's policy on a machine without a GPU
    assert out["bench_seconds"] > 0


def test_app_bench_cold_start_and_first_streamed_frame(tiny_cdrl):
    out = bench.bench_app(repeats=1)
    assert 0 < out["app_cold_start_seconds"] < 120
    assert 0 < out["first_frame_seconds"] <= out["cdrl_request_seconds"]
    assert out["first_frame_seconds_first_request"] > 0


def test_table_marks_bars():
    text = bench.table({"trace_overhead": 0.05, "cdrl_seconds_16": 1.0, "engine_overhead": 1.02, "speedup_vs_naive": 2.5})
    assert text.count("(met)") == 3 and "MISSED" not in text
    assert "MISSED" in bench.table({"trace_overhead": 0.5})
    assert "MISSED" in bench.table({"speedup_vs_naive": 1.5}) and "MISSED" in bench.table({"first_frame_seconds": 2.0})


def test_timed_takes_the_median():
    calls = []
    assert bench.timed(lambda: calls.append(1), repeats=3) >= 0 and len(calls) == 4  # one warm-up
    assert bench.timed(lambda: calls.append(1), repeats=2, warmup=False) >= 0 and len(calls) == 6


def test_percentile():
    assert loadtest.percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert loadtest.percentile([1.0, 2.0], 95) == pytest.approx(1.95)
    assert loadtest.percentile([], 50) != loadtest.percentile([], 50)  # nan


@pytest.mark.parametrize("argv", [["--only", "nope"], ["--repeats", "0"]])
def test_bad_arguments_exit_with_a_message(argv):
    with pytest.raises(SystemExit):
        bench.main(argv)


def test_paired_rounds_and_ratios():
    calls = []
    times = bench.paired({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3, only_first={"b": 1})
    assert calls == ["a", "b", "a", "a"] and len(times["a"]) == 3 and len(times["b"]) == 1
    assert bench.ratio({"x": [2.0, 9.0, 4.0], "y": [1.0, 3.0, 1.0]}, "x", "y") == 3.0  # median of 2, 3, 4
