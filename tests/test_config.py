"""medseg.config: strict YAML -> frozen dataclasses, type checks, hashing, atomic save."""

from __future__ import annotations

import dataclasses
from typing import Literal

import pytest

from medseg.config import config_hash, from_dict, load_yaml, save_yaml, to_dict
from medseg.errors import ConfigError, InputNotFoundError


@dataclasses.dataclass(frozen=True)
class Inner:
    sigma: tuple[float, float] = (0.5, 1.0)


@dataclasses.dataclass(frozen=True)
class Outer:
    name: str
    epochs: int = 10
    rate: float = 0.01
    mode: Literal["a", "b"] = "a"
    sizes: tuple[int, ...] | None = None
    labels: dict[int, str] = dataclasses.field(default_factory=dict)
    inner: Inner = dataclasses.field(default_factory=Inner)


def test_nested_round_trip(tmp_path):
    value = Outer("x", epochs=3, rate=1, sizes=(1, 2), labels={1: "liver"}, inner=Inner((1.0, 2.0)))
    path = save_yaml(value, tmp_path / "c.yaml")
    loaded = load_yaml(path, Outer)
    assert loaded == dataclasses.replace(value, rate=1.0)
    assert isinstance(loaded.rate, float) and loaded.sizes == (1, 2)
    assert to_dict(loaded)["inner"] == {"sigma": [1.0, 2.0]}


def test_unknown_key_suggests_the_nearest():
    with pytest.raises(ConfigError, match=r"unknown key 'epoch' \(did you mean 'epochs'\?\)"):
        from_dict(Outer, {"name": "x", "epoch": 3})
    with pytest.raises(ConfigError, match=r"config.inner: unknown key 'sigm'"):
        from_dict(Outer, {"name": "x", "inner": {"sigm": [1, 2]}})


@pytest.mark.parametrize("data, message", [
    ({"name": "x", "epochs": "3"}, "expected int, got str"),
    ({"name": "x", "epochs": True}, "got boolean"),
    ({"name": "x", "mode": "c"}, r"'c' is not one of \['a', 'b'\]"),
    ({"name": "x", "sizes": 3}, "expected a list"),
    ({"name": "x", "inner": {"sigma": [1.0]}}, "expected 2 values, got 1"),
    ({"epochs": 3}, "missing required key"),
    ([1, 2], "expected a mapping"),
])
def test_type_errors_name_the_key(data, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(Outer, data)


def test_yaml_errors(tmp_path):
    with pytest.raises(InputNotFoundError):
        load_yaml(tmp_path / "none.yaml", Outer)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(bad, Outer)


def test_config_hash_is_stable_and_sensitive():
    a, b = Outer("x"), Outer("x", epochs=11)
    assert config_hash(a) == config_hash(Outer("x")) and len(config_hash(a)) == 16
    assert config_hash(a) != config_hash(b)
    assert config_hash({"b": 1, "a": 2}) == config_hash({"a": 2, "b": 1})


def test_to_dict_turns_str_subclasses_and_paths_into_plain_strings(tmp_path):
    import pathlib

    import torch
    import yaml

    from medseg.config import save_yaml

    path = save_yaml({"torch": torch.__version__, "out": pathlib.Path("/a/b")}, tmp_path / "p.yaml")
    assert yaml.safe_load(path.read_text()) == {"torch": str(torch.__version__), "out": "/a/b"}
