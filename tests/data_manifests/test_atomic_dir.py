"""atomic_dir: a folder appears whole or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_manifests import atomic_dir


def test_atomic_dir_replaces_the_old_folder_only_on_success(tmp_path: Path) -> None:
    out = tmp_path / "export"
    with atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("1")
    assert (out / "a.txt").read_text() == "1"
    with pytest.raises(RuntimeError), atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("2")
        raise RuntimeError("failed half way")
    assert (out / "a.txt").read_text() == "1"  # the old folder is untouched
    with atomic_dir(out) as tmp:
        (tmp / "b.txt").write_text("3")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]  # replaced, not merged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # no temporary folder left
