"""The family world: shared family bodies, per-face individual cues, their visibility in every view."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter, defaultdict

import numpy as np
import pytest

from data_manifests import INTENDED_VIEWS, VIEW_CLASSES_TOYWORLD
from pipeline.toyworld import VIEW_ANGLES, identity_from_attributes, render, sample_identity
from pipeline.toyworld.family import (
    CUE_FACES,
    CUE_TONES,
    CUE_VARIANTS,
    MAX_FAMILY_SIZE,
    MIN_TONE_CONTRAST,
    ROOF_ITEMS,
    cue_surface,
    cue_tones,
)
from pipeline.toyworld.identity import CLASSES, COLOR_NAMES, PALETTE
from pipeline.toyworld.mesh import MeshBuilder, add_cues
from pipeline.toyworld.renderer import render_vehicle

K = 4
SIZE = 64
MIN_CUE_PIXELS = 8  # a cue changes at least this many vehicle pixels at 64 x 64 (minimum over 400 identities: 9)


def family(seed: int, f: int, k: int = K) -> list:
    return [sample_identity(seed, f * k + m, k) for m in range(k)]


def one_family_per_class(seed: int = 0) -> list[list]:
    found: dict[str, list] = {}
    f = 0
    while len(found) < len(CLASSES):
        members = family(seed, f)
        found.setdefault(members[0].class_name, members)
        f += 1
    return [found[c] for c in CLASSES]


def body(ident) -> tuple:
    return (ident.class_name, ident.dims, ident.color_name, ident.body_color)


def luma(rgb) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def test_family_members_share_the_body_exactly() -> None:
    for k in (2, K, MAX_FAMILY_SIZE):
        for f in range(12):
            members = family(7, f, k)
            assert len({body(m) for m in members}) == 1
            assert {m.family for m in members} == {f"fam{f:04d}"} and {m.family_size for m in members} == {k}
            assert [m.identity_id for m in members] == [f"toy{f * k + j:04d}" for j in range(k)]
            assert all(m.twin_of is None and m.marks() == members[0].marks() for m in members)
    # Families are drawn from their own stream: the family world of another family size differs.
    assert body(sample_identity(0, 0, 2)) != body(sample_identity(0, 0, 3)) or sample_identity(0, 0, 2).cues != (
        sample_identity(0, 0, 3).cues
    )


def test_many_families_share_a_body_colour() -> None:
    colours = Counter(family(0, f)[0].color_name for f in range(48))
    assert set(colours) <= set(COLOR_NAMES)
    assert colours.most_common(1)[0][1] >= 6  # the benchmark world's 48 families: colour cannot tell them apart
    assert sum(n for n in colours.values() if n >= 2) >= 40


def test_siblings_differ_on_every_face() -> None:
    for k in (2, K, MAX_FAMILY_SIZE):
        for f in range(30):
            members = family(3, f, k)
            for m in members:
                assert [c.face for c in m.cues] == list(CUE_FACES)
                assert all((c.pattern, c.slot) in CUE_VARIANTS[c.face] for c in m.cues)
            for i, face in enumerate(CUE_FACES):
                variants = {(m.cues[i].pattern, m.cues[i].slot) for m in members}
                assert len(variants) == k, (f, face)


def test_face_cues_are_drawn_independently() -> None:
    """Knowing one face's cue says (almost) nothing about another's: given the front cue, the other faces' cues
    still take many values."""
    given: dict[str, set] = defaultdict(set)
    for f in range(300):
        for m in family(0, f):
            cues = {c.face: (c.pattern, c.slot) for c in m.cues}
            if cues["front"] == ("disc", 0):
                for face in ("rear", "left", "right", "top"):
                    given[face].add(cues[face])
    for face, seen in given.items():
        assert len(seen) >= 8, face


def test_cue_tones_contrast_with_their_surface() -> None:
    for class_name in CLASSES:  # every face of every body colour has a tone
        for colour in PALETTE.values():
            assert all(cue_tones(class_name, face, "disc", colour) for face in CUE_FACES)
            assert cue_tones(class_name, "top", "box", colour)
    for index in range(800):
        ident = sample_identity(1, index, K)
        for cue in ident.cues:
            assert cue.color in CUE_TONES.values()
            assert cue.color in [
                CUE_TONES[n] for n in cue_tones(ident.class_name, cue.face, cue.pattern, ident.body_color)
            ]
            surface = cue_surface(ident.class_name, cue.face, ident.body_color)
            assert abs(luma(cue.color) - luma(surface)) >= MIN_TONE_CONTRAST
            if cue.pattern in ROOF_ITEMS:
                assert cue.color in (CUE_TONES["black"], CUE_TONES["white"])
            if cue.face == "front":  # never black over the dark grille and bumper
                assert cue.color != CUE_TONES["black"]


def test_cues_sit_on_their_face() -> None:
    """A decal cue's triangles carry its face's label; a roof item shows from the top (and its sides)."""
    seen = set()
    for index in range(0, 400, 3):
        ident = sample_identity(2, index, K)
        for cue in ident.cues:
            b = MeshBuilder()
            add_cues(b, dataclasses.replace(ident, cues=(cue,)), roof_items=cue.pattern in ROOF_ITEMS)
            labels = {VIEW_CLASSES_TOYWORLD[i] for i in b.build().labels}
            if cue.pattern in ROOF_ITEMS:
                assert "top" in labels
            else:
                assert labels == {cue.face}, (ident.class_name, cue)
            seen.add(cue.pattern)
    assert seen == {p for variants in CUE_VARIANTS.values() for p, _ in variants}


def view_cameras(view: str) -> list[tuple[float, float]]:
    """The canonical camera of a view and the extremes of the cameras ``view_to_camera`` draws for it."""
    az, el = VIEW_ANGLES[view]
    if view == "top":
        return [(0.0, 90.0), (30.0, 70.0), (120.0, 70.0)]
    return [(az, el), (az - 15.0, 0.0), (az + 15.0, 40.0)]


def changed_pixels(a, b) -> int:
    return int(((a.image != b.image).any(axis=-1) & ((a.labels > 0) | (b.labels > 0))).sum())


@pytest.mark.parametrize("members", one_family_per_class(), ids=lambda ms: ms[0].class_name)
def test_every_view_shows_an_individual_cue(members) -> None:
    """From each of the nine views, removing the vehicle's cues changes its pixels: every view shows a cue."""
    for ident in members:
        bare = dataclasses.replace(ident, cues=())
        for view in INTENDED_VIEWS:
            for az, el in view_cameras(view):
                a = render(ident, az, el, size=SIZE, seed=3, background=False)
                b = render(bare, az, el, size=SIZE, seed=3, background=False)
                assert changed_pixels(a, b) >= MIN_CUE_PIXELS, (ident.identity_id, view, az, el)


@pytest.mark.parametrize("members", one_family_per_class(1), ids=lambda ms: ms[0].class_name)
def test_a_cue_shows_only_in_views_that_see_its_face(members) -> None:
    """Removing one face's cue leaves the views that cannot see that face unchanged (roof items aside)."""
    hidden = {"rear": ("front", 0.0, 20.0), "front": ("rear", 180.0, 20.0), "left": ("right", 270.0, 20.0),
              "right": ("left", 90.0, 20.0)}  # fmt: skip
    for ident in members:
        for face, (_, az, el) in hidden.items():
            without = dataclasses.replace(ident, cues=tuple(c for c in ident.cues if c.face != face))
            a = render(ident, az, el, size=SIZE, seed=4, background=False)
            assert np.array_equal(a.image, render(without, az, el, size=SIZE, seed=4, background=False).image)
        # Straight from above no vertical face shows.
        top_only = dataclasses.replace(ident, cues=tuple(c for c in ident.cues if c.face == "top"))
        a = render(ident, 0.0, 90.0, size=SIZE, seed=4, background=False)
        assert np.array_equal(a.image, render(top_only, 0.0, 90.0, size=SIZE, seed=4, background=False).image)


def render_same_camera(ident, az: float, el: float):
    """``ident`` through exactly the same camera, light and framing whatever its index (render() jitters by index)."""
    light = np.array([0.3, 0.4, 0.866])
    layer = render_vehicle(ident, az, el, SIZE, np.random.default_rng(11), 0.0, 0.8 * SIZE, None, light, 0.4)
    return layer.color, layer.labels


@pytest.mark.parametrize("members", one_family_per_class(2), ids=lambda ms: ms[0].class_name)
def test_siblings_look_different_from_every_view(members) -> None:
    for view in INTENDED_VIEWS:
        az, el = VIEW_ANGLES[view]
        renders = [render_same_camera(m, az, 80.0 if view == "top" else el) for m in members]
        # Same identity, same camera: identical.
        again = render_same_camera(members[0], az, 80.0 if view == "top" else el)
        assert np.array_equal(renders[0][0], again[0]) and np.array_equal(renders[0][1], again[1])
        for i in range(len(members)):
            for j in range(i + 1, len(members)):
                (ci, li), (cj, lj) = renders[i], renders[j]
                vehicle = (li > 0) | (lj > 0)
                differ = (np.abs(ci - cj).max(axis=-1) > 1e-6) | (li != lj)
                assert (differ & vehicle).sum() >= MIN_CUE_PIXELS, (
                    members[i].identity_id,
                    members[j].identity_id,
                    view,
                )


def test_family_attributes_round_trip() -> None:
    for index in (0, 5, 17, 10_003):
        ident = sample_identity(9, index, K)
        text = json.dumps(ident.attributes())
        attrs = json.loads(text)
        assert attrs["toyworld_family_size"] == K and attrs["family"] == f"fam{index // K:04d}"
        assert len(attrs["cues"]) == len(CUE_FACES)
        assert identity_from_attributes(text) == ident and identity_from_attributes(attrs) == ident
    # Classic attributes keep their keys; tampered family attributes are refused.
    assert "toyworld_family_size" not in sample_identity(9, 3).attributes()
    attrs = sample_identity(9, 3, K).attributes()
    attrs["cues"][0]["pattern"] = "band" if attrs["cues"][0]["pattern"] != "band" else "bars"
    with pytest.raises(ValueError, match="regenerate"):
        identity_from_attributes(attrs)


def test_bad_family_size_is_refused() -> None:
    for k in (0, -1, MAX_FAMILY_SIZE + 1):
        with pytest.raises(ValueError, match="family size must be in 1.."):
            sample_identity(0, 0, k)


def test_identity_names_grow_past_four_digits() -> None:
    assert sample_identity(0, 10_000, K).identity_id == "toy10000"
    assert sample_identity(0, 10_000, K).family == "fam2500"
