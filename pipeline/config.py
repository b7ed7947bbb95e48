"""Layered configuration: typed dataclass defaults -> YAML profile -> ``--set key=value`` overrides.

The resolved config is a plain dict. Stages never take it: each stage's ``run_stage`` adapter turns its section
into a typed dataclass with :func:`section` and calls the stage function with explicit keyword arguments.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from typing import Any, TypeVar

import yaml

from data_manifests.project import resolve_config
from data_manifests.typed import from_dict

T = TypeVar("T")


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b=3"`` -> ``(["a", "b"], 3)``; the value is parsed as YAML (numbers, booleans, lists)."""
    if "=" not in text:
        raise ValueError(f"override {text!r} is not of the form key=value (e.g. synthesize.images_per_view=2)")
    key, value = text.split("=", 1)
    if not key or any(not part for part in key.split(".")):
        raise ValueError(f"override {text!r} has an empty key part")
    return key.split("."), yaml.safe_load(value) if value else ""


def apply_overrides(config: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Return a copy of ``config`` with each ``key.path=value`` override applied."""
    out = copy.deepcopy(config)
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


def load_config(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Load a YAML profile. A profile may name ``extends: other.yaml`` (relative to itself) to start from.

    ``path`` is a file, or the short name of a profile in the project's ``configs/pipeline/`` (``toy``, ``paper``),
    found from any current directory (:func:`data_manifests.project.resolve_config`).
    """
    path = resolve_config(path, "pipeline")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config file must be a YAML mapping")
    if "extends" in data:
        parent = path.parent / data.pop("extends")
        if not parent.is_file():
            raise FileNotFoundError(f"{path}: extends {parent.name!r}, but {parent} does not exist")
        data = _merge(load_config(parent), data)
    return apply_overrides(data, overrides)


def section(config: dict[str, Any], name: str, cls: type[T]) -> T:
    """Build dataclass ``cls`` from ``config[name]``; unknown keys are an error that lists the valid ones.

    A section without its own ``seed`` takes the profile's top-level ``seed``.
    """
    values = config.get(name) or {}
    if not isinstance(values, dict):
        raise ValueError(f"config section {name!r} must be a mapping, got {type(values).__name__}")
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    if "seed" in fields and "seed" not in values and "seed" in config:
        values = {**values, "seed": config["seed"]}  # the profile's top-level seed is every stage's default
    # Unknown keys and values of the wrong type are errors naming the key (data_manifests.typed, as in vehiclemae).
    return from_dict(cls, values, where=f"config section {name!r}")
