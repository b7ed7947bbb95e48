"""Issue #19 items 3 and 10: a lost, emptied or hostile ``_current.json`` never wipes a table or deletes a file
outside it, ``diffveri manifests repair`` rebuilds it; flipped bytes in a part are detected on read and by validate.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import data_manifests as dm
from data_manifests import store
from pipeline.cli import main as diffveri
from tests.data_manifests.rows import example_row

from .manifest_tools import flip_data_page_byte


def _four_batches(root: Path) -> list[dict]:
    """Reviews from four annotators' batches, each committed on its own (four parts)."""
    for batch in range(4):
        dm.upsert(root, "reviews", [dict(example_row("reviews", i), batch_id=f"b{batch}") for i in range(3)])
    return sorted(dm.read_rows(root, "reviews"), key=lambda r: (r["batch_id"], r["image_id"]))


def _pointer(root: Path) -> Path:
    return store.table_dir(root, "reviews") / store.POINTER


def _parts(root: Path) -> list[str]:
    return sorted(p.name for p in store.table_dir(root, "reviews").glob("part-*.parquet"))


POINTER_DAMAGE = {
    "missing": lambda path: path.unlink(),
    "no parts": lambda path: path.write_text(json.dumps({"schema_version": 1, "parts": []})),
    "zero bytes": lambda path: path.write_text(""),
    "a list": lambda path: path.write_text("[]"),
    "no parts key": lambda path: path.write_text(json.dumps({"schema_version": 1})),
}


@pytest.mark.parametrize("damage", list(POINTER_DAMAGE))
def test_a_lost_pointer_refuses_writes_and_reads_and_repair_restores_every_row(
    tmp_path: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _four_batches(tmp_path)
    parts = _parts(tmp_path)
    POINTER_DAMAGE[damage](_pointer(tmp_path))
    # 1. The next write is refused and deletes nothing (it used to commit over an empty table and delete all parts).
    with pytest.raises(dm.ManifestError, match="diffveri manifests repair"):
        dm.upsert(tmp_path, "reviews", [dict(example_row("reviews", 9), batch_id="b9")])
    with pytest.raises(dm.ManifestError, match="diffveri manifests repair"):
        dm.delete_rows(tmp_path, "reviews", [("g0", "b0")])
    assert _parts(tmp_path) == parts
    # 2. Reading does not pretend the table is empty, even with missing_ok.
    with pytest.raises(dm.ManifestError):
        dm.read_table(tmp_path, "reviews", missing_ok=True)
    # 3. Validate reports it (exit 1) ...
    problems = dm.validate(tmp_path, check_files=False)
    assert [p.kind for p in problems if p.table == "reviews"] == ["pointer"]
    assert diffveri(["manifests", "validate", str(tmp_path), "--no-files"]) == 1
    assert "repair" in capsys.readouterr().out
    # 4. ... and repair, confirmed with --yes, rebuilds the pointer from the parts: every batch is back.
    assert diffveri(["manifests", "repair", str(tmp_path), "--table", "reviews", "--yes"]) == 0
    after = sorted(dm.read_rows(tmp_path, "reviews"), key=lambda r: (r["batch_id"], r["image_id"]))
    assert after == before
    assert dm.validate(tmp_path, check_files=False, warnings=True) == []


def test_repair_asks_first_and_changes_nothing_without_confirmation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _four_batches(tmp_path)
    _pointer(tmp_path).unlink()
    assert diffveri(["manifests", "repair", str(tmp_path)]) == 2  # stdin is not a terminal: no answer, no change
    err = capsys.readouterr()
    assert "rebuild the pointer from 4 part(s) with 12 row(s)" in err.out
    assert "not confirmed; nothing was changed" in err.err and "Traceback" not in err.err
    assert not _pointer(tmp_path).exists()


def test_repair_keeps_the_newest_row_of_a_key_and_sets_damaged_parts_aside(tmp_path: Path) -> None:
    dm.upsert(tmp_path, "reviews", [dict(example_row("reviews", i), notes="old") for i in range(3)])
    directory = store.table_dir(tmp_path, "reviews")
    (old_part,) = _parts(tmp_path)
    old_bytes, pointer_before = (directory / old_part).read_bytes(), _pointer(tmp_path).read_bytes()
    dm.upsert(tmp_path, "reviews", [dict(example_row("reviews", 0), notes="new")])
    # As if the second write had crashed before deleting the part it superseded, then the pointer was lost.
    (directory / old_part).write_bytes(old_bytes)
    os.utime(directory / old_part, (1_000_000, 1_000_000))  # older than the parts that replaced it
    _pointer(tmp_path).unlink()
    (directory / "part-garbage.parquet").write_bytes(b"not parquet")
    plan = dm.plan_repair(tmp_path, "reviews")
    assert plan.action == "rebuild" and plan.damaged == ["part-garbage.parquet"] and plan.duplicates == 3
    dm.apply_repair(tmp_path, plan)
    rows = {r["image_id"]: r["notes"] for r in dm.read_rows(tmp_path, "reviews")}
    assert rows == {"g0": "new", "g1": "old", "g2": "old"}
    assert (directory / "damaged-part-garbage.parquet").is_file()  # set aside, not deleted
    assert pointer_before  # the old pointer content is not needed: the parts alone rebuild the table


def test_a_pointer_naming_a_path_outside_the_table_is_refused_and_the_file_survives(tmp_path: Path) -> None:
    root = tmp_path / "data"
    _four_batches(root)
    victim = tmp_path / "victim.parquet"
    victim.write_bytes(b"someone else's file")
    pointer = json.loads(_pointer(root).read_text())
    pointer["parts"].append("../../../victim.parquet")
    _pointer(root).write_text(json.dumps(pointer))
    with pytest.raises(dm.ManifestError, match="not a part file of this folder"):
        dm.upsert(root, "reviews", [dict(example_row("reviews", 9), batch_id="b9")])
    with pytest.raises(dm.ManifestError, match="not a part file of this folder"):
        dm.read_table(root, "reviews")
    assert victim.read_bytes() == b"someone else's file"
    assert [p.kind for p in dm.validate(root, check_files=False)] == ["pointer"]
    dm.apply_repair(root, dm.plan_repair(root, "reviews"))
    assert dm.read_table(root, "reviews").num_rows == 12 and victim.is_file()


def test_an_emptied_table_still_lists_a_part_so_a_lost_pointer_is_never_mistaken_for_it(tmp_path: Path) -> None:
    dm.upsert(tmp_path, "reviews", [example_row("reviews", 0)])
    assert dm.delete_rows(tmp_path, "reviews", [("g0", "b0")]) == 1
    assert dm.read_table(tmp_path, "reviews").num_rows == 0
    assert len(json.loads(_pointer(tmp_path).read_text())["parts"]) == 1
    dm.upsert(tmp_path, "reviews", [example_row("reviews", 1)])  # and writing on goes on as before
    assert dm.read_table(tmp_path, "reviews").num_rows == 1


# ----------------------------------------------------------------------------------------------------------- bit rot
def test_flipped_bytes_in_a_part_are_refused_on_read_and_reported_by_validate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dm.upsert(tmp_path, "generations", [example_row("generations", i) for i in range(50)])
    (part,) = store.part_paths(tmp_path, "generations")
    pointer = json.loads((part.parent / store.POINTER).read_text())
    assert pointer["sha256"][part.name] == dm.sha256_file(part)
    flip_data_page_byte(part)
    # On read: the Parquet page checksum does not match (it used to return garbage values).
    with pytest.raises(dm.ManifestError, match=f"{part.name}: the part file is damaged"):
        dm.read_table(tmp_path, "generations")
    # In validate: the sha256 recorded in the pointer does not match.
    problems = dm.validate(tmp_path, check_files=False)
    assert ("generations", "checksum", part.name) in {(p.table, p.kind, p.column) for p in problems}
    assert diffveri(["manifests", "validate", str(tmp_path), "--no-files"]) == 1
    assert "differ from the sha256 recorded" in capsys.readouterr().out
    # A write that would have to rewrite that part refuses too, instead of copying garbage forward.
    with pytest.raises(dm.ManifestError, match="damaged"):
        dm.upsert(tmp_path, "generations", [example_row("generations", 3)])
    # Repair does not pretend to fix it.
    with pytest.raises(dm.ManifestError, match="restore them from a backup"):
        dm.plan_repair(tmp_path, "generations")


def test_validate_catches_a_flip_anywhere_in_the_file(tmp_path: Path) -> None:
    dm.upsert(tmp_path, "subjects", [example_row("subjects", i) for i in range(5)])
    (part,) = store.part_paths(tmp_path, "subjects")
    for offset in (4, part.stat().st_size // 2, part.stat().st_size - 12):  # header magic, middle, footer
        data = bytearray(part.read_bytes())
        data[offset] ^= 0x01
        part.write_bytes(bytes(data))
        kinds = {p.kind for p in dm.validate(tmp_path, check_files=False)}
        assert "checksum" in kinds
        data[offset] ^= 0x01
        part.write_bytes(bytes(data))
    assert dm.validate(tmp_path, check_files=False) == []


def test_old_pointers_without_checksums_still_load_and_validate_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dm.upsert(tmp_path, "subjects", [example_row("subjects", i) for i in range(3)])
    pointer_path = store.table_dir(tmp_path, "subjects") / store.POINTER
    pointer = json.loads(pointer_path.read_text())
    del pointer["sha256"]
    pointer_path.write_text(json.dumps(pointer))  # the format before checksums
    (part,) = store.part_paths(tmp_path, "subjects")
    pq.write_table(pq.read_table(part), part)  # and a part without page checksums
    assert dm.read_table(tmp_path, "subjects").num_rows == 3
    assert dm.validate(tmp_path, check_files=False) == []  # not an error ...
    warnings = dm.validate(tmp_path, check_files=False, warnings=True)
    assert [w.kind for w in warnings] == ["no_checksum"]  # ... but said
    assert diffveri(["manifests", "validate", str(tmp_path), "--no-files"]) == 0
    assert "no recorded sha256" in capsys.readouterr().out
    dm.upsert(tmp_path, "subjects", [example_row("subjects", 7)])  # writing on keeps the old part unhashed
    assert [w.kind for w in dm.validate(tmp_path, check_files=False, warnings=True)] == ["no_checksum"]
    assert diffveri(["manifests", "repair", str(tmp_path), "--yes"]) == 0  # records them
    assert dm.validate(tmp_path, check_files=False, warnings=True) == []


def test_a_full_disk_is_one_line_from_diffveri_and_leaves_no_temp_file(tmp_path, capsys, monkeypatch) -> None:
    import errno
    import os

    from pipeline.cli import main as diffveri
    from pipeline.generate.common import write_png
    from tests.generate.helpers import draw_vehicle

    src = tmp_path / "src" / "toy0001"
    src.mkdir(parents=True)
    write_png(src / "a.png", draw_vehicle(1, 24))

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    root = tmp_path / "root"
    code = diffveri(["subjects", "import", "--root", str(root), "--from", "folder", str(tmp_path / "src")])
    err = capsys.readouterr().err.strip()
    # One error line (after the progress bars, which tqdm ends with "\r" updates on their own lines).
    messages = [line for line in err.replace("\r", "\n").splitlines() if line and "%|" not in line]
    assert code == 2 and "No space left on device" in err and "Traceback" not in err and len(messages) == 1
    assert not [p for p in root.rglob("*") if ".tmp" in p.name]
    assert not [p for p in root.rglob("*") if p.is_file()]  # no photo, no manifest part
