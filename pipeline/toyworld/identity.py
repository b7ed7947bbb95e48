"""Toy vehicle identities: class, dimensions, body colour and identity marks, sampled deterministically.

An identity is fully determined by ``(seed, index)``: :func:`sample_identity` draws it from a
``numpy.random.Generator`` seeded with both, so a ``subjects`` row only needs to store ``toyworld_seed`` and
``toyworld_index`` in its JSON ``attributes`` to rebuild the exact vehicle (:func:`identity_from_attributes`).

Hard negatives: identities are grouped in pairs ``(2k, 2k+1)``. With probability ``TWIN_PROBABILITY`` (decided by
the pair's own random stream) both members share class, dimensions and body colour and differ only by their marks,
so that telling them apart needs views where those marks are visible.

The *family world* (``family_size`` K >= 2, :mod:`pipeline.toyworld.family`) replaces the twins and marks by
families of K identities that share class, dimensions and body colour exactly and differ only by one individual
:class:`Cue` per face.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from data_manifests import seeds

CLASSES: tuple[str, ...] = ("sedan", "suv", "van", "truck", "bus")
CLASS_WEIGHTS: tuple[float, ...] = (0.34, 0.26, 0.16, 0.14, 0.10)

# (length, width, height) ranges in metres, per class.
DIMENSIONS: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "sedan": ((4.2, 4.9), (1.70, 1.90), (1.35, 1.50)),
    "suv": ((4.3, 4.9), (1.80, 2.00), (1.65, 1.85)),
    "van": ((4.8, 5.6), (1.90, 2.05), (1.90, 2.40)),
    "truck": ((5.5, 7.5), (2.00, 2.40), (2.50, 3.20)),
    "bus": ((9.0, 12.0), (2.40, 2.55), (2.90, 3.30)),
}

# Named body colours (sRGB). Kept away from the chroma key (255, 0, 255) of plain renders.
PALETTE: dict[str, tuple[int, int, int]] = {
    "white": (225, 225, 220),
    "black": (30, 30, 34),
    "silver": (170, 172, 176),
    "grey": (105, 108, 112),
    "red": (175, 30, 30),
    "blue": (35, 65, 160),
    "green": (40, 115, 60),
    "yellow": (220, 185, 40),
    "brown": (110, 75, 45),
    "orange": (215, 110, 30),
    "beige": (200, 185, 150),
    "maroon": (110, 25, 40),
}
COLOR_NAMES: tuple[str, ...] = tuple(PALETTE)

ROOF_MARKS: tuple[str, ...] = ("none", "rack", "box")
STICKER_FACES: tuple[str, ...] = ("front", "rear", "left", "right")
TWIN_PROBABILITY = 0.35

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Sticker:
    """A small coloured square on one face. ``u`` runs along the face (0 = front end for sides, left end for
    front/rear seen from outside), ``v`` from bottom (0) to top (1) of the lower body; ``size`` in metres."""

    face: str
    u: float
    v: float
    size: float
    color: RGB


@dataclass(frozen=True)
class Cue:
    """An individual cue of a family-world vehicle: a decal pattern (or a roof item) on one face, seen only from
    the views that see that face. ``face`` is one of front, rear, left, right, top; ``pattern`` and ``slot`` pick
    the shape and its position (``pipeline.toyworld.family.CUE_VARIANTS``); ``color`` is its RGB tone."""

    face: str
    pattern: str
    slot: int
    color: RGB


@dataclass(frozen=True)
class ToyIdentity:
    """One procedural vehicle. Frozen and hashable so meshes can be cached per identity.

    Dimensions are in metres in the vehicle frame: x forward (front at +x), y to the vehicle's left, z up.
    Marks and where they can be seen: ``roof`` (rack/box: top, and sides at low elevation), ``stripe_color``
    (a horizontal side stripe, left and right), ``panel_side``/``panel_color`` (a text panel on one side only),
    ``spoiler`` (rear, top), ``bumper_color`` (front bumper), ``stickers`` (fixed positions on one face),
    ``roof_color`` (two-tone roof: top), ``wheel_color`` (rims: sides). Family-world identities have no marks but
    one :class:`Cue` per face in ``cues``, and name their ``family``.
    """

    identity_id: str
    seed: int
    index: int
    class_name: str
    length: float
    width: float
    height: float
    color_name: str
    body_color: RGB
    roof: str = "none"
    roof_color: RGB | None = None
    stripe_color: RGB | None = None
    panel_side: str | None = None
    panel_color: RGB | None = None
    spoiler: bool = False
    bumper_color: RGB = (40, 40, 42)
    wheel_color: RGB = (150, 150, 155)
    stickers: tuple[Sticker, ...] = ()
    twin_of: str | None = None  # identity_id of the hard-negative partner sharing class, size and colour
    family_size: int = 1  # 1: the classic world; K >= 2: the family world (family = index // K)
    cues_per_face: int = 1  # family world: individual cues on each face
    family: str | None = None  # family id ("fam0002") in the family world, None in the classic world
    cues: tuple[Cue, ...] = ()  # family world: ``cues_per_face`` individual cues per face (front, rear, left, ...)

    @property
    def dims(self) -> tuple[float, float, float]:
        """``(length, width, height)`` in metres."""
        return (self.length, self.width, self.height)

    def marks(self) -> dict[str, Any]:
        """The identity marks only (what distinguishes twins)."""
        names = ("roof", "roof_color", "stripe_color", "panel_side", "panel_color", "spoiler", "bumper_color")
        out: dict[str, Any] = {name: getattr(self, name) for name in names}
        out["wheel_color"] = self.wheel_color
        out["stickers"] = [dataclasses.asdict(s) for s in self.stickers]
        return out

    def attributes(self) -> dict[str, Any]:
        """JSON-serialisable description for ``subjects.attributes``; includes ``toyworld_seed``/``toyworld_index``
        so that :func:`identity_from_attributes` rebuilds this identity exactly. Family-world identities add
        ``toyworld_family_size``, ``family`` and ``cues``, and ``toyworld_cues_per_face`` when it is not 1 (classic
        attributes are unchanged)."""
        attrs: dict[str, Any] = {
            "toyworld_seed": self.seed,
            "toyworld_index": self.index,
            "class_name": self.class_name,
            "dims": [round(d, 4) for d in self.dims],
            "color_name": self.color_name,
            "body_color": list(self.body_color),
            "twin_of": self.twin_of,
            "marks": self.marks(),
        }
        if self.family_size != 1:
            attrs["toyworld_family_size"] = self.family_size
            if self.cues_per_face != 1:
                attrs["toyworld_cues_per_face"] = self.cues_per_face
            attrs["family"] = self.family
            attrs["cues"] = [dataclasses.asdict(c) for c in self.cues]
        return json.loads(json.dumps(attrs))


def identity_name(index: int) -> str:
    """``identity_name(7) == "toy0007"``."""
    return f"toy{index:04d}"


def _rgb(values: np.ndarray) -> RGB:
    v = np.clip(np.rint(values), 0, 250).astype(int)
    return (int(v[0]), int(v[1]), int(v[2]))


def _shared(seed: int, pair: int) -> dict[str, Any]:
    """Class, dimensions and colour drawn from the stream of a twin pair (used when the pair are twins)."""
    rng = seeds.rng(seed, "toyworld.identity.pair", pair)
    return _sample_body(rng)


def sample_class(rng: np.random.Generator) -> str:
    """A vehicle class drawn with ``CLASS_WEIGHTS``."""
    return CLASSES[int(rng.choice(len(CLASSES), p=CLASS_WEIGHTS))]


def sample_dims(rng: np.random.Generator, class_name: str) -> dict[str, float]:
    """``length``, ``width``, ``height`` (metres) drawn uniformly from the class's ``DIMENSIONS`` ranges."""
    (l0, l1), (w0, w1), (h0, h1) = DIMENSIONS[class_name]
    return {
        "length": float(rng.uniform(l0, l1)),
        "width": float(rng.uniform(w0, w1)),
        "height": float(rng.uniform(h0, h1)),
    }


def _sample_body(rng: np.random.Generator) -> dict[str, Any]:
    class_name = sample_class(rng)
    color_name = COLOR_NAMES[int(rng.integers(len(COLOR_NAMES)))]
    base = np.array(PALETTE[color_name], float)
    dims = sample_dims(rng, class_name)  # drawn after the colour: the classic world's draw order
    return {
        "class_name": class_name,
        **dims,
        "color_name": color_name,
        "body_color": _rgb(base + rng.normal(0, 8, 3)),
    }


def _random_color(rng: np.random.Generator) -> RGB:
    return _rgb(rng.uniform(15, 245, 3))


def _sample_marks(rng: np.random.Generator, class_name: str) -> dict[str, Any]:
    marks: dict[str, Any] = {}
    roof_p = (0.6, 0.25, 0.15) if class_name != "bus" else (0.9, 0.1, 0.0)
    marks["roof"] = ROOF_MARKS[int(rng.choice(3, p=roof_p))]
    marks["roof_color"] = _random_color(rng) if rng.random() < 0.25 else None
    marks["stripe_color"] = _random_color(rng) if rng.random() < 0.35 else None
    if rng.random() < 0.3:
        marks["panel_side"] = ("left", "right")[int(rng.integers(2))]
        marks["panel_color"] = _random_color(rng)
    else:
        marks["panel_side"], marks["panel_color"] = None, None
    marks["spoiler"] = bool(class_name in ("sedan", "suv") and rng.random() < 0.3)
    marks["bumper_color"] = _random_color(rng) if rng.random() < 0.3 else (40, 40, 42)
    marks["wheel_color"] = _rgb(rng.uniform(20, 230, 3)) if rng.random() < 0.4 else (150, 150, 155)
    stickers = []
    for _ in range(int(rng.choice(4, p=(0.4, 0.3, 0.2, 0.1)))):
        stickers.append(
            Sticker(
                face=STICKER_FACES[int(rng.integers(len(STICKER_FACES)))],
                u=float(rng.uniform(0.15, 0.85)),
                v=float(rng.uniform(0.3, 0.7)),
                size=float(rng.uniform(0.2, 0.4)),
                color=_random_color(rng),
            )
        )
    marks["stickers"] = tuple(stickers)
    return marks


def sample_identity(seed: int, index: int, family_size: int = 1, cues_per_face: int = 1) -> ToyIdentity:
    """The identity number ``index`` of the toy world ``seed``; the same arguments always give the same vehicle.

    ``family_size`` 1 (the classic world): identities ``2k`` and ``2k+1`` are twins (hard negatives) with
    probability ``TWIN_PROBABILITY``: they share class, dimensions and body colour and differ only by marks
    (guaranteed to differ). ``family_size`` K >= 2: the family world of :mod:`pipeline.toyworld.family`, with
    ``cues_per_face`` individual cues on each face.
    """
    if index < 0:
        raise ValueError(f"toy world identity index must be >= 0, got {index}")
    if family_size != 1 or cues_per_face != 1:
        from .family import sample_family_identity  # the family module builds on this one

        return sample_family_identity(seed, index, family_size, cues_per_face)
    seed, index = int(seed), int(index)
    pair = index // 2
    twins = seeds.rng(seed, "toyworld.identity.twins", pair).random() < TWIN_PROBABILITY
    rng = seeds.rng(seed, "toyworld.identity.marks", index)
    body = _shared(seed, pair) if twins else _sample_body(rng)
    marks = _sample_marks(rng, body["class_name"])
    twin_of = None
    if twins:
        partner = index ^ 1
        twin_of = identity_name(partner)
        if index % 2 == 1:
            # The twins must differ by at least one mark: if the draw repeated the partner's marks, flip the roof.
            other = _sample_marks(seeds.rng(seed, "toyworld.identity.marks", partner), body["class_name"])
            if other == marks:
                marks["roof"] = "box" if marks["roof"] != "box" else "none"
    return ToyIdentity(identity_id=identity_name(index), seed=seed, index=index, twin_of=twin_of, **body, **marks)


def identity_from_attributes(attributes: dict[str, Any] | str) -> ToyIdentity:
    """Rebuild an identity from a ``subjects`` row's ``attributes`` (dict or JSON text).

    The attributes must hold ``toyworld_seed`` and ``toyworld_index`` (and ``toyworld_family_size`` for the family
    world, absent meaning the classic world; ``toyworld_cues_per_face``, absent meaning 1). If they also hold
    ``class_name``, ``marks``, ``body_color``, ``family`` or ``cues`` that differ from what this toy world version
    samples, that is an error (the data was made by another version of ``pipeline.toyworld``; regenerate it with
    ``diffveri toyworld``).
    """
    if isinstance(attributes, str):
        attributes = json.loads(attributes)
    missing = [k for k in ("toyworld_seed", "toyworld_index") if k not in attributes]
    if missing:
        raise KeyError(
            f"subject attributes lack {missing}; only rows written by `diffveri toyworld` can be rebuilt "
            f"(got keys {sorted(attributes)})"
        )
    family_size = int(attributes.get("toyworld_family_size", 1))
    cues_per_face = int(attributes.get("toyworld_cues_per_face", 1))
    ident = sample_identity(
        int(attributes["toyworld_seed"]), int(attributes["toyworld_index"]), family_size, cues_per_face
    )
    expected = ident.attributes()
    for key in ("class_name", "marks", "body_color", "family", "cues"):
        if key in attributes and attributes[key] != expected[key]:
            raise ValueError(
                f"subject {ident.identity_id}: stored {key}={attributes[key]!r} but this toy world version samples "
                f"{expected[key]!r}; regenerate the data with `diffveri toyworld`"
            )
    return ident
