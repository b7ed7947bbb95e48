"""The segment stage: valid manifests, resume, problems recorded per row, clear errors."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from data_manifests import read_rows, to_arrow, upsert, validate
from data_manifests.store import table_dir
from pipeline.segment.data import make_segment_row
from pipeline.segment.infer import run_stage, segment_images

from .helpers import pipeline_root, save_tiny_checkpoint


def _config(checkpoint, **extra):
    return {"segment": {"checkpoint": str(checkpoint), "batch_size": 2, "flush_every": 3, **extra}}


def test_stage_writes_one_valid_row_per_image_and_resumes(tmp_path, caplog):
    ids = pipeline_root(tmp_path, identities=3, images=2)
    checkpoint = tmp_path / "models" / "sam.pt"
    sha = save_tiny_checkpoint(checkpoint)
    result = run_stage(_config(checkpoint), tmp_path, None)
    assert "treating all 6 kept detections as accepted" in caplog.text
    rows = read_rows(tmp_path, "segments")
    assert sorted(r["image_id"] for r in rows) == sorted(ids)
    assert result.counts["processed"] + result.counts["rejected"] == 6 and result.counts["failed"] == 0
    assert not validate(tmp_path, check_files=True)
    for row in rows:
        assert row["segmenter_ref"] == f"sam:{sha}"
        assert row["view_classes"] == ["background", "front", "rear", "side", "top"]
        assert len(row["view_rles"]) == 5 and row["vehicle_rle"]["size"] == [64, 64]
        if row["status"] == "ok":
            assert abs(sum(row["view_fractions"]) - 1) < 1e-5 and row["dominant_view"] != "background"
        else:
            assert row["reason"] == "empty_mask"
    # Resume: a second run finds nothing new to do and leaves the rows alone.
    ok_before = {r["image_id"] for r in rows if r["status"] == "ok"}
    again = run_stage(_config(checkpoint), tmp_path, None)
    assert again.counts["skipped"] == len(ok_before)
    assert again.counts["processed"] + again.counts["rejected"] == 6 - len(ok_before)
    assert len(read_rows(tmp_path, "segments")) == 6


def test_problems_become_failed_rows(tmp_path):
    ids = pipeline_root(tmp_path, identities=2, images=2)
    checkpoint = tmp_path / "sam.pt"
    save_tiny_checkpoint(checkpoint)
    gens = {g["image_id"]: g for g in read_rows(tmp_path, "generations")}
    (tmp_path / gens[ids[0]]["path"]).unlink()  # missing file
    (tmp_path / gens[ids[1]]["path"]).write_bytes(b"garbage")  # unreadable
    upsert(tmp_path, "detections", [{"image_id": ids[2], "bbox": None, "status": "ok"}])  # no box
    upsert(tmp_path, "detections", [{"image_id": ids[3], "bbox": [70, 70, 90, 90], "status": "ok"}])  # off image
    counts = segment_images(root=tmp_path, checkpoint=checkpoint)
    assert counts["failed"] == 4
    rows = {r["image_id"]: r for r in read_rows(tmp_path, "segments")}
    assert rows[ids[0]]["reason"] == "missing_file" and "does not exist" in rows[ids[0]]["message"]
    assert rows[ids[1]]["reason"] == "unreadable_image"
    assert rows[ids[2]]["reason"] == "no_box" and rows[ids[3]]["reason"] == "no_box"
    assert all(rows[i]["status"] == "failed" for i in ids[:4])


def test_only_kept_and_accepted_images_are_segmented(tmp_path):
    ids = pipeline_root(tmp_path, identities=2, images=2)
    checkpoint = tmp_path / "sam.pt"
    save_tiny_checkpoint(checkpoint)
    upsert(tmp_path, "detections", [{"image_id": ids[0], "status": "rejected", "reason": "no_vehicle"}])
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    upsert(
        tmp_path,
        "reviews",
        [{"image_id": i, "batch_id": "b0", "decision": d, "reviewed_at": now, "status": "ok"}
         for i, d in zip(ids, ["accept", "reject", "accept", "accept"])],
    )  # fmt: skip
    counts = segment_images(root=tmp_path, checkpoint=checkpoint, identities=None)
    assert counts["not_kept"] == 1 and counts["not_accepted"] == 1
    assert {r["image_id"] for r in read_rows(tmp_path, "segments")} == {ids[2], ids[3]}


def test_identities_filter(tmp_path):
    pipeline_root(tmp_path, identities=2, images=2)
    checkpoint = tmp_path / "sam.pt"
    save_tiny_checkpoint(checkpoint)
    gens = read_rows(tmp_path, "generations")
    first = gens[0]["identity_id"]
    segment_images(root=tmp_path, checkpoint=checkpoint, identities=[first])
    expected = {g["image_id"] for g in gens if g["identity_id"] == first}
    assert {r["image_id"] for r in read_rows(tmp_path, "segments")} == expected


def test_missing_checkpoint_and_tables_are_clear_errors(tmp_path):
    pipeline_root(tmp_path, identities=1, images=1)
    with pytest.raises(FileNotFoundError, match="segment finetune"):
        run_stage(_config(tmp_path / "missing.pt"), tmp_path, None)
    import shutil

    shutil.rmtree(table_dir(tmp_path, "detections"))
    with pytest.raises(FileNotFoundError, match="detections"):
        run_stage(_config(tmp_path / "missing.pt"), tmp_path, None)
    with pytest.raises(ValueError, match="unknown key"):
        run_stage({"segment": {"batchsize": 3}}, tmp_path, None)


def test_empty_mask_row_is_rejected():
    row = make_segment_row("x", [0, 0, 4, 4], np.zeros((4, 4), bool), np.zeros((4, 4), np.int64),
                           ("background", "front"), "sam:abc")  # fmt: skip
    assert row["status"] == "rejected" and row["reason"] == "empty_mask" and row["dominant_view"] is None
    assert to_arrow("segments", [row]).num_rows == 1  # schema-valid
