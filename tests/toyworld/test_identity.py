"""Toy identities: determinism, JSON round trip, hard-negative twins, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.toyworld import CLASSES, identity_from_attributes, sample_identity


def test_sample_identity_is_deterministic_and_named() -> None:
    a, b = sample_identity(3, 7), sample_identity(3, 7)
    assert a == b and hash(a) == hash(b)
    assert a.identity_id == "toy0007"
    assert a.class_name in CLASSES
    assert sample_identity(4, 7) != a  # another world


def test_attributes_round_trip_through_json() -> None:
    for index in range(40):
        ident = sample_identity(11, index)
        text = json.dumps(ident.attributes())
        attrs = json.loads(text)
        assert attrs["toyworld_seed"] == 11 and attrs["toyworld_index"] == index
        assert identity_from_attributes(text) == ident
        assert identity_from_attributes(attrs) == ident


def test_twins_share_body_and_differ_by_marks() -> None:
    twins = 0
    for index in range(0, 200, 2):
        a, b = sample_identity(0, index), sample_identity(0, index + 1)
        if a.twin_of is None:
            assert b.twin_of is None
            continue
        twins += 1
        assert a.twin_of == b.identity_id and b.twin_of == a.identity_id
        assert (a.class_name, a.dims, a.color_name, a.body_color) == (b.class_name, b.dims, b.color_name, b.body_color)
        assert a.marks() != b.marks()
    assert 15 <= twins <= 55  # TWIN_PROBABILITY = 0.35 of 100 pairs


def test_classes_all_occur() -> None:
    assert {sample_identity(0, i).class_name for i in range(200)} == set(CLASSES)


def test_identity_from_attributes_errors_name_the_fix() -> None:
    with pytest.raises(KeyError, match="toyworld_index"):
        identity_from_attributes({"toyworld_seed": 0})
    attrs = sample_identity(0, 1).attributes()
    attrs["class_name"] = "tractor"
    with pytest.raises(ValueError, match="regenerate"):
        identity_from_attributes(attrs)
    with pytest.raises(ValueError, match=">= 0"):
        sample_identity(0, -1)


def test_marks_sit_on_the_faces_they_belong_to() -> None:
    """Each identity mark is visible only from some views: its triangles carry the label of its face."""
    from data_manifests import VIEW_CLASSES_TOYWORLD as CLASSES_T
    from pipeline.toyworld.mesh import build_mesh

    def labels_of(mesh, color) -> set[str]:
        hit = np.all(np.isclose(mesh.colors, np.asarray(color, np.float32) / 255.0), axis=1)
        return {CLASSES_T[i] for i in mesh.labels[hit]}

    seen = set()
    for index in range(80):
        ident = sample_identity(5, index)
        mesh = build_mesh(ident)
        if ident.panel_side is not None:
            assert labels_of(mesh, ident.panel_color) == {ident.panel_side}
            seen.add("panel")
        if ident.stripe_color is not None:
            assert labels_of(mesh, ident.stripe_color) == {"left", "right"}
            seen.add("stripe")
        if ident.bumper_color != (40, 40, 42):
            assert labels_of(mesh, ident.bumper_color) == {"front"}
            seen.add("bumper")
        if ident.roof_color is not None:
            assert labels_of(mesh, ident.roof_color) == {"top"}
            seen.add("roof_color")
        for sticker in ident.stickers:
            assert labels_of(mesh, sticker.color) == {sticker.face}
            seen.add("sticker")
        if ident.wheel_color != (150, 150, 155):
            assert labels_of(mesh, ident.wheel_color) == {"left", "right"}
            seen.add("wheels")
    assert seen == {"panel", "stripe", "bumper", "roof_color", "sticker", "wheels"}
