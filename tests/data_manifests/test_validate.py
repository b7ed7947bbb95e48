from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

import data_manifests as dm
from data_manifests import store

from .rows import example_row


def _valid_root(root: Path) -> None:
    for i in range(3):
        (root / "img").mkdir(parents=True, exist_ok=True)
        (root / "img" / f"{i}.png").write_bytes(b"x")
        (root / "lora").mkdir(exist_ok=True)
        (root / "lora" / f"{i}.safetensors").write_bytes(b"x")
    for table in ("subjects", "dreambooth", "generations", "detections", "reviews", "segments", "diffveri"):
        dm.write_table(root, table, [example_row(table, i) for i in range(3)])


def test_valid_root_has_no_problems(tmp_path: Path) -> None:
    _valid_root(tmp_path)
    assert dm.validate(tmp_path) == []


def _bypass_write(root: Path, table: str, rows: list[dict]) -> None:
    """Write rows the checked writer would refuse, as a buggy external tool might."""
    spec = dm.get_spec(table)
    relaxed = pa.schema([f.with_nullable(True) for f in spec.schema])
    arrow = pa.Table.from_pylist(rows, schema=relaxed)
    directory = store.table_dir(root, table)
    directory.mkdir(parents=True, exist_ok=True)
    pointer = store._read_pointer(directory)
    sums = dict(pointer["sha256"])
    name = store._write_part(directory, spec, arrow, sums)
    store._commit(directory, pointer["parts"] + [name], sums, pointer["parts"])


def test_validate_reports_every_kind_of_problem(tmp_path: Path) -> None:
    _valid_root(tmp_path)
    (tmp_path / "img" / "2.png").unlink()  # missing file referenced by 3 tables
    _bypass_write(
        tmp_path,
        "generations",
        [
            example_row("generations", 0),  # duplicate key g0
            dict(example_row("generations", 5), identity_id="nobody", status="done", path=None),
        ],
    )
    _bypass_write(tmp_path, "detections", [example_row("detections", 8)])  # g8 has no generation
    _bypass_write(tmp_path, "segments", [dict(example_row("segments", 9), view_fractions=[1.0])])
    problems = dm.validate(tmp_path)
    kinds = {(p.table, p.kind) for p in problems}
    assert ("generations", "duplicate_key") in kinds
    assert ("generations", "enum") in kinds
    assert ("generations", "foreign_key") in kinds
    assert ("detections", "foreign_key") in kinds
    assert ("segments", "shape") in kinds
    assert {("subjects", "missing_file"), ("generations", "missing_file"), ("diffveri", "missing_file")} <= kinds
    enum = next(p for p in problems if p.kind == "enum")
    assert enum.key == "g5" and enum.column == "status" and "'ok'" in enum.hint
    fk = next(p for p in problems if p.table == "detections" and p.kind == "foreign_key")
    assert fk.key == "g8" and "generations" in fk.message
    missing = next(p for p in problems if p.table == "generations" and p.kind == "missing_file")
    assert missing.key == "g2" and missing.column == "path" and "img/2.png" in missing.message
    text = dm.summarize(problems)
    assert "generations[g5].status" in text and "problem(s)" in text
    assert dm.validate(tmp_path, check_files=False) and not any(
        p.kind == "missing_file" for p in dm.validate(tmp_path, check_files=False)
    )


def test_validate_reports_null_required_and_wrong_version(tmp_path: Path) -> None:
    _bypass_write(tmp_path, "subjects", [dict(example_row("subjects"), class_name=None)])
    dm.write_table(tmp_path, "diffveri", [example_row("diffveri")])
    (part,) = store.part_paths(tmp_path, "diffveri")
    pq.write_table(pq.read_table(part).replace_schema_metadata({}), part)
    problems = dm.validate(tmp_path, check_files=False)
    assert any(p.table == "subjects" and p.kind == "null" and p.column == "class_name" for p in problems)
    assert any(p.table == "diffveri" and p.kind == "schema" and "schema version" in p.message for p in problems)


def test_stats(tmp_path: Path) -> None:
    _valid_root(tmp_path)
    dm.upsert(tmp_path, "detections", [dict(example_row("detections", 1), status="rejected", reason="too_small")])
    counts = dm.status_counts(tmp_path, "detections")
    assert counts == {"ok": 2, "rejected/too_small": 1}
    row = dm.dataset_row(tmp_path)
    assert row["images"] == 3 and row["identities"] == 3 and row["mean_height"] == 64.0
    assert row["views"] == {"front": 3} and row["multi_view_annotations"] == 3
