"""Layered run configuration: typed dataclass defaults -> YAML experiment file -> ``--set key=value`` overrides.

The resolved config is saved in the run folder together with the git SHA (:func:`save_run_config`), so every run
can be reproduced. Models and training loops never take the config object: the CLI turns it into keyword
arguments at one boundary.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from data_manifests.project import resolve_config
from data_manifests.typed import from_dict

T = TypeVar("T")


def _parse_value(text: str) -> Any:
    return yaml.safe_load(text) if text else ""


def to_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)


def apply_overrides(values: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (values parsed as YAML) to a nested dict, returning a new dict."""
    out = json.loads(json.dumps(values))
    for text in overrides:
        if "=" not in text:
            raise ValueError(f"override {text!r} is not of the form key=value (e.g. --set epochs=2)")
        key, raw = text.split("=", 1)
        parts = key.split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {text!r}: {part!r} is not a section")
        node[parts[-1]] = _parse_value(raw)
    return out


def load_config(cls: type[T], path: str | os.PathLike | None, overrides: list[str] | tuple[str, ...] = ()) -> T:
    """Defaults of ``cls`` <- YAML file at ``path`` (optional) <- overrides.

    ``path`` is a file, or the short name of an experiment file in the project's ``configs/vehiclemae/`` (``toy``,
    ``finetune_toy``), found from any current directory (:func:`data_manifests.project.resolve_config`).
    """
    values: dict[str, Any] = to_dict(cls())
    if path is not None:
        path = resolve_config(path, "vehiclemae")  # a file, or a profile's short name (toy, finetune_toy)
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: a config file must be a YAML mapping")
        values = _merge(values, loaded)
    return from_dict(cls, apply_overrides(values, overrides), where=str(path or cls.__name__))


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def parse_names(names: Sequence[str] | str, valid: Sequence[str], what: str) -> list[str]:
    """A list (or comma-separated string) of names, each one of ``valid``; an unknown or empty selection is a
    ``ValueError`` that lists the valid names (``what`` names the kind, e.g. "protocol")."""
    out = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
    out = [n for n in out if n]
    unknown = [n for n in out if n not in valid]
    if unknown or not out:
        raise ValueError(f"unknown {what}(s) {unknown or out}; valid {what}s: {', '.join(valid)}")
    return out


def git_sha(cwd: str | os.PathLike | None = None) -> str:
    """The current commit (with ``-dirty`` if the work tree has changes), or ``unknown`` outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True).stdout
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return sha.strip() + ("-dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def save_run_config(config: Any, out_dir: str | os.PathLike) -> Path:
    """Write ``config.yaml`` (the resolved config plus ``git_sha``) into the run folder, atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from data_manifests import atomic_write_bytes

    payload = {"git_sha": git_sha(Path(__file__).resolve().parent), **to_dict(config)}
    atomic_write_bytes(out / "config.yaml", yaml.safe_dump(payload, sort_keys=False).encode())
    return out / "config.yaml"
