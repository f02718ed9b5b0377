"""studio.bench on tiny checkpoints: keys, the skip path and argument errors."""
import json

import pytest
import torch

from studio import bench
from studio.cdrl import CDRL, CDRLConfig
from studio.hub import ModelCard, save_checkpoint


@pytest.fixture
def tiny_cdrl(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = CDRL(CDRLConfig(ebm_width=4, init_width=4, temb_dim=16, langevin_steps=2))
    save_checkpoint(tmp_path / "cdrl-fmnist", "cdrl", model.config, model.state_dict(), ModelCard(summary="tiny"))
    monkeypatch.setenv("STUDIO_CHECKPOINTS", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


def test_cdrl_bench_reports_timings_and_trace_overhead(tiny_cdrl, capsys):
    bench.main(["--json", "--only", "cdrl,cfebm", "--repeats", "1"])
    out = json.loads(capsys.readouterr().out)
    for key in ("cdrl_seconds_16", "cdrl_seconds_16_k5", "cdrl_seconds_16_recorded", "trace_overhead"):
        assert isinstance(out[key], float) and out[key] == out[key]
    assert out["cdrl_seconds_16"] > 0 and out["trace_overhead"] > -1
    assert any(note.startswith("cfebm: skipped") for note in out["skipped"])  # no CF-EBM checkpoint here
    assert "CPU" in out["machine"] or "GPU" in out["machine"] or "cuda" in out["machine"].lower()


def test_table_marks_bars():
    text = bench.table({"trace_overhead": 0.05, "cdrl_seconds_16": 1.0})
    assert "(met)" in text and "MISSED" not in text
    assert "MISSED" in bench.table({"trace_overhead": 0.5})


def test_timed_takes_the_median():
    calls = []
    assert bench.timed(lambda: calls.append(1), repeats=3) >= 0 and len(calls) == 4  # one warm-up


@pytest.mark.parametrize("argv", [["--only", "nope"], ["--repeats", "0"]])
def test_bad_arguments_exit_with_a_message(argv):
    with pytest.raises(SystemExit):
        bench.main(argv)
