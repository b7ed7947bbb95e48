"""Configs by short name (``--config toy``) and project-relative paths, from any current directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from data_manifests.project import project_root, resolve_config
from pipeline.config import load_config as load_pipeline_config
from vehiclemae.config import load_config as load_vehiclemae_config
from vehiclemae.engine.config import PretrainConfig

PROJECT = Path(__file__).resolve().parents[1]


def test_the_project_root_is_this_checkout() -> None:
    assert project_root() == PROJECT


@pytest.mark.parametrize("name", ["toy", "toy.yaml", "configs/pipeline/toy.yaml"])
def test_pipeline_profile_from_another_directory(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_config(name, "pipeline") == PROJECT / "configs" / "pipeline" / "toy.yaml"
    assert load_pipeline_config(name, ["seed=7"])["seed"] == 7


@pytest.mark.parametrize("name", ["toy", "configs/vehiclemae/toy.yaml"])
def test_vehiclemae_profile_from_another_directory(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = load_vehiclemae_config(PretrainConfig, name)
    assert cfg.output_dir == "runs/vehiclemae-toy"


def test_a_file_in_the_current_directory_wins_over_the_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "toy").write_text("seed: 123\n")  # a local file named like a profile is what the user means
    assert load_pipeline_config("toy")["seed"] == 123


def test_unknown_profile_names_the_places_looked_at_and_the_profiles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"'tyo' not found .*configs/pipeline/tyo.yaml.*paper, toy"):
        load_pipeline_config("tyo")
    with pytest.raises(FileNotFoundError, match=r"configs/vehiclemae/: .*finetune_toy.*toy"):
        load_vehiclemae_config(PretrainConfig, "tyo")
    with pytest.raises(ValueError, match="kind"):
        resolve_config("toy", "models")


@pytest.mark.parametrize("name, found", [("toy", True), ("tyo", False)])
def test_cli_short_name_from_another_directory(name: str, found: bool, tmp_path: Path) -> None:
    """``diffveri run assemble --config toy`` from another folder reads the profile, then stops at the empty root."""
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", "assemble", "--config", name, "--root", str(tmp_path / "none")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    expected = "manifest table 'generations' not found" if found else "config 'tyo' not found"
    assert expected in result.stderr, result.stderr
    assert not (tmp_path / ".state").exists()
