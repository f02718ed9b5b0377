"""The CDRL tab end to end through gradio_client, on tiny random checkpoints built by the test."""
import shutil
from pathlib import Path

import pytest
import torch

from studio.cdrl import CDRL, DRL, CDRLConfig, DRLConfig
from studio.hub import ModelCard, checkpoints_dir, save_checkpoint

from conftest import serve_app_client


def _tiny(cls, cfg_cls):
    torch.manual_seed(0)
    return cls(cfg_cls(ebm_width=4, init_width=4, temb_dim=16, langevin_steps=2))


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpts")
    for name in ("toy-ring", "toy-gaussian-mixture"):
        shutil.copytree(checkpoints_dir() / name, root / name)
    for name, model in (("cdrl-fmnist", _tiny(CDRL, CDRLConfig)), ("drl-fmnist", _tiny(DRL, DRLConfig))):
        save_checkpoint(root / name, model.kind, model.config, model.state_dict(), ModelCard(summary=f"tiny {name}"))
    yield from serve_app_client(root)


def test_cdrl_generate_with_drl_comparison(client):
    grid, drl_grid, gif, energy, summary = client.predict("Trouser", 1.0, 2, 5, 4, True, True, False, True,
                                                          api_name="/cdrl_generate")
    assert Path(grid).exists() and Path(drl_grid).exists() and Path(gif).suffix == ".gif"
    assert "Seeds used: 5-8" in summary
    assert "CDRL: 38 network evaluations" in summary and "DRL: 26 network evaluations" in summary


def test_cdrl_unconditional_initializer_only(client):
    grid, drl_grid, gif, energy, summary = client.predict("(unconditional)", 0.0, 3, 0, 2, False, False, True, False,
                                                          api_name="/cdrl_generate")
    assert Path(grid).exists() and drl_grid is None and "CDRL: 6 network evaluations" in summary


@pytest.mark.parametrize("args, message", [
    (("Trouser", 1.0, 2, -1, 4, True, True, False, False), r"First seed must be a whole number between 0 and 2\*\*63 - 1; got -1"),
    (("Trouser", 9.0, 2, 0, 4, True, True, False, False), "'Guidance w' must be between 0 and 5; got 9.0"),
    (("Zebra", 1.0, 2, 0, 4, True, True, False, False), "not in the list of choices"),
])
def test_cdrl_bad_input(client, args, message):
    with pytest.raises(Exception, match=message):
        client.predict(*args, api_name="/cdrl_generate")


def _png(tmp_path, arr, name):
    from PIL import Image
    path = tmp_path / name
    Image.fromarray(arr).save(path)
    return str(path)


def test_inpaint_api_with_image_and_mask(client, tmp_path):
    import numpy as np
    from gradio_client import handle_file

    img = np.zeros((64, 64), np.uint8)
    img[16:48, 16:48] = 200
    mask = np.zeros((64, 64), np.uint8)
    mask[24:40, 24:40] = 255
    gallery, notes = client.predict("CDRL (cdrl-fmnist)", handle_file(_png(tmp_path, img, "i.png")),
                                    handle_file(_png(tmp_path, mask, "m.png")), "Bag", 1.0, 3, 2, 0, api_name="/inpaint_image")
    assert len(gallery) == 4 and "Seeds used: 0-2" in notes and "64 of 1024 pixels were replaced" in notes
    assert "resized from 64x64 to 32x32" in notes


def test_inpaint_empty_mask_is_a_clear_error(client, tmp_path):
    import numpy as np
    from gradio_client import handle_file

    img = np.zeros((32, 32), np.uint8)
    with pytest.raises(Exception, match="mask is empty"):
        client.predict("CDRL (cdrl-fmnist)", handle_file(_png(tmp_path, img, "i.png")), handle_file(_png(tmp_path, img, "m.png")),
                       "Bag", 1.0, 2, 2, 0, api_name="/inpaint_image")


def test_trajectory_record_and_scrub(client):
    import zipfile

    out = client.predict("cdrl-fmnist", "generate", 3, api_name="/trajectory")
    gif, _, frame, chart, caption, zipped, note = out  # the gr.State output is not part of the API
    assert Path(gif).suffix == ".gif" and Path(frame).exists()
    assert caption.startswith("frame ") and "level 0" in caption and "seed 3" in note
    names = zipfile.ZipFile(zipped).namelist()
    assert names[0].startswith("0000-level_5_proposal") and len(names) == 6 * (1 + 1 + 2)  # proposal, start, K=2 steps
    out = client.predict("cdrl-fmnist", "inpaint", 0, api_name="/trajectory")
    assert "centre square" in out[-1]


def test_scrubbing_is_clamped_and_large_traces_are_subsampled(client):
    from studio.ui import trajectory_tab as tt

    trace, _ = tt.record("cdrl-fmnist", "generate", 1)
    frames, labels, steps, note = tt._frames(trace)
    state = {"frames": frames, "labels": labels, "steps": steps, "trace": trace}
    _, _, caption = tt.show_frame(state, 10_000)
    assert caption.startswith(f"frame {len(frames) - 1}:")
    _, _, caption = tt.show_frame(state, -5)
    assert caption.startswith("frame 0:")
    big = type(trace)(frames=trace.frames * 20, frame_labels=trace.frame_labels * 20, frame_steps=trace.frame_steps * 20)
    frames, _, _, note = tt._frames(big)
    assert len(frames) == tt.MAX_FRAMES and "subsampled" in note


def test_cdrl_generate_streams_a_preview_first(client):
    import time

    job = client.submit("Trouser", 1.0, 2, 0, 2, True, True, False, False, api_name="/cdrl_generate")
    while not job.done():
        time.sleep(0.05)
    outputs = job.outputs()
    assert len(outputs) == 7  # the top level's proposal, levels 5..1, then the result
    grid, drl_grid, gif, energy, summary = outputs[0]
    assert Path(grid).exists() and gif is None and "level 5 proposal" in summary
    assert outputs[-1][2] is not None and "network evaluations" in outputs[-1][4]
