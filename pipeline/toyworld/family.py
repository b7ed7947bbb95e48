"""The family world: identities in families of K siblings that only individual, view-dependent cues tell apart.

In the classic world identities differ mostly by body colour and class, so a colour histogram beats trained Re-ID
models. Here (``family_size`` K >= 2):

* identity indices ``[fK, fK + K)`` form family ``f`` (:func:`family_name` ``fam{f:04d}``). The family's own random
  stream draws class, dimensions and body colour, shared exactly by its members. Colours follow real-world car
  colour shares (``FAMILY_COLOR_WEIGHTS``: mostly white, black, silver, grey) with no per-vehicle jitter, so many
  families share the very same body colour;
* every member carries one individual :class:`~pipeline.toyworld.identity.Cue` on each face (front, rear, left,
  right, top): a decal pattern at a slot of the face, or on the top a roof item. For each face the family's stream
  draws a permutation of ``CUE_VARIANTS[face]`` and member ``m`` takes entry ``m``: siblings never share a face's
  (pattern, slot), so any single view can tell them apart; each face has its own permutation, so one face's cue says
  nothing about another's. The cue's tone comes from the member's own stream, among tones that contrast with the
  surface it is drawn on (:func:`cue_tones`);
* ``cues_per_face`` C >= 2 gives every member C cues on each face, entries ``m, m + K, ..., m + (C - 1) K`` of the
  face's permutation: distinct within a member and between siblings, so more of each view tells siblings apart.
  C = 1 is the world as it always was (the same draws, bit-identical renders).

Where each cue is drawn (its panel on the face) is :func:`pipeline.toyworld.mesh.cue_panels`.
"""

from __future__ import annotations

import numpy as np

from data_manifests.seeds import rng

from .identity import COLOR_NAMES, PALETTE, RGB, Cue, ToyIdentity, identity_name, sample_class, sample_dims
from .mesh import CARGO, ROOF_ITEMS

CUE_FACES: tuple[str, ...] = ("front", "rear", "left", "right", "top")
# Decal patterns drawn on a face panel: bands and bars span the panel; the others sit at one of three slots.
SLOTTED_PATTERNS: tuple[str, ...] = ("block", "disc", "slash", "triangle")
DECAL_VARIANTS: tuple[tuple[str, int], ...] = (
    ("band", 0),  # a low band along the face
    ("band", 1),  # a high band
    ("bars", 0),  # four bars across the face
    *((pattern, slot) for pattern in SLOTTED_PATTERNS for slot in range(3)),
)
CUE_VARIANTS: dict[str, tuple[tuple[str, int], ...]] = {
    **{face: DECAL_VARIANTS for face in ("front", "rear", "left", "right")},
    "top": DECAL_VARIANTS + tuple((item, 0) for item in ROOF_ITEMS),
}
MAX_FAMILY_SIZE = min(len(v) for v in CUE_VARIANTS.values())  # siblings need distinct variants on every face
MAX_CUES_PER_FACE = 3  # more would cover a face's panel with overlapping patterns

# Cue tones: mostly black and white (shape, not hue, is the cue), some yellow and red.
CUE_TONES: dict[str, RGB] = {
    "white": (236, 236, 230),
    "black": (24, 24, 27),
    "yellow": (238, 192, 24),
    "red": (200, 32, 28),
}
TONE_WEIGHTS: tuple[float, ...] = (0.4, 0.4, 0.1, 0.1)
MIN_TONE_CONTRAST = 80.0  # minimum luma difference (0..255) between a cue tone and the surface it sits on

# Share of each PALETTE colour among families, roughly the colours of real cars.
FAMILY_COLOR_WEIGHTS: dict[str, float] = {
    "white": 0.22, "black": 0.18, "silver": 0.14, "grey": 0.14, "red": 0.07, "blue": 0.08,
    "green": 0.03, "yellow": 0.02, "brown": 0.03, "orange": 0.02, "beige": 0.04, "maroon": 0.03,
}  # fmt: skip
assert tuple(FAMILY_COLOR_WEIGHTS) == COLOR_NAMES, "FAMILY_COLOR_WEIGHTS must list PALETTE's colours in order"


def family_name(family: int) -> str:
    """``family_name(2) == "fam0002"``."""
    return f"fam{family:04d}"


def check_family_size(family_size: int, cues_per_face: int = 1) -> None:
    """Raise a ``ValueError`` naming the valid range unless ``1 <= family_size <= MAX_FAMILY_SIZE`` and
    ``1 <= cues_per_face <= MAX_CUES_PER_FACE`` with ``family_size * cues_per_face <= MAX_FAMILY_SIZE`` (every cue of a
    family on a face is a distinct variant); more than one cue per face needs the family world."""
    if not 1 <= family_size <= MAX_FAMILY_SIZE:
        raise ValueError(
            f"family size must be in 1..{MAX_FAMILY_SIZE} (1 = the classic world; siblings need distinct cues on "
            f"every face and a face has {MAX_FAMILY_SIZE} cue variants), got {family_size}"
        )
    if not 1 <= cues_per_face <= MAX_CUES_PER_FACE:
        raise ValueError(f"cues per face must be in 1..{MAX_CUES_PER_FACE}, got {cues_per_face}")
    if cues_per_face > 1 and family_size == 1:
        raise ValueError("cues per face > 1 needs the family world (family size >= 2); the classic world has no cues")
    if family_size * cues_per_face > MAX_FAMILY_SIZE:
        raise ValueError(
            f"family size x cues per face must be at most {MAX_FAMILY_SIZE} (the cue variants of a face), got "
            f"{family_size} x {cues_per_face}; e.g. --cues-per-face {max(1, MAX_FAMILY_SIZE // family_size)}"
        )


def _luma(rgb: RGB) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _family_body(rng: np.random.Generator) -> dict:
    class_name = sample_class(rng)
    weights = np.array(list(FAMILY_COLOR_WEIGHTS.values()))
    color_name = COLOR_NAMES[int(rng.choice(len(COLOR_NAMES), p=weights / weights.sum()))]
    return {
        "class_name": class_name,
        **sample_dims(rng, class_name),
        "color_name": color_name,
        "body_color": PALETTE[color_name],  # exact: families of one colour name share it
    }


def cue_surface(class_name: str, face: str, body: RGB) -> RGB:
    """The colour of the surface a face's cue is drawn on: the body, or a truck's cargo box (rear, sides, top)."""
    return CARGO if class_name == "truck" and face != "front" else body


def cue_tones(class_name: str, face: str, pattern: str, body: RGB) -> list[str]:
    """The ``CUE_TONES`` a cue may take: those whose luma differs from its surface's by ``MIN_TONE_CONTRAST``;
    not black on a front or rear with dark grille and bumpers (all but a truck's cargo box rear); black or white
    only for roof items (they show from many views, so hue would tell too much)."""
    surface = cue_surface(class_name, face, body)
    names = [n for n in CUE_TONES if abs(_luma(CUE_TONES[n]) - _luma(surface)) >= MIN_TONE_CONTRAST]
    if face == "front" or (face == "rear" and class_name != "truck"):
        names = [n for n in names if n != "black"]
    if pattern in ROOF_ITEMS:
        names = [n for n in names if n in ("black", "white")]
    return names


def _tone(rng: np.random.Generator, names: list[str]) -> RGB:
    weights = np.array([TONE_WEIGHTS[list(CUE_TONES).index(n)] for n in names])
    return CUE_TONES[names[int(rng.choice(len(names), p=weights / weights.sum()))]]


def sample_family_identity(seed: int, index: int, family_size: int, cues_per_face: int = 1) -> ToyIdentity:
    """Identity ``index`` of the family world ``(seed, family_size, cues_per_face)``: member ``index % K`` of family
    ``index // K`` (see the module docstring). Deterministic: a world with more identities holds the same families."""
    check_family_size(family_size, cues_per_face)
    if index < 0:
        raise ValueError(f"toy world identity index must be >= 0, got {index}")
    k = int(family_size)
    family, member = divmod(int(index), k)
    body = _family_body(rng(seed, "toyworld.family.body", family, k))
    cues = []
    for f, face in enumerate(CUE_FACES):
        variants = CUE_VARIANTS[face]
        # Without replacement among the family's members, and an independent permutation per face.
        order = rng(seed, "toyworld.family.cue_order", family, k, f).permutation(len(variants))
        for j in range(cues_per_face):
            pattern, slot = variants[int(order[member + j * k])]
            tones = cue_tones(body["class_name"], face, pattern, body["body_color"])
            stream = (
                rng(seed, "toyworld.family.cue_tone", index, k, f)
                if j == 0
                else rng(seed, "toyworld.family.cue_tone_extra", index, k, f, j)
            )
            cues.append(Cue(face=face, pattern=pattern, slot=slot, color=_tone(stream, tones)))
    return ToyIdentity(
        identity_id=identity_name(int(index)),
        seed=int(seed),
        index=int(index),
        family_size=k,
        cues_per_face=int(cues_per_face),
        family=family_name(family),
        cues=tuple(cues),
        **body,
    )
