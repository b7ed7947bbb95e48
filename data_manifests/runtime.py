"""The process environment of every entry point: offline model hubs, no telemetry, project-local state.

This is the one place these variables are set. The CLIs call :func:`apply_offline_env` before importing any
model library; the Makefile runs external commands through ``python -m data_manifests.runtime -- CMD ...``; the
tests apply it in ``conftest.py``. Values already set in the environment win, so a user can override any of them.
State lives under ``$DIFFVERI_STATE`` (default ``.state/`` in the current directory). It also sets the image pixel
limit of the process (``DIFFVERI_MAX_IMAGE_PIXELS``, see :mod:`data_manifests.images`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def offline_env(state_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """The variables and their default values (paths absolute)."""
    state = Path(state_dir or os.environ.get("DIFFVERI_STATE", ".state")).absolute()
    return {
        "DIFFVERI_STATE": str(state),
        # Hugging Face: never ask the hub; every model is a local path.
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HOME": str(state / "huggingface"),
        # Ultralytics: no downloads, no pip auto-install, settings inside the project.
        "YOLO_OFFLINE": "true",
        "YOLO_AUTOINSTALL": "false",
        "YOLO_VERBOSE": "false",
        "YOLO_CONFIG_DIR": str(state / "ultralytics"),
        # Prefect: project-local server database and settings, no telemetry.
        "PREFECT_HOME": str(state / "prefect"),
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        # Matplotlib and torch hub caches inside the project.
        "MPLCONFIGDIR": str(state / "matplotlib"),
        "TORCH_HOME": str(state / "torch"),
        "TOKENIZERS_PARALLELISM": "false",
    }


def apply_offline_env(state_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """Set every variable that is not already set; create the state folders. Returns the effective values."""
    for name, value in offline_env(state_dir).items():
        os.environ.setdefault(name, value)
    for name in ("HF_HOME", "YOLO_CONFIG_DIR", "PREFECT_HOME", "MPLCONFIGDIR", "TORCH_HOME"):
        Path(os.environ[name]).mkdir(parents=True, exist_ok=True)
    from .images import apply_pixel_limit

    apply_pixel_limit()  # decompression bombs: PIL raises instead of warning, in every entry point
    return {name: os.environ[name] for name in offline_env(state_dir)}


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
