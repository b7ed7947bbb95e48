"""``diffveri toy world`` outputs: valid manifests, exact masks, VeRi / VehicleID / YOLO layouts, determinism."""

from __future__ import annotations

import dataclasses
import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

import data_manifests as dm
from data_manifests import rle
from pipeline.cli import main
from pipeline.formats.vehicleid import vehicleid_test_sizes
from pipeline.toyworld import identity_from_attributes, nearest_view, render
from pipeline.toyworld.export import ToyworldSettings, build_toyworld

SETTINGS = ToyworldSettings(identities=6, images_per_identity=12, size=64, seed=3, detection_images=40)
VERI_NAME = re.compile(r"([\d]+)_c(\d+)")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("toyworld")
    build_toyworld(out, SETTINGS, progress=False)
    return out


def test_manifests_validate(world: Path) -> None:
    assert set(dm.list_tables(world)) == {"subjects", "generations", "segments", "segments_gt", "diffveri"}
    assert dm.validate(world) == []
    assert main(["manifests", "validate", "--root", str(world)]) == 0


def test_subjects_rebuild_identities(world: Path) -> None:
    subjects = dm.read_rows(world, "subjects")
    assert len(subjects) == SETTINGS.identities
    for row in subjects:
        ident = identity_from_attributes(row["attributes"])
        assert ident.identity_id == row["identity_id"] and ident.class_name == row["class_name"]
        assert row["source"] == "toyworld" and len(row["instance_images"]) == len(SETTINGS.instance_views)
        assert all((world / p).is_file() for p in row["instance_images"])


def test_generations_and_segments_match_the_renders(world: Path) -> None:
    gens = {r["image_id"]: r for r in dm.read_rows(world, "generations")}
    segs = {r["image_id"]: r for r in dm.read_rows(world, "segments")}
    diff = {r["image_id"]: r for r in dm.read_rows(world, "diffveri")}
    subjects = {r["identity_id"]: identity_from_attributes(r["attributes"]) for r in dm.read_rows(world, "subjects")}
    assert len(gens) == SETTINGS.identities * SETTINGS.images_per_identity == len(segs)
    assert segs == {r["image_id"]: r for r in dm.read_rows(world, "segments_gt")}
    for image_id, g in list(gens.items())[:: max(1, len(gens) // 12)]:
        s = segs[image_id]
        assert g["model_ref"] == "toyworld:render" and g["status"] == "ok"
        assert dm.sha256_file(world / g["path"]) == g["sha256"]
        assert image_id == dm.image_id(g["identity_id"], g["intended_view"], g["seed"], "toyworld:render")
        # Re-render from the recorded camera: same pixels, and the RLEs decode to the label map.
        prov = json.loads(diff[image_id]["provenance"]) if image_id in diff else None
        if prov is None:
            continue
        assert nearest_view(prov["azimuth"], prov["elevation"]) == g["intended_view"]
        r = render(subjects[g["identity_id"]], prov["azimuth"], prov["elevation"], SETTINGS.size, g["seed"],
                   occluders=prov["occluders"])  # fmt: skip
        assert np.array_equal(np.asarray(Image.open(world / g["path"])), r.image)
        assert s["view_classes"] == list(dm.VIEW_CLASSES_TOYWORLD)
        assert np.array_equal(rle.rles_to_label_map(s["view_rles"]), r.labels)
        assert np.array_equal(rle.decode(s["vehicle_rle"]), r.labels > 0)
        assert (
            s["dominant_view"]
            == dm.VIEW_CLASSES_TOYWORLD[1 + int(np.argmax(np.bincount(r.labels.ravel(), minlength=6)[1:]))]
        )
        assert abs(sum(s["view_fractions"]) - 1.0) < 1e-5 and s["view_fractions"][0] == 0.0


def test_diffveri_splits_are_identity_disjoint_with_answerable_queries(world: Path) -> None:
    rows = dm.read_rows(world, "diffveri")
    split_ids = defaultdict(set)
    for r in rows:
        split_ids[r["split"]].add(r["identity_id"])
    assert split_ids["train"] and split_ids["query"]
    assert not split_ids["train"] & (split_ids["query"] | split_ids["gallery"])
    gallery = [r for r in rows if r["split"] == "gallery"]
    for q in (r for r in rows if r["split"] == "query"):
        assert any(g["identity_id"] == q["identity_id"] and g["camera_id"] != q["camera_id"] for g in gallery)


def test_veri_layout(world: Path) -> None:
    veri = world / "VeRi"
    parsed = {}
    for split in ("train", "query", "test"):
        names = (veri / f"name_{split}.txt").read_text().split()
        assert names, split
        assert sorted(p.name for p in (veri / f"image_{split}").iterdir()) == sorted(names)
        parsed[split] = [tuple(map(int, VERI_NAME.search(n).groups())) for n in names]
        for n in names:
            assert re.fullmatch(r"\d{4}_c\d{3}_\d{8}_0\.jpg", n)
    train_ids = {pid for pid, _ in parsed["train"]}
    assert not train_ids & {pid for pid, _ in parsed["test"]}
    # Every query has a same-id image on another camera in the gallery (image_test), as VeRi-776 evaluation needs.
    for pid, cam in parsed["query"]:
        assert any(g_pid == pid and g_cam != cam for g_pid, g_cam in parsed["test"])
    assert set(parsed["query"]) <= set(parsed["test"])  # VeRi keeps the query images in image_test too


def test_vehicleid_layout(world: Path) -> None:
    root = world / "VehicleID_V1.0"
    split_dir = root / "train_test_split"
    lists = {p.name: [line.split() for line in p.read_text().splitlines()] for p in split_dir.glob("*.txt")}
    n_test = SETTINGS.identities - round(SETTINGS.identities * SETTINGS.train_fraction)
    assert set(lists) == {"train_list.txt", *(f"test_list_{n}.txt" for n in vehicleid_test_sizes(n_test))}
    for lines in lists.values():
        assert lines
        for name, vid in lines:
            assert (root / "image" / f"{name}.jpg").is_file() and vid.isdigit()
    train = {vid for _, vid in lists["train_list.txt"]}
    largest = max(vehicleid_test_sizes(n_test))
    test = {vid for _, vid in lists[f"test_list_{largest}.txt"]}
    assert not train & test and len(test) == n_test
    assert (root / "attribute" / "model_attr.txt").read_text().count("\n") == SETTINGS.identities


def test_vehicleid_test_sizes_scale() -> None:
    assert vehicleid_test_sizes(2400) == [800, 1600, 2400]
    assert vehicleid_test_sizes(3) == [1, 2, 3]
    assert vehicleid_test_sizes(1) == [1]


def test_detection_layout(world: Path) -> None:
    det = world / "detection"
    data = yaml.safe_load((det / "data.yaml").read_text())
    assert data["names"] == {0: "vehicle"}
    records = [json.loads(line) for line in (det / "scenes.jsonl").read_text().splitlines()]
    assert len(records) == SETTINGS.detection_images
    counts = {r["n_vehicles"] for r in records}
    assert 0 in counts and 1 in counts and max(counts) >= 2
    vehicles = [v for r in records for v in r["vehicles"]]
    assert any(v["truncated"] for v in vehicles) and any(v["tiny"] for v in vehicles)
    for r in records:
        image = world / "detection" / r["image"]
        label = det / "labels" / r["split"] / (image.stem + ".txt")
        assert image.is_file() and label.is_file()
        lines = [list(map(float, line.split())) for line in label.read_text().splitlines()]
        assert len(lines) == r["n_vehicles"]
        for cls, cx, cy, w, h in lines:
            assert cls == 0 and 0 <= cx <= 1 and 0 <= cy <= 1 and 0 < w <= 1 and 0 < h <= 1
    for split in ("train", "val"):
        assert any((det / "images" / split).iterdir())


def test_detection_yaml_loads_in_ultralytics(world: Path) -> None:
    from ultralytics.data.utils import check_det_dataset

    info = check_det_dataset(str(world / "detection" / "data.yaml"), autodownload=False)
    assert info["nc"] == 1 and Path(info["train"]).is_dir() and Path(info["val"]).is_dir()


def test_rerun_resumes_and_is_deterministic(world: Path, tmp_path: Path) -> None:
    before = {t: dm.read_rows(world, t) for t in ("generations", "segments", "diffveri")}
    summary = build_toyworld(world, SETTINGS, progress=False)
    assert summary.rendered == 0 and summary.skipped_identities == SETTINGS.identities
    for table, rows in before.items():
        key = "image_id"
        assert sorted(rows, key=lambda r: r[key]) == sorted(dm.read_rows(world, table), key=lambda r: r[key])


def test_worker_processes_give_identical_output(tmp_path: Path) -> None:
    small = ToyworldSettings(identities=3, images_per_identity=3, size=48, seed=1, detection_images=2)
    build_toyworld(tmp_path / "a", small, workers=0, progress=False)
    build_toyworld(tmp_path / "b", small, workers=2, progress=False)
    for table in ("subjects", "generations", "segments", "diffveri"):
        rows_a = sorted(dm.read_rows(tmp_path / "a", table), key=lambda r: json.dumps(r, sort_keys=True, default=str))
        rows_b = sorted(dm.read_rows(tmp_path / "b", table), key=lambda r: json.dumps(r, sort_keys=True, default=str))
        assert rows_a == rows_b, table
    names_a = (tmp_path / "a" / "VeRi" / "name_test.txt").read_text()
    assert names_a == (tmp_path / "b" / "VeRi" / "name_test.txt").read_text()


def test_cli_runs_and_reports_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["toy", "world", "--root", str(tmp_path), "--identities", "2", "--images-per-identity", "2"]
    assert main([*args, "--size", "32", "--detection-images", "1", "--no-progress", "--view-classes", "pven"]) == 0
    segs = dm.read_rows(tmp_path, "segments")
    assert segs and all(s["view_classes"] == list(dm.VIEW_CLASSES_PVEN) for s in segs)
    assert main(["toy", "world", "--root", str(tmp_path / "x"), "--identities", "1", "--no-progress"]) == 2
    assert "--identities must be >= 2" in capsys.readouterr().err


def test_missing_image_is_re_rendered_identically(tmp_path: Path) -> None:
    small = ToyworldSettings(identities=3, images_per_identity=3, size=48, seed=2, detection_images=2)
    build_toyworld(tmp_path, small, progress=False, flush_every=1)
    gen = sorted(dm.read_rows(tmp_path, "generations"), key=lambda r: r["image_id"])[0]
    (tmp_path / gen["path"]).unlink()
    summary = build_toyworld(tmp_path, small, progress=False)
    assert summary.rendered == small.images_per_identity and summary.skipped_identities == small.identities - 1
    assert dm.sha256_file(tmp_path / gen["path"]) == gen["sha256"]
    assert dm.validate(tmp_path) == []


def test_vehiclemae_dataset_reads_the_world(world: Path) -> None:
    from pipeline.toyworld import collapse_labels
    from vehiclemae.data import DiffVERIDataset

    ds = DiffVERIDataset(world, splits=("train",), img_size=64, view_classes="pven", augment=False)
    assert len(ds) == sum(r["split"] == "train" for r in dm.read_rows(world, "diffveri"))
    image, labels, fg = ds.load(0)
    seg = {r["image_id"]: r for r in dm.read_rows(world, "segments_gt")}[ds.rows[0]["image_id"]]
    expected = collapse_labels(rle.rles_to_label_map(seg["view_rles"]))
    assert image.size == (SETTINGS.size, SETTINGS.size)
    assert np.array_equal(labels, expected) and np.array_equal(fg, expected > 0)


@pytest.mark.slow
def test_yolo_trains_on_the_detection_set(world: Path, tmp_path: Path) -> None:
    from ultralytics import YOLO

    model = YOLO("yolo11n.yaml")
    model.train(
        data=str(world / "detection" / "data.yaml"), imgsz=64, epochs=1, batch=8, device="cpu", workers=0,
        plots=False, amp=False, project=str(tmp_path), name="run", verbose=False,
    )  # fmt: skip
    assert (tmp_path / "run" / "weights" / "last.pt").is_file()


@pytest.mark.slow
def test_default_cli_world_validates(tmp_path: Path) -> None:
    args = ["toy", "world", "--root", str(tmp_path), "--identities", "12", "--images-per-identity", "16"]
    assert main([*args, "--size", "128", "--no-progress"]) == 0
    assert main(["manifests", "validate", "--root", str(tmp_path)]) == 0
    assert len(dm.read_rows(tmp_path, "generations")) == 12 * 16


def test_resume_refuses_other_render_settings_and_extends_worlds(tmp_path: Path) -> None:
    small = ToyworldSettings(identities=2, images_per_identity=2, size=48, seed=2, detection_images=1)
    build_toyworld(tmp_path, small, progress=False)
    first = {r["image_id"]: r["sha256"] for r in dm.read_rows(tmp_path, "generations")}
    with pytest.raises(ValueError, match="size: 48 -> 64"):
        build_toyworld(tmp_path, dataclasses.replace(small, size=64), progress=False)
    # More identities and more images per identity extend the world; existing images keep their bytes.
    bigger = dataclasses.replace(small, identities=3, images_per_identity=4)
    build_toyworld(tmp_path, bigger, progress=False)
    after = {r["image_id"]: r["sha256"] for r in dm.read_rows(tmp_path, "generations")}
    assert len(after) == 12 and all(after[k] == v for k, v in first.items())
    assert dm.validate(tmp_path) == []


def test_reid_crop_writes_vehicle_crops(world: Path, tmp_path: Path) -> None:
    # Same world (no re-render: the images exist), exported again with crops into a copy of its manifests.
    import shutil

    from pipeline.formats.crop import vehicle_box

    out = tmp_path / "w"
    shutil.copytree(world, out)
    build_toyworld(out, dataclasses.replace(SETTINGS, reid_crop=0.1), progress=False)
    rows = {(int(r["path"].split("/")[1][3:]), r["image_id"]): r for r in dm.read_rows(out, "diffveri")}
    gens = {r["image_id"]: r for r in dm.read_rows(out, "generations")}
    meta = json.loads((out / "VeRi" / "toyworld_meta.json").read_text())
    checked = 0
    for path in sorted((out / "VeRi" / "image_test").iterdir())[:12]:
        # the crop equals the box of the row's vehicle mask + 10 % per side, cut from the lossless render
        vid, frame = int(path.name[:4]), int(path.name.split("_")[2])
        row = next(r for (index, iid), r in rows.items() if index + 1 == vid and _frame(gens[iid], out) == frame)
        box = vehicle_box(row["vehicle_rle"], 0.1)
        assert box is not None and Image.open(path).size == (box[2] - box[0], box[3] - box[1])
        assert path.name in meta["images"]
        checked += 1
    assert checked == 12
    # margin 0 is exactly the mask's box; no margin keeps the whole render
    mask = rle.decode(row["vehicle_rle"])
    ys, xs = np.nonzero(mask)
    assert vehicle_box(row["vehicle_rle"], 0.0) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    assert vehicle_box(row["vehicle_rle"], None) is None
    with pytest.raises(ValueError, match="--reid-crop"):
        dataclasses.replace(SETTINGS, reid_crop=-0.5).validate()


def _frame(gen: dict, out: Path) -> int:
    """The image index j of a generation (its seed is image_seed(seed, index, j))."""
    from pipeline.toyworld.plan import image_seed

    index = int(gen["identity_id"][3:])
    return next(j for j in range(SETTINGS.images_per_identity) if image_seed(SETTINGS.seed, index, j) == gen["seed"])
