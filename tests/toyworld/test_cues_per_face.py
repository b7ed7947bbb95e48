"""``--cues-per-face C``: family-world vehicles with C individual cues on each face; C = 1 stays bit-identical."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from data_manifests import INTENDED_VIEWS
from pipeline.cli import main
from pipeline.toyworld import VIEW_ANGLES, identity_from_attributes, render, sample_identity
from pipeline.toyworld.export import ToyworldSettings, build_toyworld
from pipeline.toyworld.family import CUE_FACES, CUE_VARIANTS, MAX_CUES_PER_FACE, MAX_FAMILY_SIZE, ROOF_ITEMS

K = 4

# sha256 over the attributes and renders of six family-world identities, computed at the commit before
# cues_per_face existed: the default must not move a single pixel of existing worlds.
FAMILY_WORLD_PIN = "d1f8aa5c40f2225715b8782f33361765086b737045aa8a189a0abd85e95b2d7f"


def test_one_cue_per_face_is_the_world_as_it_was() -> None:
    digest = hashlib.sha256()
    for index in (0, 1, 2, 3, 37, 10_001):
        ident = sample_identity(0, index, K)
        digest.update(json.dumps(ident.attributes(), sort_keys=True).encode())
        for az, el in ((0.0, 20.0), (135.0, 25.0), (270.0, 10.0), (0.0, 80.0)):
            res = render(ident, az, el, size=48, seed=index, background=False)
            digest.update(res.image.tobytes())
            digest.update(res.labels.tobytes())
    assert digest.hexdigest() == FAMILY_WORLD_PIN
    assert sample_identity(0, 5, K, 1) == sample_identity(0, 5, K)
    assert "toyworld_cues_per_face" not in sample_identity(0, 5, K).attributes()


@pytest.mark.parametrize("c", [2, 3])
def test_every_face_carries_c_distinct_cues_and_siblings_share_none(c: int) -> None:
    for f in range(40):
        members = [sample_identity(3, f * K + m, K, c) for m in range(K)]
        for m in members:
            assert m.cues_per_face == c
            assert [cue.face for cue in m.cues] == [face for face in CUE_FACES for _ in range(c)]
            assert all((cue.pattern, cue.slot) in CUE_VARIANTS[cue.face] for cue in m.cues)
        for face in CUE_FACES:
            variants = [(cue.pattern, cue.slot) for m in members for cue in m.cues if cue.face == face]
            assert len(variants) == len(set(variants)) == K * c, (f, face)  # within a member and across siblings


def test_more_cues_keep_the_first_and_add_to_it() -> None:
    """The first cue of each face (pattern, slot and tone) is the one-cue world's: C only adds cues."""
    for index in range(0, 200, 7):
        one = sample_identity(1, index, K)
        for c in (2, 3):
            more = sample_identity(1, index, K, c)
            assert more.cues[::c] == one.cues
            assert (more.class_name, more.dims, more.body_color) == (one.class_name, one.dims, one.body_color)


def test_attributes_round_trip_and_tampering_is_refused() -> None:
    ident = sample_identity(9, 10_003, K, 2)
    attrs = json.loads(json.dumps(ident.attributes()))
    assert attrs["toyworld_cues_per_face"] == 2 and len(attrs["cues"]) == 2 * len(CUE_FACES)
    assert identity_from_attributes(attrs) == ident
    attrs["cues"][1]["color"] = [1, 2, 3]  # the second cue of the front, as another version might have drawn it
    with pytest.raises(ValueError, match="regenerate"):
        identity_from_attributes(attrs)


@pytest.mark.parametrize(
    ("k", "c", "message"),
    [
        (K, 0, "cues per face must be in 1.."),
        (K, MAX_CUES_PER_FACE + 1, "cues per face must be in 1.."),
        (1, 2, "needs the family world"),
        (8, 2, f"family size x cues per face must be at most {MAX_FAMILY_SIZE}"),
    ],
)
def test_bad_cues_per_face_is_refused(k: int, c: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sample_identity(0, 0, k, c)
    with pytest.raises(ValueError, match=message):
        ToyworldSettings(identities=4 * k, family_size=k, cues_per_face=c).validate()


def test_a_second_cue_changes_every_view_and_stays_behind_the_tyres() -> None:
    """Each view of a two-cue vehicle differs from its one-cue self; the side cues sit closer to the body than the
    tyres, so no tyre pixel changes (wheels keep their label and colour)."""
    checked = 0
    for index in range(0, 60, 5):
        one, two = sample_identity(2, index, K), sample_identity(2, index, K, 2)
        if any(cue.pattern in ROOF_ITEMS for cue in two.cues[1::2]):
            continue  # an extra roof item is geometry: it changes the silhouette and the framing
        checked += 1
        for view in INTENDED_VIEWS:
            az, el = VIEW_ANGLES[view]
            el = 80.0 if view == "top" else el
            a = render(one, az, el, size=64, seed=1, background=False)
            b = render(two, az, el, size=64, seed=1, background=False)
            # Decals change colours, not the vehicle (a lifted decal may tip a few edge pixels to its face).
            assert (a.labels != b.labels).sum() <= 0.01 * (a.labels > 0).sum(), (index, view)
            assert (a.image != b.image).any(axis=-1).sum() > 0, (index, view)
    assert checked >= 6
    # Rendering the extra cues alone on a bare body shows where they are: never over a tyre.
    ident = sample_identity(2, 0, K, 2)
    bare = dataclasses.replace(ident, cues=())
    for az in (90.0, 270.0):
        a = render(bare, az, 10.0, size=96, seed=2, background=False)
        b = render(ident, az, 10.0, size=96, seed=2, background=False)
        tyre = (a.image.max(axis=-1) < 40) & (a.labels > 0)  # the dark tyre rubber
        assert np.array_equal(a.image[tyre], b.image[tyre])


def test_world_export_keeps_the_setting_and_refuses_to_mix(tmp_path: Path) -> None:
    settings = ToyworldSettings(
        identities=8, images_per_identity=9, size=32, seed=5, detection_images=2, family_size=K, cues_per_face=2
    )
    build_toyworld(tmp_path, settings, progress=False)
    info = json.loads((tmp_path / "toyworld.json").read_text())
    assert info["settings"]["cues_per_face"] == 2
    with pytest.raises(ValueError, match="cues_per_face: 2 -> 1"):
        build_toyworld(tmp_path, dataclasses.replace(settings, cues_per_face=1), progress=False)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--family-size", "8", "--identities", "16", "--cues-per-face", "2"], "must be at most 15"),
        (["--cues-per-face", "2"], "needs the family world"),
        (["--family-size", "4", "--identities", "8", "--cues-per-face", "4"], "cues per face must be in 1..3"),
    ],
)
def test_cli_reports_bad_cues_per_face(tmp_path: Path, capsys: pytest.CaptureFixture[str], flags, message) -> None:
    args = ["toy", "world", "--root", str(tmp_path / "w"), "--images-per-identity", "2", "--size", "32"]
    assert main([*args, "--no-progress", *flags]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "w").exists()
