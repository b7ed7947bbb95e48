"""The process environment: offline switches, one state folder (never the current directory), the user's caches."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import data_manifests.project as project
from data_manifests.runtime import FIXED, offline_env

PROJECT = Path(__file__).resolve().parents[2]
CACHE_VARS = ("HF_HOME", "TORCH_HOME", "MPLCONFIGDIR", "XDG_CACHE_HOME")
OWN_VARS = ("DIFFVERI_STATE", "PREFECT_HOME", "PREFECT_PROFILES_PATH", "YOLO_CONFIG_DIR", *FIXED)


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (*OWN_VARS, *CACHE_VARS)}
    return {**env, **extra}


def _printed(cwd: Path, env: dict[str, str]) -> dict[str, str]:
    """``python -m data_manifests.runtime --print`` run from ``cwd``: the exported variables."""
    out = subprocess.run(
        [sys.executable, "-m", "data_manifests.runtime", "--print"],
        cwd=cwd,
        env={**env, "PYTHONPATH": str(PROJECT)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.removeprefix("export ").split("=", 1) for line in out.splitlines())


def test_state_goes_to_the_project_not_the_current_directory(tmp_path: Path) -> None:
    printed = _printed(tmp_path, _clean_env())
    assert printed["DIFFVERI_STATE"] == str(PROJECT / ".state")
    assert printed["PREFECT_HOME"] == str(PROJECT / ".state" / "prefect")
    assert printed["PREFECT_PROFILES_PATH"] == str(PROJECT / ".state" / "prefect" / "profiles.toml")
    assert printed["YOLO_CONFIG_DIR"] == str(PROJECT / ".state" / "ultralytics")
    assert not (tmp_path / ".state").exists()  # nothing is created where the command was called from


def test_the_users_caches_are_kept_and_never_invented(tmp_path: Path) -> None:
    env = _clean_env(HF_HOME=str(tmp_path / "hf"), TORCH_HOME=str(tmp_path / "torch"))
    printed = _printed(tmp_path, env)
    assert "HF_HOME" not in printed and "TORCH_HOME" not in printed and "MPLCONFIGDIR" not in printed
    check = "import os; from data_manifests.runtime import apply_offline_env as a; a(); " + (
        "print(os.environ['HF_HOME'], os.environ['TORCH_HOME'], os.environ.get('MPLCONFIGDIR'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", check],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(PROJECT)},
        text=True,
        capture_output=True,
        check=True,
    ).stdout.split()
    assert out == [str(tmp_path / "hf"), str(tmp_path / "torch"), "None"]


def test_explicit_values_win(tmp_path: Path) -> None:
    env = _clean_env(DIFFVERI_STATE=str(tmp_path / "st"), HF_HUB_OFFLINE="0", PREFECT_HOME=str(tmp_path / "ph"))
    printed = _printed(tmp_path, env)
    assert printed["DIFFVERI_STATE"] == str(tmp_path / "st")
    assert printed["HF_HUB_OFFLINE"] == "0"
    assert printed["PREFECT_HOME"] == str(tmp_path / "ph")
    # The profiles file follows PREFECT_HOME, as Prefect itself does when PREFECT_HOME is set.
    assert printed["PREFECT_PROFILES_PATH"] == str(tmp_path / "ph" / "profiles.toml")
    assert printed["YOLO_CONFIG_DIR"] == str(tmp_path / "st" / "ultralytics")


def test_installed_without_a_checkout_state_goes_to_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(project, "project_root", lambda: None)
    for name in ("DIFFVERI_STATE", "PREFECT_HOME", "PREFECT_PROFILES_PATH", "YOLO_CONFIG_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    env = offline_env()
    assert env["DIFFVERI_STATE"] == str(tmp_path / "xdg" / "diffveri")
    assert env["PREFECT_HOME"] == str(tmp_path / "xdg" / "diffveri" / "prefect")


def test_offline_switches_are_set() -> None:
    env = offline_env()
    assert env["HF_HUB_OFFLINE"] == env["TRANSFORMERS_OFFLINE"] == "1" and env["YOLO_OFFLINE"] == "true"
    assert env["DO_NOT_TRACK"] == "1" and env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
