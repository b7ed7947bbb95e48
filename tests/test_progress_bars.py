"""Commands that can take minutes on a whole dataset draw a progress bar with ETA (tqdm, on stderr)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.assemble import assemble
from pipeline.cli import main as diffveri_main
from tests.assemble.roots import build_root
from tests.generate.helpers import photo_folder

# tqdm's finished bar: "<desc>: 100%|██████████| n/n [elapsed<remaining, rate]".
FINISHED = r"{desc}: 100%\|[^|]*\| {n}/{n} \[\d\d:\d\d<\d\d:\d\d"


def _finished(err: str, desc: str, n: int) -> bool:
    return re.search(FINISHED.format(desc=re.escape(desc), n=n), err) is not None


def test_manifests_validate_shows_file_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    build_root(tmp_path, n_ids=2, per_id=3)
    capsys.readouterr()
    assert diffveri_main(["manifests", "validate", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert _finished(err, "validate generations.path", 6), err


def test_validate_draws_nothing_unless_asked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import data_manifests as dm

    build_root(tmp_path, n_ids=2, per_id=3)
    capsys.readouterr()
    assert dm.validate(tmp_path) == []
    assert "validate" not in capsys.readouterr().err


def test_subjects_import_shows_check_hash_and_copy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = photo_folder(tmp_path, ids=("car1", "car2"), n=3)
    argv = ["subjects", "import", "--root", str(tmp_path / "root"), "--from", "folder", str(src)]
    assert diffveri_main(argv) == 0
    err = capsys.readouterr().err
    assert _finished(err, "subjects check", 2) and _finished(err, "subjects hash", 2), err
    assert _finished(err, "subjects copy", 6), err


def test_assemble_shows_crops_and_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    build_root(tmp_path)
    capsys.readouterr()
    stats = assemble(tmp_path)
    err = capsys.readouterr().err
    assert _finished(err, "assemble crops", stats["images"]), err
    assert _finished(err, "assemble VeRi export", stats["images"]), err
