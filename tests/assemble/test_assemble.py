from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

import data_manifests as dm
from data_manifests.rows import CAMERA_OF_VIEW
from pipeline.assemble import assemble
from pipeline.splits import assign_splits

from .roots import build_root


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
