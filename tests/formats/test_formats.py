"""The dataset format writers (pipeline/formats) on tiny layouts: files, names, lists, cameras, what may enter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from data_manifests import INTENDED_VIEWS, rle
from data_manifests.rows import CAMERA_OF_VIEW, REAL_CAMERA, camera_of
from pipeline.formats.crop import mask_box, vehicle_box
from pipeline.formats.vehicleid import VEHICLEID_VIEWS, vehicleid_test_sizes, vehicleid_writer
from pipeline.formats.veri import veri_name, veri_writer
from pipeline.formats.yolo import label_line, yolo_writer


def _image(path: Path, value: int, size: tuple[int, int] = (20, 10)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(path)
    return path


def test_camera_mapping_gives_each_view_its_own_camera() -> None:
    assert [CAMERA_OF_VIEW[v] for v in INTENDED_VIEWS] == list(range(1, len(INTENDED_VIEWS) + 1))
    assert REAL_CAMERA == len(INTENDED_VIEWS) + 1 and camera_of(None) == REAL_CAMERA
    assert camera_of("rear") == 2 and veri_name(7, camera_of("rear"), 12) == "0007_c002_00000012_0.jpg"


def test_veri_writer_layout(tmp_path: Path) -> None:
    src = [_image(tmp_path / "src" / f"{k}.png", 10 * k) for k in range(5)]
    items = [  # (source, vid, camera, frame, split)
        (src[0], 1, 1, 0, "train"),
        (src[1], 1, 3, 1, "train"),
        (src[2], 2, 1, 0, "query"),
        (src[3], 2, 2, 1, "gallery"),
        (src[4], 2, 1, 2, "gallery"),
    ]
    dest = tmp_path / "VeRi"
    with veri_writer(dest, quality=90) as writer:
        names = [writer.add(s, vid, cam, frame, split) for s, vid, cam, frame, split in items]
        writer.add(src[4], 3, 4, 0, "gallery", box=(2, 1, 12, 9))
        writer.write_text("extra.json", "{}\n")
    assert names[2] == "0002_c001_00000000_0.jpg"
    listed = {f: (dest / f"name_{f}.txt").read_text().split() for f in ("train", "query", "test")}
    assert listed["train"] == sorted(names[:2]) and listed["query"] == [names[2]]
    # as in VeRi-776, image_test holds the queries too (a query matching itself is junk to the evaluation)
    assert listed["test"] == sorted([*names[2:], "0003_c004_00000000_0.jpg"])
    for folder, wanted in listed.items():
        assert sorted(p.name for p in (dest / f"image_{folder}").iterdir()) == wanted
    assert Image.open(dest / "image_test" / "0003_c004_00000000_0.jpg").size == (10, 8)  # the box
    assert Image.open(dest / "image_train" / names[0]).size == (20, 10)  # no box: the whole image
    assert (dest / "extra.json").read_text() == "{}\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left

    from vehiclemae.reid.data import load_veri776

    split = load_veri776(dest)  # the reader of the layout parses what the writer wrote
    assert [(s.pid, s.camid) for s in split.query] == [(2, 1)]
    assert sorted((s.pid, s.camid) for s in split.train) == [(1, 1), (1, 3)]


def test_veri_writer_refuses_junk_ids_and_keeps_the_old_folder_on_error(tmp_path: Path) -> None:
    src = _image(tmp_path / "a.png", 5)
    dest = tmp_path / "VeRi"
    with veri_writer(dest) as writer:
        writer.add(src, 1, 1, 0, "train")
    before = sorted(p.name for p in dest.rglob("*"))
    for vid, camera, split in ((0, 1, "train"), (-1, 1, "train"), (1, 0, "train"), (1, 1, "test")):
        with pytest.raises(ValueError), veri_writer(dest) as writer:
            writer.add(src, vid, camera, 0, split)
    assert sorted(p.name for p in dest.rglob("*")) == before


def test_vehicleid_writer_layout(tmp_path: Path) -> None:
    src = _image(tmp_path / "a.png", 50)
    dest = tmp_path / "VehicleID_V1.0"
    views = ["front", "left", "rear_left", "top", "rear"]
    with vehicleid_writer(dest) as writer:
        added = {}
        for vid in (3, 5, 8, 9):
            added[vid] = [writer.add(src, vid, view) for view in views]
        writer.write_splits(train=[3], test=[9, 5, 8])
        writer.write_attribute("model_attr", {9: 1, 3: 0, 5: 2, 8: 0})
        writer.write_attribute("color_attr", {3: 4, 5: 4, 8: 1, 9: 0})
        with pytest.raises(ValueError, match="attribute"):
            writer.write_attribute("size_attr", {3: 1})
    # side and top views never enter (VehicleID photos show the front or the rear)
    assert added[3] == ["0000001", None, "0000002", None, "0000003"] and added[5][0] == "0000004"
    assert {"left", "right", "top"}.isdisjoint(VEHICLEID_VIEWS)
    assert sorted(p.name for p in (dest / "image").iterdir()) == [f"{k:07d}.jpg" for k in range(1, 13)]
    split = dest / "train_test_split"
    assert (split / "train_list.txt").read_text() == "0000001 3\n0000002 3\n0000003 3\n"
    assert vehicleid_test_sizes(3) == [1, 2, 3]
    # nested lists in the given vid order: the smaller lists hold the first test vids
    assert (split / "test_list_1.txt").read_text().split()[1::2] == ["9"] * 3
    assert (split / "test_list_2.txt").read_text().split()[1::2] == ["9"] * 3 + ["5"] * 3
    assert (dest / "attribute" / "model_attr.txt").read_text() == "3 0\n5 2\n8 0\n9 1\n"

    from vehiclemae.reid.data import load_vehicleid

    loaded = load_vehicleid(dest, test_size=3)
    assert len(loaded.train) == 3 and {s.pid for s in loaded.test} == {5, 8, 9}


def test_yolo_writer_layout(tmp_path: Path) -> None:
    dest = tmp_path / "detection"
    image = np.zeros((40, 60, 3), np.uint8)
    with yolo_writer(dest, ["car", "bus"], ["written by a test"]) as writer:
        assert writer.add("val", "000000", image, [label_line(1, (6, 4, 18, 24), 60, 40)]) == "images/val/000000.jpg"
        writer.add("train", "000001", image, [])
        with pytest.raises(ValueError, match="split"):
            writer.add("test", "000002", image, [])
    assert (dest / "labels" / "val" / "000000.txt").read_text() == "1 0.200000 0.350000 0.200000 0.500000\n"
    assert (dest / "labels" / "train" / "000001.txt").read_text() == ""
    assert Image.open(dest / "images" / "train" / "000001.jpg").size == (60, 40)
    text = (dest / "data.yaml").read_text()
    assert text.startswith("# written by a test\n")
    assert yaml.safe_load(text) == {"train": "images/train", "val": "images/val", "names": {0: "car", 1: "bus"}}


def test_vehicle_box_grows_the_mask_box_and_rounds_as_its_caller_did() -> None:
    mask = np.zeros((20, 30), bool)
    mask[4:14, 10:15] = True  # 5 wide, 10 high
    encoded = rle.encode(mask)
    assert mask_box(encoded) == (10, 4, 15, 14)
    assert vehicle_box(encoded, None) is None and vehicle_box(rle.encode(np.zeros((4, 4), bool)), 0.1) is None
    # margin 0.1: 0.5 px sideways, 1 px up and down; the toy world rounds the margin (half to even: 0) ...
    assert vehicle_box(encoded, 0.1) == (10, 3, 15, 15)
    # ... the assemble stage rounds the grown edges (9.5 -> 10, 15.5 -> 16)
    assert vehicle_box(encoded, 0.1, round_edges=True) == (10, 3, 16, 15)
    # both clip to the image
    assert vehicle_box(encoded, 2.0) == (0, 0, 25, 20) == vehicle_box(encoded, 2.0, round_edges=True)
