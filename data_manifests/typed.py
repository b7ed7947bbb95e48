"""Typed configuration sections: a dict of YAML values -> a dataclass, with every value checked against its field.

One implementation for both packages (``pipeline.config.section`` and ``vehiclemae.config.load_config``): unknown keys
are an error listing the valid ones; ``int`` / ``float`` / ``bool`` / ``str`` fields (optionally ``| None``) take
only values of their type (``--set optim.blr=[1,2]`` is refused, not a ``TypeError`` deep in a stage); ints are
accepted for floats, and ``1e-4`` (a string to YAML 1.1) for float fields; lists become tuples for tuple fields;
nested dataclasses are built recursively.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def coerce(value: Any, annotation: Any, where: str) -> Any:
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
    kwargs = {name: coerce(value, hints[name], f"{where}.{name}") for name, value in values.items()}
    return cls(**kwargs)
