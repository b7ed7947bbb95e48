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
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


def _parse_value(text: str) -> Any:
    return yaml.safe_load(text) if text else ""


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check/convert a YAML value against a dataclass field annotation (nested dataclasses included)."""
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(annotation, value, where)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    # YAML 1.1 reads "1e-3" (no dot) as a string: accept it for float fields (also `float | None`).
    if isinstance(value, str) and (
        annotation is float or (origin is not None and float in typing.get_args(annotation))
    ):
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"{where}: expected a number, got {value!r}") from None
    if (origin is tuple or annotation is tuple) and isinstance(value, list | tuple):
        return tuple(value)
    if (origin is list or annotation is list) and isinstance(value, list | tuple):
        return list(value)
    _check_scalar(value, annotation, where)
    return value


_SCALAR_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _check_scalar(value: Any, annotation: Any, where: str) -> None:
    """A value for a scalar field (``int``, ``float``, ``bool``, ``str``, optionally ``| None``) must be of that type:
    ``--set optim.blr=[1,2]`` is an error here, not a ``TypeError`` deep in the training loop."""
    args = typing.get_args(annotation) if typing.get_origin(annotation) is not None else (annotation,)
    kinds = [a for a in args if a is not type(None)]
    if not kinds or any(k not in _SCALAR_NAMES for k in kinds):
        return  # containers, Any, ...: checked where they are used
    if value is None and type(None) in args:
        return
    for kind in kinds:
        if kind is bool and isinstance(value, bool):
            return
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return
        if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
            return
        if kind is str and isinstance(value, str):
            return
    wanted = " or ".join(_SCALAR_NAMES[k] for k in kinds) + (" or null" if type(None) in args else "")
    raise ValueError(f"{where}: expected {wanted}, got {value!r}")


def from_dict(cls: type[T], values: dict[str, Any], where: str = "config") -> T:
    """Build dataclass ``cls`` from a dict; unknown keys are an error listing the valid ones."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; valid keys: {sorted(fields)}")
    kwargs = {name: _coerce(value, hints[name], f"{where}.{name}") for name, value in values.items()}
    return cls(**kwargs)


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
    """Defaults of ``cls`` <- YAML file at ``path`` (optional) <- overrides."""
    values: dict[str, Any] = to_dict(cls())
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist (experiment files live in configs/vehiclemae/)")
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
