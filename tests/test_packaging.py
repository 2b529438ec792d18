"""Packaging: every subpackage and the preset configs ship in the wheel."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "medseg").rglob("__init__.py")}
    assert found <= listed, f"add {sorted(found - listed)} to [tool.setuptools] packages"


def test_presets_ship_as_medseg_configs():
    setuptools_cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools_cfg["package-dir"]["medseg.configs"] == "configs"
    assert setuptools_cfg["package-data"]["medseg.configs"] == ["*.yaml"]
    assert sorted(p.stem for p in (ROOT / "configs").glob("*.yaml")), "no preset configs"
