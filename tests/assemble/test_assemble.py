from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import data_manifests as dm
from data_manifests import rle
from data_manifests.rows import CAMERA_OF_VIEW
from pipeline.assemble import assemble
from pipeline.splits import assign_splits

VIEWS = ("front", "rear", "left", "right", "front_left", "rear_right")


def build_root(root: Path, n_ids: int = 6, per_id: int = 6) -> dict[str, str]:
    """Tables of a small finished pipeline run; returns image_id -> what should happen to it."""
    subjects, gens, dets, revs, segs = [], [], [], [], []
    fate: dict[str, str] = {}
    (root / "images").mkdir(parents=True)
    for i in range(n_ids):
        identity = f"id{i:02d}"
        subjects.append(
            {"identity_id": identity, "class_name": "sedan", "instance_images": [], "source": "folder", "status": "ok"}
        )
        for j in range(per_id):
            view = VIEWS[j % len(VIEWS)]
            image_id = dm.image_id(identity, view, j, "test")
            path = f"images/{image_id}.png"
            img = np.zeros((40, 60, 3), np.uint8)
            img[10:30, 15:45] = (200, (30 * i) % 256, 10 * j)
            Image.fromarray(img).save(root / path)
            labels = np.zeros((40, 60), np.int64)
            labels[10:30, 15:30], labels[10:30, 30:45] = 1, 3
            classes = ["background", "front", "rear", "side", "top"]
            gens.append(
                {
                    "image_id": image_id,
                    "identity_id": identity,
                    "intended_view": view,
                    "seed": j,
                    "width": 60,
                    "height": 40,
                    "path": path,
                    "model_ref": "test",
                    "status": "ok",
                }
            )
            kept = not (i == 0 and j == 0)
            dets.append(
                {
                    "image_id": image_id,
                    "bbox": [15.0, 10.0, 45.0, 30.0],
                    "conf": 0.9,
                    "cls": 2,
                    "detector_ref": "yolo-test",
                    "status": "ok" if kept else "rejected",
                    "reason": None if kept else "too_small",
                }
            )
            accepted = not (i == 1 and j == 1)
            revs.append(
                {
                    "image_id": image_id,
                    "batch_id": "b1",
                    "decision": "accept" if accepted else "reject",
                    "view_label": view,
                    "identity_ok": True,
                    "reviewer": "ann",
                    "reviewed_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
                    "status": "ok" if accepted else "rejected",
                    "reason": None if accepted else "reviewer_rejected",
                }
            )
            segs.append(
                {
                    "image_id": image_id,
                    "bbox": [15.0, 10.0, 45.0, 30.0],
                    "vehicle_rle": rle.encode(labels > 0),
                    "view_classes": classes,
                    "view_rles": rle.label_map_to_rles(labels, classes),
                    "view_fractions": [0.0, 0.5, 0.0, 0.5, 0.0],
                    "dominant_view": "front",
                    "segmenter_ref": "sam:test",
                    "status": "ok",
                }
            )
            fate[image_id] = "in" if kept and accepted else "out"
    for table, rows in (
        ("subjects", subjects),
        ("generations", gens),
        ("detections", dets),
        ("reviews", revs),
        ("segments", segs),
    ):
        dm.upsert(root, table, rows)
    return fate


def test_assemble_keeps_only_images_that_passed_every_stage(tmp_path: Path) -> None:
    fate = build_root(tmp_path)
    stats = assemble(tmp_path, test_identity_fraction=0.5, queries_per_identity=2, seed=3)
    table = dm.read_rows(tmp_path, "diffveri")
    assert {r["image_id"] for r in table} == {k for k, v in fate.items() if v == "in"}
    assert stats["images"] == len(table) == 34 and stats["identities"] == 6
    assert dm.validate(tmp_path) == []
    row = table[0]
    assert json.loads(row["provenance"])["segmenter_ref"] == "sam:test"
    assert row["camera_id"] == CAMERA_OF_VIEW[row["view_label"]]
    assert "DiffVERI (this build) | 34 | 6" in (tmp_path / "stats.md").read_text()
    # deterministic: a second run writes the same table
    assemble(tmp_path, test_identity_fraction=0.5, queries_per_identity=2, seed=3)
    assert sorted(map(str, dm.read_rows(tmp_path, "diffveri"))) == sorted(map(str, table))


def test_splits_follow_the_veri_protocol(tmp_path: Path) -> None:
    build_root(tmp_path, n_ids=10, per_id=6)
    assemble(tmp_path, test_identity_fraction=0.4, queries_per_identity=2, seed=0)
    rows = dm.read_rows(tmp_path, "diffveri")
    train_ids = {r["identity_id"] for r in rows if r["split"] == "train"}
    test_ids = {r["identity_id"] for r in rows if r["split"] != "train"}
    assert train_ids and test_ids and not train_ids & test_ids
    assert len(test_ids) == 4
    queries = [r for r in rows if r["split"] == "query"]
    assert len(queries) == 8
    for q in queries:
        assert any(
            g["identity_id"] == q["identity_id"] and g["camera_id"] != q["camera_id"]
            for g in rows
            if g["split"] == "gallery"
        )


def test_veri_export_layout(tmp_path: Path) -> None:
    build_root(tmp_path)
    assemble(tmp_path, test_identity_fraction=0.5, seed=1)
    out = tmp_path / "export" / "VeRi"
    rows = dm.read_rows(tmp_path, "diffveri")
    # as in VeRi-776, image_test holds the queries too
    for splits, folder in (
        (("train",), "image_train"),
        (("query",), "image_query"),
        (("query", "gallery"), "image_test"),
    ):
        names = (out / folder.replace("image_", "name_")).with_suffix(".txt").read_text().split()
        assert len(names) == sum(r["split"] in splits for r in rows)
        for name in names:
            assert re.match(r"([\d]+)_c(\d+)", name) and (out / folder / name).is_file()
    # crops follow the vehicle mask (30 x 20 px plus a 10% margin)
    any_crop = next((out / "image_train").iterdir())
    assert Image.open(any_crop).size == (36, 24)


def test_assign_splits_is_deterministic_and_validates_fraction() -> None:
    rows = [
        {"image_id": f"{i}-{j}", "identity_id": f"id{i}", "camera_id": j % 3 + 1} for i in range(8) for j in range(5)
    ]
    a = assign_splits([dict(r) for r in rows], 0.5, 2, seed=7)
    b = assign_splits([dict(r) for r in rows], 0.5, 2, seed=7)
    assert [r["split"] for r in a] == [r["split"] for r in b]
    with pytest.raises(ValueError, match="test_identity_fraction"):
        assign_splits(rows, 1.5, 2, seed=0)


def test_nothing_to_assemble_is_a_clear_error(tmp_path: Path) -> None:
    build_root(tmp_path, n_ids=1, per_id=1)  # its only image was rejected by the filter
    with pytest.raises(ValueError, match="no image .* has passed"):
        assemble(tmp_path)
    assert not dm.table_exists(tmp_path, "diffveri")
