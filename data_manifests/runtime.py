"""The process environment of every entry point: offline model hubs, no telemetry, one project state folder.

This is the one place these variables are set. The CLIs call :func:`apply_offline_env` before importing any
model library; the Makefile runs external commands through ``python -m data_manifests.runtime -- CMD ...``; the
tests apply it in ``conftest.py``; the Prefect flow applies it when its module loads. Values already set in the
environment win, so a user can override any of them.

- **Offline**: ``HF_HUB_OFFLINE``, ``TRANSFORMERS_OFFLINE``, ``HF_DATASETS_OFFLINE``, ``YOLO_OFFLINE``,
  ``YOLO_AUTOINSTALL=false`` and the telemetry switches of Hugging Face, Prefect and the rest.
- **State** (Prefect's home, server database and profiles; ultralytics' settings) goes to one folder,
  :func:`data_manifests.project.state_dir`: ``$DIFFVERI_STATE``, else ``<project checkout>/.state``, else
  ``$XDG_STATE_HOME/diffveri``. Never the current directory of the call.
- **Caches are the user's**: ``HF_HOME``, ``TORCH_HOME``, ``MPLCONFIGDIR`` and ``XDG_CACHE_HOME`` are not touched,
  so the libraries use the caches the user already has (their own defaults, or the variables the user set).
  Nothing is downloaded into them: every model is loaded from a local path.

It also sets the image pixel limit of the process (``DIFFVERI_MAX_IMAGE_PIXELS``, see :mod:`data_manifests.images`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .project import state_dir as default_state_dir

# Variables with fixed values (offline model hubs, no telemetry).
FIXED: dict[str, str] = {
    # Hugging Face: never ask the hub; every model is a local path.
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    # Ultralytics: no downloads, no pip auto-install.
    "YOLO_OFFLINE": "true",
    "YOLO_AUTOINSTALL": "false",
    "YOLO_VERBOSE": "false",
    # Prefect: no telemetry; a local server listens on the loopback interface only.
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_API_HOST": "127.0.0.1",
    "TOKENIZERS_PARALLELISM": "false",
}
# Folders created by apply_offline_env (the state folders; caches belong to the user and are left alone).
STATE_FOLDERS = ("DIFFVERI_STATE", "PREFECT_HOME", "YOLO_CONFIG_DIR")


def offline_env(state_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """The variables and their values for this process: what the environment already says, else the defaults.

    ``state_dir`` replaces the default state folder (``$DIFFVERI_STATE`` or :func:`default_state_dir`).
    """
    env = os.environ
    state = Path(state_dir).expanduser().absolute() if state_dir else default_state_dir()
    prefect_home = env.get("PREFECT_HOME") or str(state / "prefect")
    return {
        "DIFFVERI_STATE": str(state),
        **{name: env.get(name, value) for name, value in FIXED.items()},
        # Ultralytics' settings.json (datasets_dir, runs_dir) must not come from the user's global file.
        "YOLO_CONFIG_DIR": env.get("YOLO_CONFIG_DIR") or str(state / "ultralytics"),
        # Prefect: server database, results storage and profiles under the project state. The profiles file
        # follows PREFECT_HOME (prefect.toml names it for plain `prefect` commands run from the project root).
        "PREFECT_HOME": prefect_home,
        "PREFECT_PROFILES_PATH": env.get("PREFECT_PROFILES_PATH") or str(Path(prefect_home) / "profiles.toml"),
    }


def apply_offline_env(state_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """Set every variable that is not already set; create the state folders. Returns the effective values."""
    values = offline_env(state_dir)
    for name, value in values.items():
        os.environ.setdefault(name, value)
    for name in STATE_FOLDERS:
        Path(os.environ[name]).mkdir(parents=True, exist_ok=True)
    from .images import apply_pixel_limit

    apply_pixel_limit()  # decompression bombs: PIL raises instead of warning, in every entry point
    return {name: os.environ[name] for name in values}


def main(argv: list[str] | None = None) -> int:
    """``python -m data_manifests.runtime [--print] [-- CMD ARGS...]``: print the environment or run CMD in it."""
    argv = list(sys.argv[1:] if argv is None else argv)
    env = apply_offline_env()
    if not argv or argv[0] == "--print":
        for name, value in env.items():
            print(f"export {name}={value}")
        return 0
    if argv[0] == "--":
        argv = argv[1:]
    if not argv:
        print("usage: python -m data_manifests.runtime [--print] [-- CMD ARGS...]", file=sys.stderr)
        return 2
    os.execvp(argv[0], argv)
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
