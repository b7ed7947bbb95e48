"""Real-synthetic assembly (subject photos as real rows) and vehicle crops with their masks."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import data_manifests as dm
from data_manifests import rle
from data_manifests.rows import CAMERA_OF_VIEW, REAL_CAMERA
from pipeline.assemble import assemble
from pipeline.assemble_crops import crop_box
from pipeline.assemble_real import view_from_name

from .roots import build_root


def add_subject_photos(root: Path, n_ids: int) -> None:
    """Two real photos per identity: one named after its view, one not."""
    rows = []
    for i in range(n_ids):
        identity = f"id{i:02d}"
        folder = root / "subjects" / identity
        folder.mkdir(parents=True)
        paths = []
        for k, size in enumerate(((50, 30), (70, 44))):
            path = folder / f"{k:03d}.png"
            Image.fromarray(np.full((size[1], size[0], 3), 40 * k + i, np.uint8)).save(path)
            paths.append(path)
        rows.append(
            {
                "identity_id": identity,
                "class_name": "sedan",
                "instance_images": [str(p.relative_to(root)) for p in paths],
                "instance_sha256": [dm.sha256_file(p) for p in paths],
                "source": "folder",
                "attributes": json.dumps({"source_files": ["/photos/x/rear_left.png", "/photos/x/IMG_0001.jpg"]}),
                "status": "ok",
            }
        )
    dm.upsert(root, "subjects", rows)


def test_real_rows_stay_in_their_identitys_split(tmp_path: Path) -> None:
    fate = build_root(tmp_path, n_ids=10, per_id=6)
    add_subject_photos(tmp_path, 10)
    stats = assemble(tmp_path, test_identity_fraction=0.4, queries_per_identity=2, seed=0)
    rows = dm.read_rows(tmp_path, "diffveri")
    real = [r for r in rows if r["source"] == "real"]
    synthetic = [r for r in rows if r["source"] == "synthetic"]
    assert len(synthetic) == sum(v == "in" for v in fate.values()) and len(real) == 20
    assert stats["sources"] == {"real": 20, "synthetic": len(synthetic)}
    assert "| Real-synthetic |" in (tmp_path / "stats.md").read_text()
    splits = defaultdict(set)
    for r in rows:
        splits[r["identity_id"]].add("train" if r["split"] == "train" else "test")
    assert all(len(s) == 1 for s in splits.values())  # every identity wholly in train or wholly in test
    assert {r["split"] for r in real} >= {"train", "gallery"}  # test identities' photos are in the test set
    named = [r for r in real if r["path"].endswith("000.png")]
    assert all(r["view_label"] == "rear_left" and r["camera_id"] == CAMERA_OF_VIEW["rear_left"] for r in named)
    unnamed = [r for r in real if r["path"].endswith("001.png")]
    assert all(r["view_label"] is None and r["camera_id"] == REAL_CAMERA for r in unnamed)
    assert all((r["width"], r["height"]) == (70, 44) and r["vehicle_rle"] is None for r in unnamed)
    assert dm.validate(tmp_path) == []
    # The switch: no real rows.
    stats = assemble(tmp_path, test_identity_fraction=0.4, include_real=False, seed=0)
    assert {r["source"] for r in dm.read_rows(tmp_path, "diffveri")} == {"synthetic"}
    assert "| Synthetic |" in (tmp_path / "stats.md").read_text()


def test_crops_and_their_masks_align(tmp_path: Path) -> None:
    build_root(tmp_path)
    stats = assemble(tmp_path, test_identity_fraction=0.5, crop_margin=0.2, seed=1)
    rows = dm.read_rows(tmp_path, "diffveri")
    for row in rows:
        assert row["crop_box"] == [9.0, 6.0, 51.0, 34.0]  # detector box [15, 10, 45, 30] + 20 % per side
        crop = np.asarray(Image.open(tmp_path / row["path"]).convert("RGB"))
        source = np.asarray(Image.open(tmp_path / row["source_path"]).convert("RGB"))
        assert crop.shape == (row["height"], row["width"], 3) == (28, 42, 3)
        assert np.array_equal(crop, source[6:34, 9:51])
        vehicle = rle.decode(row["vehicle_rle"])
        assert vehicle.shape == (28, 42)
        assert np.array_equal(vehicle, crop[..., 0] == 200)  # the painted vehicle is where its mask is
        labels = rle.rles_to_label_map(row["view_rles"])
        assert labels.shape == (28, 42) and set(np.unique(labels[vehicle])) == {1, 3}
    assert (stats["mean_width"], stats["mean_height"]) == (42.0, 28.0)
    assert "| 42 × 28 |" in (tmp_path / "stats.md").read_text()
    # Full images without crops.
    assemble(tmp_path, test_identity_fraction=0.5, crops=False, seed=1)
    row = dm.read_rows(tmp_path, "diffveri")[0]
    assert (row["width"], row["height"]) == (60, 40) and row["crop_box"] is None and row["source_path"] is None


def test_crop_box_and_view_names() -> None:
    assert crop_box([10.2, 10.7, 20.1, 30.0], 25, 40, 0.1) == (9, 8, 22, 32)
    assert crop_box([0, 0, 10, 10], 10, 10, 0.5) == (0, 0, 10, 10)
    with pytest.raises(ValueError, match="leaves no pixel"):
        crop_box([30, 30, 40, 40], 20, 20, 0.0)
    assert view_from_name("front_left.png") == "front_left"
    assert view_from_name("/a/Rear-2.JPG") == "rear"
    assert view_from_name("IMG_0001.jpg") is None and view_from_name("frontal.png") is None
