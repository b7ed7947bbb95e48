"""``subjects import``: folder / VeRi-776 / VehicleID layouts, all-or-nothing validation, the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

import data_manifests as dm
from pipeline.cli import main as diffveri_main
from pipeline.generate.common import write_png
from pipeline.generate.subjects import (
    SubjectImportError,
    from_folder,
    from_vehicleid,
    from_veri776,
    import_subjects,
)

from .helpers import draw_vehicle, photo_folder


def test_folder_import_copies_photos_and_writes_valid_rows(tmp_path: Path) -> None:
    root = tmp_path / "root"
    n = import_subjects(root, from_folder(photo_folder(tmp_path), class_name="sedan", per_identity=2))
    assert n == 2
    rows = dm.read_rows(root, "subjects")
    assert [r["identity_id"] for r in rows] == ["car1", "car2"]
    for r in rows:
        assert r["class_name"] == "sedan" and r["source"] == "folder" and len(r["instance_images"]) == 2
        assert all((root / p).is_file() and p.startswith(f"subjects/{r['identity_id']}/") for p in r["instance_images"])
    assert len({r["token"] for r in rows}) == 2
    assert dm.validate(root) == []
    # Re-importing keeps tokens (DreamBooth adapters stay bound to them).
    import_subjects(root, from_folder(photo_folder(tmp_path), class_name="sedan", per_identity=2))
    assert {r["token"] for r in dm.read_rows(root, "subjects")} == {r["token"] for r in rows}


def test_unreadable_and_missing_photos_refuse_the_whole_import(tmp_path: Path) -> None:
    src = photo_folder(tmp_path)
    (src / "car2" / "1.png").write_bytes(b"garbage")
    root = tmp_path / "root"
    with pytest.raises(SubjectImportError) as err:
        import_subjects(root, from_folder(src))
    assert f"car2: instance image {src / 'car2' / '1.png'} is not a readable image" in str(err.value)
    assert "nothing written" in str(err.value)
    assert not dm.list_tables(root) and not (root / "subjects").exists()
    candidates = from_folder(photo_folder(tmp_path / "b"))
    candidates[0].files.append(tmp_path / "gone.png")
    with pytest.raises(SubjectImportError, match=f"car1: instance image {tmp_path / 'gone.png'} does not exist"):
        import_subjects(root, candidates)
    assert not dm.list_tables(root)


def test_duplicate_identity_ids_are_refused(tmp_path: Path) -> None:
    src = photo_folder(tmp_path, ids=("Car1", "car1"))
    with pytest.raises(SubjectImportError, match="'car1': duplicate identity id \\(also 'Car1'\\)"):
        import_subjects(tmp_path / "root", from_folder(src))
    assert not dm.list_tables(tmp_path / "root")


def test_veri776_layout_picks_k_per_identity_across_cameras(tmp_path: Path) -> None:
    veri = tmp_path / "VeRi"
    for vid in ("0001", "0002"):
        for cam in ("c001", "c002", "c003"):
            for frame in range(2):
                write_png(veri / "image_train" / f"{vid}_{cam}_0000{frame}_0.jpg", draw_vehicle(frame, 16))
    (veri / "train_label.xml").write_bytes(
        b'<?xml version="1.0" encoding="gb2312"?>\n<TrainingImages><Items number="1">'
        b'<Item imageName="0001_c001_00000_0.jpg" vehicleID="0001" cameraID="c001" colorID="5" typeID="2" />'
        b"</Items></TrainingImages>"
    )
    candidates = from_veri776(veri, per_identity=3, limit=1)
    assert len(candidates) == 1 and candidates[0].identity_id == "veri0001"
    assert len({f.name.split("_")[1] for f in candidates[0].files}) == 3  # one per camera
    root = tmp_path / "root"
    import_subjects(root, candidates)
    assert dm.read_rows(root, "subjects")[0]["source"] == "veri776"


def test_vehicleid_layout(tmp_path: Path) -> None:
    vid = tmp_path / "VehicleID_V1.0"
    lines = []
    for i in range(6):
        write_png(vid / "image" / f"{i:07d}.jpg", draw_vehicle(i, 16))
        lines.append(f"{i:07d} {i // 3 + 1}")
    (vid / "train_test_split").mkdir(parents=True)
    (vid / "train_test_split" / "train_list.txt").write_text("\n".join(lines) + "\n")
    candidates = from_vehicleid(vid, per_identity=2)
    assert [c.identity_id for c in candidates] == ["vid1", "vid2"] and all(len(c.files) == 2 for c in candidates)


def test_cli_import_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    src = photo_folder(tmp_path)
    assert (
        diffveri_main(["subjects", "import", "--root", str(root), "--from", "folder", str(src), "--identities", "1"])
        == 0
    )
    assert [r["identity_id"] for r in dm.read_rows(root, "subjects")] == ["car1"]
    assert diffveri_main(["subjects", "import", "--root", str(root), "--from", "veri776", str(tmp_path / "nope")]) == 2
    assert "image_train" in capsys.readouterr().err
