"""TrainConfig: presets in configs/ parse strictly; names, paths and bad values."""

from __future__ import annotations

import pytest

from medseg.config import from_dict
from medseg.errors import ConfigError
from medseg.training.config import TrainConfig, available_configs, resolve_config


def test_presets_parse():
    assert {"3d", "2d", "tiny3d", "tiny2d"} <= set(available_configs())
    for name in ("3d", "2d", "tiny3d", "tiny2d"):
        config, source = resolve_config(name)
        assert source.endswith(f"{name}.yaml")
        assert config.configuration == name[-2:]
    assert resolve_config("3d")[0] == TrainConfig()  # the preset spells out the defaults


def test_yaml_path_and_strict_keys(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("epochs: 3\ncpu_bf16: false\naugmentation: {mirror: false}\n")
    config, _ = resolve_config(path)
    assert (config.epochs, config.cpu_bf16, config.augmentation.mirror) == (3, False, False)
    path.write_text("epochz: 3\n")
    with pytest.raises(ConfigError, match="did you mean 'epochs'"):
        resolve_config(path)
    with pytest.raises(ConfigError, match="unknown training config 'huge'.*tiny3d"):
        resolve_config("huge")


def test_invalid_values():
    with pytest.raises(ConfigError, match="patch_size"):
        TrainConfig(configuration="2d", patch_size=(32, 32, 32))
    with pytest.raises(ConfigError, match="epochs must be positive"):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match="cpu_bf16"):
        from_dict(TrainConfig, {"cpu_bf16": "yes"}, where="cpu_bf16")
