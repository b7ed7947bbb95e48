from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import data_manifests as dm
from data_manifests import store

from .rows import example_row


@pytest.mark.parametrize("table", sorted(dm.TABLES))
def test_round_trip_every_schema(tmp_path: Path, table: str) -> None:
    rows = [example_row(table, i) for i in range(3)]
    dm.write_table(tmp_path, table, rows)
    back = dm.read_rows(tmp_path, table)
    assert len(back) == 3
    for sent, got in zip(rows, back):
        for column, value in sent.items():
            if isinstance(value, float):
                assert got[column] == pytest.approx(value)
            else:
                assert got[column] == value, column
    # the version is in the Parquet footer of every part
    for path in store.part_paths(tmp_path, table):
        assert pq.read_schema(path).metadata[b"data_manifests.schema_version"] == b"1"


def test_upsert_is_idempotent_and_replaces_by_key(tmp_path: Path) -> None:
    rows = [example_row("generations", i) for i in range(10)]
    assert dm.upsert(tmp_path, "generations", rows) == dm.UpsertResult(inserted=10, updated=0)
    assert dm.upsert(tmp_path, "generations", rows) == dm.UpsertResult(inserted=0, updated=10)
    changed = [dict(r, status="failed", reason="exception", message="boom") for r in rows[:3]]
    new = [example_row("generations", 99)]
    assert dm.upsert(tmp_path, "generations", changed + new) == dm.UpsertResult(inserted=1, updated=3)
    table = dm.read_table(tmp_path, "generations")
    assert table.num_rows == 11
    assert sorted(table.column("image_id").to_pylist()) == sorted([f"g{i}" for i in range(10)] + ["g99"])
    failed = dm.read_table(tmp_path, "generations", filter=pc.field("status") == "failed")
    assert sorted(failed.column("image_id").to_pylist()) == ["g0", "g1", "g2"]


def test_composite_key_upsert(tmp_path: Path) -> None:
    a = example_row("reviews", 1)
    b = dict(a, batch_id="b1", decision="reject")
    dm.upsert(tmp_path, "reviews", [a, b])
    dm.upsert(tmp_path, "reviews", [dict(a, decision="unsure")])
    rows = {(r["image_id"], r["batch_id"]): r["decision"] for r in dm.read_rows(tmp_path, "reviews")}
    assert rows == {("g1", "b0"): "unsure", ("g1", "b1"): "reject"}
    assert dm.existing_keys(tmp_path, "reviews") == {"g1\x1fb0", "g1\x1fb1"}


def test_duplicate_keys_in_input_are_rejected(tmp_path: Path) -> None:
    row = example_row("generations")
    with pytest.raises(dm.ManifestError, match="duplicate key"):
        dm.upsert(tmp_path, "generations", [row, row])
    assert not dm.table_exists(tmp_path, "generations")


def test_writer_errors_name_column_and_row(tmp_path: Path) -> None:
    with pytest.raises(dm.ManifestError, match="unknown column.*'colour'"):
        dm.upsert(tmp_path, "generations", [dict(example_row("generations"), colour="red")])
    with pytest.raises(dm.ManifestError, match=r"status='done'"):
        dm.upsert(tmp_path, "generations", [dict(example_row("generations"), status="done")])
    with pytest.raises(dm.ManifestError, match="'identity_id' is required but row 1"):
        dm.upsert(
            tmp_path,
            "generations",
            [example_row("generations", 0), dict(example_row("generations", 1), identity_id=None)],
        )
    with pytest.raises(dm.ManifestError, match="view_classes='sideways'"):
        dm.upsert(tmp_path, "segments", [dict(example_row("segments"), view_classes=["background", "sideways"])])
    assert dm.list_tables(tmp_path) == []


def test_missing_table_error_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="run the stage that writes it"):
        dm.read_table(tmp_path, "detections")
    assert dm.read_table(tmp_path, "detections", missing_ok=True).num_rows == 0
    with pytest.raises(KeyError, match="valid tables"):
        dm.read_table(tmp_path, "detection")


def test_pandas_round_trip(tmp_path: Path) -> None:
    rows = [example_row("detections", i) for i in range(4)]
    dm.write_table(tmp_path, "detections", rows)
    frame = dm.read_table(tmp_path, "detections").to_pandas()
    dm.write_table(tmp_path, "detections", frame)
    assert dm.read_rows(tmp_path, "detections")[2]["bbox"] == pytest.approx([1.0, 2.0, 30.0, 40.0])


def test_schema_version_is_checked_on_read(tmp_path: Path) -> None:
    dm.write_table(tmp_path, "subjects", [example_row("subjects")])
    (path,) = store.part_paths(tmp_path, "subjects")
    table = pq.read_table(path)
    pq.write_table(table.replace_schema_metadata({b"data_manifests.schema_version": b"0"}), path)
    with pytest.raises(dm.SchemaVersionError, match="schema version 0, expected 1"):
        dm.read_table(tmp_path, "subjects")


def _crash_during_write(root: str, stage: str) -> None:
    """Child process: start an upsert and SIGKILL itself at ``stage`` of the commit protocol."""
    real_replace = os.replace

    def replace(src, dst):  # noqa: ANN001
        is_pointer = str(dst).endswith(store.POINTER)
        if stage == "before_part_rename" and not is_pointer:
            os.kill(os.getpid(), signal.SIGKILL)
        if stage == "before_pointer_rename" and is_pointer:
            os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(src, dst)

    os.replace = replace
    rows = [dict(example_row("generations", i), status="failed", reason="exception") for i in range(5)]
    dm.upsert(root, "generations", rows + [example_row("generations", 50)])


@pytest.mark.parametrize("stage", ["before_part_rename", "before_pointer_rename"])
def test_crash_mid_write_leaves_previous_state(tmp_path: Path, stage: str) -> None:
    dm.upsert(tmp_path, "generations", [example_row("generations", i) for i in range(5)])
    before = dm.read_table(tmp_path, "generations").sort_by("image_id")
    proc = mp.get_context("fork").Process(target=_crash_during_write, args=(str(tmp_path), stage))
    proc.start()
    proc.join(60)
    assert proc.exitcode == -signal.SIGKILL
    after = dm.read_table(tmp_path, "generations").sort_by("image_id")
    assert after.equals(before)
    assert dm.validate(tmp_path, check_files=False) == []
    # the next write succeeds and cleans the stray temporary files
    dm.upsert(tmp_path, "generations", [example_row("generations", 7)])
    assert dm.read_table(tmp_path, "generations").num_rows == 6
    assert not list((tmp_path / "manifests" / "generations").glob(".tmp-*"))
    pointer = json.loads((tmp_path / "manifests" / "generations" / store.POINTER).read_text())
    on_disk = sorted(p.name for p in (tmp_path / "manifests" / "generations").glob("part-*.parquet"))
    assert sorted(pointer["parts"]) == on_disk


def _upsert_shard(root: str, shard: int) -> None:
    dm.upsert(root, "generations", [example_row("generations", shard * 100 + i) for i in range(20)])


def test_concurrent_writers_do_not_lose_rows(tmp_path: Path) -> None:
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_upsert_shard, args=(str(tmp_path), s)) for s in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert dm.read_table(tmp_path, "generations").num_rows == 80


def test_delete_rows(tmp_path: Path) -> None:
    dm.upsert(tmp_path, "reviews", [example_row("reviews", i) for i in range(3)])
    assert dm.delete_rows(tmp_path, "reviews", [("g1", "b0")]) == 1
    assert sorted(r["image_id"] for r in dm.read_rows(tmp_path, "reviews")) == ["g0", "g2"]
