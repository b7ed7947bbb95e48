"""The one configuration loader: typed dataclass defaults -> YAML file (``extends:``) -> ``--set key=value`` overrides.

Every CLI and stage of both packages loads its config here (``pipeline.config.load_config`` and
``vehiclemae.config.load_config`` are two-line wrappers naming their dataclass and profile folder). Strict and typed:

- an unknown key or section is an error that suggests the nearest valid name (``unknown section 'filtr' (did you
  mean 'filter'?)``);
- ``int`` / ``float`` / ``bool`` / ``str`` fields (optionally ``| None``) take only values of their type; ints are
  accepted for floats, and ``1e-4`` (a string to YAML 1.1) for float fields; lists become tuples for tuple fields;
  nested dataclasses (sections) are built recursively;
- the top-level ``seed`` is the default ``seed`` of every section that has one.

The resolved config is saved in a run folder with the git SHA (:func:`save_run_config`) and shown by
``--print-config`` (:func:`data_manifests.cli.print_config`).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import os
import subprocess
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .project import resolve_config

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------------- typed values
def coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check/convert a YAML value against a dataclass field annotation (nested dataclasses included)."""
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping (a section), got {value!r}")
        return from_dict(annotation, value, where)  # type: ignore[arg-type]
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
    origin = typing.get_origin(annotation)
    if origin is not None and origin not in (typing.Union, types.UnionType):
        return  # dict[int, str], list[int], ...: checked where they are used
    args = typing.get_args(annotation) if origin is not None else (annotation,)
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


def _unknown(where: str, names: list[str], values: dict[str, Any], hints: dict[str, Any]) -> str:
    """``unknown section 'filtr' (did you mean 'filter'?)``: a name given a mapping is a section, else a key."""
    sections = [n for n, hint in hints.items() if dataclasses.is_dataclass(hint)]
    parts = []
    for kind, pool in (("section", sections), ("key", [n for n in hints if n not in sections])):
        wrong = [n for n in names if isinstance(values[n], dict) == (kind == "section")]
        if not wrong:
            continue
        near = [m[0] for n in wrong if (m := difflib.get_close_matches(n, pool or list(hints), n=1))]
        hint = f" (did you mean {' or '.join(repr(m) for m in near)}?)" if near else ""
        label = f"section {wrong[0]!r}" if kind == "section" and len(wrong) == 1 else f"{kind}(s) {wrong}"
        parts.append(f"unknown {label}{hint}")
    return _at(where, f"{'; '.join(parts)}; valid keys: {sorted(hints)}", ": ")


def _at(where: str, text: str, sep: str = ".") -> str:
    """``filter`` + ``conf_min`` -> ``filter.conf_min``; at the top level (``where=""``) just the text."""
    return f"{where}{sep}{text}" if where else text


def from_dict(cls: type[T], values: dict[str, Any], where: str = "config") -> T:
    """Build dataclass ``cls`` from a dict; unknown keys and sections are an error naming the nearest valid one."""
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = {name: hint for name, hint in hints.items() if name in fields}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ValueError(_unknown(where, unknown, values, hints))
    kwargs = {name: coerce(value, hints[name], _at(where, name)) for name, value in values.items()}
    return cls(**kwargs)


def to_dict(obj: Any) -> dict[str, Any]:
    """A config dataclass as plain YAML/JSON values (tuples become lists)."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    return plain(dataclasses.asdict(obj))


# --------------------------------------------------------------------------------------------------------- layers
def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b=3"`` -> ``(["a", "b"], 3)``; the value is parsed as YAML (numbers, booleans, lists)."""
    if "=" not in text:
        raise ValueError(f"override {text!r} is not of the form key=value (e.g. --set optim.epochs=2)")
    key, value = text.split("=", 1)
    if not key or any(not part for part in key.split(".")):
        raise ValueError(f"override {text!r} has an empty key part")
    return key.split("."), yaml.safe_load(value) if value else ""


def apply_overrides(values: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``values`` with each ``key.path=value`` override applied."""
    out = copy.deepcopy(values)
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {text!r}: {part!r} is not a section")
        node[path[-1]] = value
    return out


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in top.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML config file as a dict; ``extends: other.yaml`` (relative to the file) is loaded first, then merged."""
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config file must be a YAML mapping")
    if "extends" in data:
        parent = path.parent / data.pop("extends")
        if not parent.is_file():
            raise FileNotFoundError(f"{path}: extends {parent.name!r}, but {parent} does not exist")
        data = _merge(read_yaml(parent), data)
    return data


def inherit_seed(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """The top-level ``seed`` becomes the ``seed`` of every section of ``cls`` that has one and sets none."""
    if "seed" not in values:
        return values
    out = dict(values)
    for name, hint in typing.get_type_hints(cls).items():
        section = out.get(name, {})
        if dataclasses.is_dataclass(hint) and isinstance(section, dict) and "seed" not in section:
            if "seed" in {f.name for f in dataclasses.fields(hint)}:
                out[name] = {**section, "seed": values["seed"]}
    return out


def load_config(cls: type[T], path: str | os.PathLike | None, overrides: Sequence[str] = (), *, kind: str) -> T:
    """Defaults of ``cls`` <- YAML file at ``path`` (optional) <- overrides, checked as a whole.

    ``path`` is a file, or the short name of a profile in the project's ``configs/<kind>/`` (``toy``, ``paper``),
    found from any current directory (:func:`data_manifests.project.resolve_config`).
    """
    values: dict[str, Any] = {}
    source = f"{cls.__name__} defaults"
    if path is not None:
        resolved = resolve_config(path, kind)
        values, source = read_yaml(resolved), str(resolved)
    values = inherit_seed(cls, apply_overrides(values, overrides))
    try:
        return from_dict(cls, values, where="")
    except ValueError as exc:  # name the file (and the overrides) the bad value came from
        raise ValueError(f"config {source}{' + --set' if overrides else ''}: {exc}") from None


def section(config: dict[str, Any], name: str, cls: type[T]) -> T:
    """Build dataclass ``cls`` from ``config[name]`` (a loaded profile as a dict); a section without its own
    ``seed`` takes the profile's top-level ``seed``."""
    values = config.get(name) or {}
    if not isinstance(values, dict):
        raise ValueError(f"config section {name!r} must be a mapping, got {type(values).__name__}")
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    if "seed" in fields and "seed" not in values and "seed" in config:
        values = {**values, "seed": config["seed"]}
    return from_dict(cls, values, where=f"config section {name!r}")


# ------------------------------------------------------------------------------------------------------- run folder
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
    from .store import atomic_write_bytes

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"git_sha": git_sha(Path(__file__).resolve().parent), **to_dict(config)}
    atomic_write_bytes(out / "config.yaml", yaml.safe_dump(payload, sort_keys=False).encode())
    return out / "config.yaml"


def parse_names(names: Sequence[str] | str, valid: Sequence[str], what: str) -> list[str]:
    """A list (or comma-separated string) of names, each one of ``valid``; an unknown or empty selection is a
    ``ValueError`` that lists the valid names (``what`` names the kind, e.g. "protocol")."""
    out = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
    out = [n for n in out if n]
    unknown = [n for n in out if n not in valid]
    if unknown or not out:
        raise ValueError(f"unknown {what}(s) {unknown or out}; valid {what}s: {', '.join(valid)}")
    return out
