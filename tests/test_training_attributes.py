"""Attribute-mode CDRL training (thesis §5.4.6): a short run on fixture data, the warm start, config checks."""
import pytest
import torch

import studio
from studio.cdrl import CDRL, CDRLConfig
from studio.data import fmnist_attributes as fa
from studio.data.fashion_mnist import CLASS_NAMES
from studio.hub import ModelCard, save_checkpoint
from train.cdrl_attributes import AttributeMode, AttributeSettings
from train.common import ConfigError

from test_training import TINY_CDRL, _launch, fmnist_dir  # noqa: F401  (fmnist_dir is a fixture)

NAMES = list(fa.DEFAULT_ATTRIBUTES)


def _data(n: int = 200):
    """Images whose attributes vary: a bright or dim square, flat or striped; labels cycle through the classes."""
    g = torch.Generator().manual_seed(0)
    x = torch.full((n, 1, 32, 32), -1.0)
    level = torch.rand(n, generator=g) * 1.2 - 0.2
    x[:, :, 8:24, 8:24] = level.view(-1, 1, 1, 1)
    striped = torch.rand(n, generator=g) < 0.5
    x[striped, :, 8:24:2, 8:24] = -0.4
    return x, torch.arange(n) % 10


def test_attribute_mode_trains_a_few_steps_and_exports_a_composable_model(tmp_path, fmnist_dir):  # noqa: F811
    out = tmp_path / "ckpt"
    res = _launch("train/cdrl.py", ["--config", "train/configs/cdrl_fmnist_attributes.yaml", *TINY_CDRL,
                                    "--set", "attributes.warm_start=''", "--set", "train.steps=2",
                                    "--run-dir", str(tmp_path / "run"), "--export-dir", str(out)],
                  {"FASHION_MNIST_DIR": str(fmnist_dir)})
    assert res.returncode == 0, res.stderr[-3000:]
    model = studio.load(out)
    cfg = model.config
    assert cfg.attributes == NAMES and cfg.num_classes == 6 and cfg.class_names[:2] == ["top=True", "top=False"]
    assert not cfg.conditional_initializer and set(cfg.attribute_thresholds) == {"bright", "high-contrast"}
    stats = model.checkpoint.extra["attributes"]
    # 180 training images: the split holds out a tenth of the 200 for validation
    assert stats["images"] == 180 and stats["min_pair_coverage"] >= fa.MIN_PAIR_COVERAGE
    assert "top x high-contrast" in (out / "README.md").read_text()
    x, trace = model.compose({"top": True, "bright": False}, guidance=3.0, seeds="0-1", steps=1)
    assert x.shape == (2, 1, 32, 32) and trace.num_steps == 6


def test_attribute_labels_follow_the_table():
    x, y = _data()
    mode = AttributeMode(AttributeSettings(names=NAMES), x, y)
    assert mode.model_fields({"ebm_width": 4})["class_names"] == fa.class_names(NAMES)
    labels = torch.stack([mode.labels(mode.table, torch.Generator().manual_seed(s)) for s in range(20)])
    attr = labels // 2
    value = labels % 2 == 0
    assert torch.equal(value, mode.table.gather(1, attr.T).T)  # each label is one of the image's own attribute values
    assert set(attr.flatten().tolist()) == {0, 1, 2}  # every attribute gets picked


def test_attribute_mode_config_errors():
    x, y = _data()
    with pytest.raises(ConfigError, match="follow from attributes.names"):
        AttributeMode(AttributeSettings(names=NAMES), x, y).model_fields({"num_classes": 10})
    with pytest.raises(ConfigError, match="Attributes must be distinct names"):
        AttributeMode(AttributeSettings(names=["top", "colour"]), x, y)
    with pytest.raises(ConfigError, match="cover only"):  # footwear and top never meet
        AttributeMode(AttributeSettings(names=["top", "footwear"]), x, y)


def test_warm_start_copies_a_class_model_and_rebuilds_the_label_rows(tmp_path):
    torch.manual_seed(0)
    small = dict(ebm_width=4, init_width=4, temb_dim=16, langevin_steps=2)
    source = CDRL(CDRLConfig(**small))
    save_checkpoint(tmp_path / "cls", "cdrl", source.config, source.state_dict(), ModelCard(summary="tiny"))
    x, y = _data()
    mode = AttributeMode(AttributeSettings(names=NAMES, warm_start=str(tmp_path / "cls")), x, y)
    target = CDRL(CDRLConfig(**small, **mode.model_fields(small)))
    mode.warm_start(target)
    src, dst = source.state_dict(), target.state_dict()
    for key in dst:
        if key.endswith("label.weight"):
            rows = src[key]
            top = torch.tensor([n in fa.ATTRIBUTES["top"].classes for n in CLASS_NAMES])
            torch.testing.assert_close(dst[key][0], rows[0])
            torch.testing.assert_close(dst[key][1], rows[1:][top].mean(0))
            torch.testing.assert_close(dst[key][2], rows[1:][~top].mean(0))
            torch.testing.assert_close(dst[key][3:], rows[0].expand(4, -1))  # pixel attributes start at null
        else:
            assert torch.equal(dst[key], src[key]), key
