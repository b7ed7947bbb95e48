"""The toy world's per-image view and per-identity attributes next to its VeRi-776 layout.

``diffveri toy world`` writes ``ROOT/toyworld_meta.json`` beside ``image_train/``, ``image_query/``, ``image_test/``::

    {"format": "toyworld-veri-meta-v1", "family_size": K,
     "images": {"0001_c002_00000003_0.jpg": {"view": "front_left", "azimuth": 41.5, "elevation": 12.0}, ...},
     "identities": {"1": {"identity_id": "toy0011", "family": "fam0002", "class_name": "sedan",
                          "color_name": "red", "dims": [4.5, 1.8, 1.4]}, ...}}

``view`` is one of ``data_manifests.INTENDED_VIEWS``; ``images`` is keyed by VeRi file name, ``identities`` by the
VeRi vehicle id as a decimal string. A *family* is a group of ``family_size`` identities that share class, colour
and shape up to small differences (the hard negatives of the toy world). Real VeRi-776 has no such file:
:func:`load_toy_meta` then returns ``None``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_manifests import INTENDED_VIEWS
from data_manifests.toymeta import META_FILE, META_FORMAT, toy_meta_text

_IDENTITY_STR_FIELDS = ("identity_id", "family", "class_name", "color_name")


@dataclass(frozen=True)
class ImageMeta:
    """View bin (``INTENDED_VIEWS``) and camera angles in degrees of one rendered image."""

    view: str
    azimuth: float
    elevation: float


@dataclass(frozen=True)
class IdentityMeta:
    """Attributes of one toy identity; ``dims`` is ``(length, width, height)``."""

    identity_id: str
    family: str
    class_name: str
    color_name: str
    dims: tuple[float, float, float]


@dataclass(frozen=True)
class ToyMeta:
    """Parsed ``toyworld_meta.json``: ``images`` by file name, ``identities`` by VeRi vehicle id (int)."""

    path: Path
    family_size: int
    images: dict[str, ImageMeta]
    identities: dict[int, IdentityMeta]

    def image(self, name: str | os.PathLike) -> ImageMeta:
        """The entry of an image, by file name or path (only the name is used)."""
        key = Path(name).name
        try:
            return self.images[key]
        except KeyError:
            raise KeyError(f"{self.path} has no entry for image {key!r} ({len(self.images)} images listed)") from None

    def view_of(self, name: str | os.PathLike) -> str:
        """The view bin of an image (file name or path)."""
        return self.image(name).view

    def views_for(self, samples: list[Any]) -> list[str]:
        """View bins of samples with a ``path`` (``ReIDSample``); every image must be listed (error names the first
        missing ones, e.g. when the meta file belongs to another export)."""
        missing = [s.path.name for s in samples if s.path.name not in self.images]
        if missing:
            raise ValueError(
                f"{self.path} lists no view for {len(missing)} of {len(samples)} images (first: "
                f"{', '.join(missing[:3])}); was the layout re-exported without rewriting the meta file?"
            )
        return [self.images[s.path.name].view for s in samples]

    def identity(self, pid: int) -> IdentityMeta:
        """Attributes of a VeRi vehicle id."""
        try:
            return self.identities[int(pid)]
        except KeyError:
            raise KeyError(f"{self.path} has no identity {pid} ({len(self.identities)} identities listed)") from None

    def family_of(self, pid: int) -> str:
        return self.identity(pid).family

    def family_groups(self, samples: list[Any]) -> dict[int, str] | None:
        """``{pid: family}`` of the samples' identities for holding out whole families (validation), or ``None`` in
        a world without families (``family_size`` 1: every identity is its own family)."""
        if self.family_size < 2:
            return None
        return {int(s.pid): self.family_of(s.pid) for s in samples}


def _fail(path: Path, what: str) -> ValueError:
    return ValueError(f"{path}: {what} (expected format {META_FORMAT!r}; see vehiclemae/reid/toymeta.py)")


def _number(path: Path, where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(path, f"{where} must be a number, got {value!r}")
    return float(value)


def _parse_image(path: Path, name: str, entry: Any) -> ImageMeta:
    if not isinstance(entry, dict):
        raise _fail(path, f"images[{name!r}] must be an object, got {type(entry).__name__}")
    missing = [k for k in ("view", "azimuth", "elevation") if k not in entry]
    if missing:
        raise _fail(path, f"images[{name!r}] lacks {', '.join(missing)}")
    view = entry["view"]
    if view not in INTENDED_VIEWS:
        raise _fail(path, f"images[{name!r}].view = {view!r} is not a view bin; valid: {', '.join(INTENDED_VIEWS)}")
    return ImageMeta(
        view,
        _number(path, f"images[{name!r}].azimuth", entry["azimuth"]),
        _number(path, f"images[{name!r}].elevation", entry["elevation"]),
    )


def _parse_identity(path: Path, key: str, entry: Any) -> tuple[int, IdentityMeta]:
    if not key.isdigit():
        raise _fail(path, f"identities key {key!r} is not a decimal VeRi vehicle id")
    if not isinstance(entry, dict):
        raise _fail(path, f"identities[{key!r}] must be an object, got {type(entry).__name__}")
    missing = [k for k in (*_IDENTITY_STR_FIELDS, "dims") if k not in entry]
    if missing:
        raise _fail(path, f"identities[{key!r}] lacks {', '.join(missing)}")
    for field in _IDENTITY_STR_FIELDS:
        if not isinstance(entry[field], str) or not entry[field]:
            raise _fail(path, f"identities[{key!r}].{field} must be a non-empty string, got {entry[field]!r}")
    dims = entry["dims"]
    if not isinstance(dims, list) or len(dims) != 3:
        raise _fail(path, f"identities[{key!r}].dims must be a list [length, width, height], got {dims!r}")
    dims_t = tuple(_number(path, f"identities[{key!r}].dims", d) for d in dims)
    return int(key), IdentityMeta(
        entry["identity_id"],
        entry["family"],
        entry["class_name"],
        entry["color_name"],
        dims_t,  # type: ignore[arg-type]
    )


def load_toy_meta(root: str | os.PathLike) -> ToyMeta | None:
    """Read and validate ``ROOT/toyworld_meta.json``; ``None`` when the file is absent (e.g. real VeRi-776).

    Raises:
        ValueError: the file is not valid JSON or does not follow the format (the message names the file and the
            offending key).
    """
    path = Path(root) / META_FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise _fail(path, f"not valid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise _fail(path, f"top level must be an object, got {type(raw).__name__}")
    if raw.get("format") != META_FORMAT:
        raise _fail(path, f"format is {raw.get('format')!r}")
    family_size = raw.get("family_size")
    if isinstance(family_size, bool) or not isinstance(family_size, int) or family_size < 1:
        raise _fail(path, f"family_size must be a positive integer, got {family_size!r}")
    for key in ("images", "identities"):
        if not isinstance(raw.get(key), dict):
            raise _fail(path, f"{key!r} must be an object keyed by {'file name' if key == 'images' else 'vehicle id'}")
    images = {name: _parse_image(path, name, entry) for name, entry in raw["images"].items()}
    identities = dict(_parse_identity(path, key, entry) for key, entry in raw["identities"].items())
    return ToyMeta(path, family_size, images, identities)


def write_toy_meta(
    root: str | os.PathLike, family_size: int, images: dict[str, dict[str, Any]], identities: dict[int, dict[str, Any]]
) -> Path:
    """Write a meta file in the format above (the toy world writes it with the same ``toy_meta_text``)."""
    path = Path(root) / META_FILE
    path.write_text(toy_meta_text(family_size, images, identities))
    return path


__all__ = ["META_FILE", "META_FORMAT", "IdentityMeta", "ImageMeta", "ToyMeta", "load_toy_meta", "write_toy_meta"]
