"""Atomic writes: the target appears whole or not at all."""

from __future__ import annotations

import pytest

from medseg.atomic import atomic_path, atomic_write_text


def test_success_renames_into_place(tmp_path):
    target = tmp_path / "sub" / "out.nii.gz"
    with atomic_path(target) as tmp:
        assert tmp.name.endswith(".nii.gz"), "writers pick the format from the suffix"
        assert tmp.parent == target.parent
        tmp.write_bytes(b"abc")
        assert not target.exists()
    assert target.read_bytes() == b"abc"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.nii.gz"]


def test_failure_leaves_neither_partial_nor_target(tmp_path):
    target = tmp_path / "table.csv"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert list(tmp_path.iterdir()) == []


def test_failure_keeps_previous_version(tmp_path):
    target = atomic_write_text(tmp_path / "a.txt", "old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_text("new")
            raise KeyboardInterrupt
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
