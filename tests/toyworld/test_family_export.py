"""``diffveri toy world --family-size K --first-index N``: family splits, disjoint offset worlds, VeRi meta file."""

from __future__ import annotations

import dataclasses
import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

import data_manifests as dm
from data_manifests import INTENDED_VIEWS
from data_manifests.rows import CAMERA_OF_VIEW
from pipeline.cli import main
from pipeline.toyworld import identity_from_attributes, nearest_view, sample_identity
from pipeline.toyworld.export import ToyworldSettings, build_toyworld

K = 2
FAMILY = ToyworldSettings(identities=8, images_per_identity=9, size=32, seed=5, detection_images=2, family_size=K)
OFFSET = dataclasses.replace(FAMILY, first_index=10_000)
CLASSIC = ToyworldSettings(identities=4, images_per_identity=3, size=32, seed=5, detection_images=2)
VERI_NAME = re.compile(r"^(\d+)_c(\d{3})_(\d{8})_0\.jpg$")


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for name, settings in (("family", FAMILY), ("offset", OFFSET), ("classic", CLASSIC)):
        out[name] = tmp_path_factory.mktemp(name)
        build_toyworld(out[name], settings, progress=False)
    return out


def veri_names(root: Path, folder: str) -> list[str]:
    return (root / "VeRi" / f"name_{folder}.txt").read_text().split()


def test_family_world_validates_and_rebuilds_its_identities(worlds: dict[str, Path]) -> None:
    for name in ("family", "offset"):
        world = worlds[name]
        assert dm.validate(world) == []
        for row in dm.read_rows(world, "subjects"):
            ident = identity_from_attributes(row["attributes"])
            assert ident.family_size == K and ident.identity_id == row["identity_id"]
            assert ident == sample_identity(FAMILY.seed, ident.index, K)


def test_split_is_by_family(worlds: dict[str, Path]) -> None:
    rows = dm.read_rows(worlds["family"], "diffveri")
    sides: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        family = f"fam{int(r['identity_id'][3:]) // K:04d}"
        sides[family].add("train" if r["split"] == "train" else "test")
    assert all(len(s) == 1 for s in sides.values()), sides
    assert sum(s == {"train"} for s in sides.values()) == round(FAMILY.identities // K * FAMILY.train_fraction)
    # The test gallery holds the queries' siblings (hard negatives).
    query_ids = {r["identity_id"] for r in rows if r["split"] == "query"}
    gallery_ids = {r["identity_id"] for r in rows if r["split"] == "gallery"}
    for identity in query_ids:
        index = int(identity[3:])
        assert {f"toy{(index // K) * K + m:04d}" for m in range(K)} <= gallery_ids


def test_offset_world_is_disjoint_and_deterministic(worlds: dict[str, Path], tmp_path: Path) -> None:
    base = {r["identity_id"] for r in dm.read_rows(worlds["family"], "subjects")}
    offset = {r["identity_id"] for r in dm.read_rows(worlds["offset"], "subjects")}
    assert offset == {f"toy{10_000 + i}" for i in range(FAMILY.identities)} and not base & offset
    base_families = {
        identity_from_attributes(r["attributes"]).family for r in dm.read_rows(worlds["family"], "subjects")
    }
    offset_families = {
        identity_from_attributes(r["attributes"]).family for r in dm.read_rows(worlds["offset"], "subjects")
    }
    assert not base_families & offset_families
    ids = [r["image_id"] for w in ("family", "offset") for r in dm.read_rows(worlds[w], "generations")]
    assert len(ids) == len(set(ids))
    # Vids above 9999 just get more digits; the VeRi reader parses them.
    from vehiclemae.reid.data import load_veri776

    split = load_veri776(worlds["offset"] / "VeRi")
    assert {s.pid for s in split.train + split.gallery} == {10_001 + i for i in range(FAMILY.identities)}
    # Same settings, another folder: the same images.
    build_toyworld(tmp_path, OFFSET, progress=False)
    for table in ("generations", "diffveri"):
        key = "image_id"
        again = sorted(dm.read_rows(tmp_path, table), key=lambda r: r[key])
        assert again == sorted(dm.read_rows(worlds["offset"], table), key=lambda r: r[key]), table


@pytest.mark.parametrize("name", ["family", "offset", "classic"])
def test_veri_meta_matches_the_layout(worlds: dict[str, Path], name: str) -> None:
    world = worlds[name]
    settings = {"family": FAMILY, "offset": OFFSET, "classic": CLASSIC}[name]
    meta = json.loads((world / "VeRi" / "toyworld_meta.json").read_text())
    assert set(meta) == {"format", "family_size", "images", "identities"}
    assert meta["format"] == "toyworld-veri-meta-v1" and meta["family_size"] == settings.family_size
    names = set(veri_names(world, "train")) | set(veri_names(world, "test"))
    assert set(meta["images"]) == names and set(veri_names(world, "query")) <= names
    vids = set()
    for file_name, info in meta["images"].items():
        vid, cam, _ = VERI_NAME.match(file_name).groups()
        vids.add(str(int(vid)))
        assert set(info) == {"view", "azimuth", "elevation"} and info["view"] in INTENDED_VIEWS
        assert CAMERA_OF_VIEW[info["view"]] == int(cam)
        assert isinstance(info["azimuth"], float) and isinstance(info["elevation"], float)
        assert nearest_view(info["azimuth"], info["elevation"]) == info["view"]
    assert set(meta["identities"]) == vids
    for vid, info in meta["identities"].items():
        assert set(info) == {"identity_id", "family", "class_name", "color_name", "dims"}
        index = int(vid) - 1
        ident = sample_identity(settings.seed, index, settings.family_size)
        assert info["identity_id"] == ident.identity_id == f"toy{index:04d}"
        family = f"fam{index // settings.family_size:04d}" if settings.family_size > 1 else ident.identity_id
        assert info["family"] == family
        assert (info["class_name"], info["color_name"]) == (ident.class_name, ident.color_name)
        assert info["dims"] == pytest.approx(list(ident.dims), abs=1e-4) and len(info["dims"]) == 3


def test_resume_refuses_another_family_size_or_first_index(worlds: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="family_size: 2 -> 1"):
        build_toyworld(worlds["family"], dataclasses.replace(FAMILY, family_size=1), progress=False)
    with pytest.raises(ValueError, match="first_index: 0 -> 4"):
        build_toyworld(worlds["family"], dataclasses.replace(FAMILY, first_index=4), progress=False)


def test_old_classic_world_settings_still_resume(tmp_path: Path) -> None:
    """A toyworld.json written before family_size/first_index existed resumes as the classic world."""
    small = ToyworldSettings(identities=2, images_per_identity=2, size=32, seed=1, detection_images=1)
    build_toyworld(tmp_path, small, progress=False)
    info = json.loads((tmp_path / "toyworld.json").read_text())
    del info["settings"]["family_size"], info["settings"]["first_index"]
    (tmp_path / "toyworld.json").write_text(json.dumps(info))
    assert build_toyworld(tmp_path, small, progress=False).rendered == 0


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--family-size", "2", "--first-index", "3"], "--first-index must be >= 0 and a multiple of --family-size 2"),
        (["--family-size", "0"], "family size must be in 1.."),
        (["--family-size", "99"], "family size must be in 1.."),
        (["--family-size", "4", "--identities", "6"], "--identities must be a multiple of --family-size 4"),
        (["--family-size", "4", "--identities", "4"], "at least two families"),
        (["--first-index", "-1"], "--first-index must be >= 0"),
    ],
)
def test_cli_reports_bad_family_flags(tmp_path: Path, capsys: pytest.CaptureFixture, flags, message) -> None:
    args = ["toy", "world", "--root", str(tmp_path / "w"), "--images-per-identity", "2", "--size", "32"]
    assert main([*args, "--no-progress", *flags]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_cli_builds_a_family_world(tmp_path: Path) -> None:
    args = ["toy", "world", "--root", str(tmp_path), "--identities", "4", "--images-per-identity", "2", "--size", "32"]
    assert main([*args, "--family-size", "2", "--first-index", "6", "--detection-images", "1", "--no-progress"]) == 0
    subjects = dm.read_rows(tmp_path, "subjects")
    assert sorted(r["identity_id"] for r in subjects) == ["toy0006", "toy0007", "toy0008", "toy0009"]
    assert {identity_from_attributes(r["attributes"]).family for r in subjects} == {"fam0003", "fam0004"}
