"""Where the project is: its source checkout, its state folder, and its config profiles by short name.

Both sides use it (``pipeline`` and ``vehiclemae`` resolve ``--config toy`` through :func:`resolve_config`), so it
lives in the contract package and imports nothing but the standard library.

- **Project root**: the source checkout this code runs from (the folder holding ``pyproject.toml`` next to the
  ``data_manifests`` package, i.e. an editable install or a clone on ``PYTHONPATH``); ``None`` for a plain wheel.
- **State folder** (:func:`state_dir`): ``$DIFFVERI_STATE`` if set; else ``<project root>/.state``; else
  ``$XDG_STATE_HOME/diffveri`` (``~/.local/state/diffveri``). Never the current directory of the call.
- **Config profiles**: ``--config toy`` means ``<project root>/configs/<kind>/toy.yaml``; a relative path that does
  not exist from the current directory is also looked up from the project root.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_NAME = "diffveri-vehiclemae"  # [project] name in pyproject.toml: tells our checkout from another project
CONFIG_KINDS = ("pipeline", "vehiclemae")


def project_root() -> Path | None:
    """The source checkout this package runs from, or ``None`` when installed as a plain package."""
    candidate = Path(__file__).resolve().parent.parent
    pyproject = candidate / "pyproject.toml"
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError:
        return None
    return candidate if f'name = "{PROJECT_NAME}"' in text else None


def state_dir() -> Path:
    """The one folder for project state (Prefect home, ultralytics settings): see the module docstring."""
    if os.environ.get("DIFFVERI_STATE"):
        return Path(os.environ["DIFFVERI_STATE"]).expanduser().absolute()
    root = project_root()
    if root is not None:
        return root / ".state"
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg).expanduser().absolute() / "diffveri"


def _profiles(kind: str) -> list[str]:
    root = project_root()
    folder = root / "configs" / kind if root is not None else None
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder is not None and folder.is_dir() else []


def resolve_config(path: str | os.PathLike, kind: str) -> Path:
    """The config file meant by ``path``: an existing file as given, else the same relative path under the
    project root, else the short name of a profile in ``configs/<kind>/`` (``toy`` or ``toy.yaml``).

    Raises:
        FileNotFoundError: naming every place looked at and the profiles available.
    """
    if kind not in CONFIG_KINDS:
        raise ValueError(f"config kind must be one of {CONFIG_KINDS}, got {kind!r}")
    given = Path(path).expanduser()
    tried = [given]
    if given.is_file():
        return given
    root = project_root()
    if root is not None and not given.is_absolute():
        tried.append(root / given)
        if (root / given).is_file():
            return root / given
        if len(given.parts) == 1:  # a short name: toy, toy.yaml
            name = given.name if given.suffix in (".yaml", ".yml") else f"{given.name}.yaml"
            tried.append(root / "configs" / kind / name)
            if tried[-1].is_file():
                return tried[-1]
    available = ", ".join(_profiles(kind)) or "none (this install has no project checkout)"
    raise FileNotFoundError(
        f"config {str(path)!r} not found (looked at {', '.join(str(t) for t in tried)}); give a path to a YAML "
        f"file or the short name of a profile in configs/{kind}/: {available}"
    )
