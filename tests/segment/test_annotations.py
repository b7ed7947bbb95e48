"""The view-mask annotation round trip: export for COCO / Label Studio, import back as human segments rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

import data_manifests as dm
from data_manifests import VIEW_CLASSES_PVEN
from pipeline.cli import main
from pipeline.segment.annotation_export import export_annotations
from pipeline.segment.annotation_import import AnnotationImportError, import_annotations
from pipeline.segment.annotations import ANNOTATION_REFS, human_ids, mask_to_polygons
from pipeline.segment.data import load_annotated
from pipeline.segment.infer import select_candidates

H, W = 40, 60
CLASSES = VIEW_CLASSES_PVEN  # background, front, rear, side, top


def truth_labels(n: int) -> np.ndarray:
    """A label map per image: front | side rectangles that touch, a top strip above (all disjoint)."""
    labels = np.zeros((H, W), np.int64)
    x = 10 + n
    labels[15:32, x : x + 12] = 1  # front
    labels[15:32, x + 12 : x + 30] = 3  # side
    labels[8:15, x + 4 : x + 26] = 4  # top
    return labels


def build_root(root: Path, n: int = 4) -> list[str]:
    """generations (images on disk) + ok detections with boxes; no reviews (every kept image counts)."""
    (root / "images").mkdir(parents=True)
    gens, dets, ids = [], [], []
    rng = np.random.default_rng(0)
    for i in range(n):
        iid = dm.image_id(f"id{i % 2}", "front", i, "test")
        ids.append(iid)
        Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(root / "images" / f"{iid}.png")
        gens.append({"image_id": iid, "identity_id": f"id{i % 2}", "intended_view": "front", "seed": i, "width": W,
                     "height": H, "path": f"images/{iid}.png", "model_ref": "test", "status": "ok"})  # fmt: skip
        dets.append({"image_id": iid, "n_vehicles": 1, "bbox": [5.0, 5.0, 55.0, 35.0], "conf": 0.9, "cls": 2,
                     "detector_ref": "test", "status": "ok"})  # fmt: skip
    subjects = [{"identity_id": f"id{k}", "class_name": "car", "instance_images": [], "source": "folder",
                 "status": "ok"} for k in range(2)]  # fmt: skip
    dm.upsert(root, "subjects", subjects)
    dm.upsert(root, "generations", gens)
    dm.upsert(root, "detections", dets)
    return sorted(ids)


def rect_polygon(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    return [float(v) for v in (x0, y0, x1, y0, x1, y1, x0, y1)]


def fill_coco(doc: dict, styles: tuple[str, ...] = ("polygon", "rle", "rle_list")) -> dict:
    """What an annotation tool returns: one annotation per view region, masks made with pycocotools."""
    cats = {c["name"]: c["id"] for c in doc["categories"]}
    anns = []
    for n, image in enumerate(doc["images"]):
        labels = truth_labels(n)
        style = styles[n % len(styles)]
        for index, name in enumerate(CLASSES):
            mask = labels == index
            if index == 0 or not mask.any():
                continue
            if style == "polygon":
                seg: object = [rect_polygon(mask)]
            else:
                rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
                seg = {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
                if style == "rle_list":  # uncompressed RLE, as CVAT writes for iscrowd masks
                    flat = mask.astype(np.uint8).flatten(order="F")
                    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
                    seg = {"size": [H, W], "counts": np.diff(np.concatenate([[0], changes])).tolist()}
            anns.append({"id": len(anns) + 1, "image_id": image["id"], "category_id": cats[name], "segmentation": seg,
                         "iscrowd": int(style != "polygon"), "area": int(mask.sum())})  # fmt: skip
    return {**doc, "annotations": anns}


def segments_by_id(root: Path) -> dict[str, dict]:
    return {r["image_id"]: r for r in dm.read_rows(root, "segments")} if dm.table_exists(root, "segments") else {}


def test_coco_round_trip_gives_the_annotated_masks_and_is_idempotent(tmp_path: Path) -> None:
    root = tmp_path / "root"
    ids = build_root(root)
    result = export_annotations(root, tmp_path / "ann", fmt="coco", view_classes=CLASSES)
    doc = json.loads((tmp_path / "ann" / "annotations.json").read_text())
    assert result.images == 4 and [i["diffveri_image_id"] for i in doc["images"]] == ids
    assert [c["name"] for c in doc["categories"]] == ["front", "rear", "side", "top"]
    assert all((tmp_path / "ann" / "images" / i["file_name"]).is_file() for i in doc["images"])
    path = tmp_path / "done.json"
    path.write_text(json.dumps(fill_coco(doc)))

    out = import_annotations(path, root, view_classes=CLASSES)
    assert out.rows == 4 and out.segmenter_ref.startswith("human:coco:")
    rows = segments_by_id(root)
    for n, iid in enumerate(ids):
        row = rows[iid]
        labels = dm.rle.rles_to_label_map(row["view_rles"])
        assert np.array_equal(labels, truth_labels(n)), f"image {n} ({('polygon', 'rle', 'rle_list')[n % 3]})"
        assert np.array_equal(dm.rle.decode(row["vehicle_rle"]), truth_labels(n) > 0)
        assert row["dominant_view"] == "side" and row["bbox"] == [5.0, 5.0, 55.0, 35.0]
    assert dm.validate(root) == []
    before = dm.read_table(root, "segments").sort_by("image_id")
    import_annotations(path, root, view_classes=CLASSES)  # again: same rows
    assert dm.read_table(root, "segments").sort_by("image_id").equals(before)
    # Annotated images are not exported again.
    assert human_ids(root) == set(ids)
    with pytest.raises(ValueError, match="no image to annotate"):
        export_annotations(root, tmp_path / "ann2", fmt="coco", view_classes=CLASSES)


def test_labelstudio_round_trip_with_segmenter_pre_annotations(tmp_path: Path) -> None:
    root = tmp_path / "root"
    ids = build_root(root)
    # The segmenter predicted two images (sam rows): their tasks carry the prediction as polygons.
    predicted = [
        {"image_id": iid, "bbox": [5.0, 5.0, 55.0, 35.0], "vehicle_rle": dm.rle.encode(truth_labels(n) > 0),
         "view_classes": list(CLASSES), "view_rles": dm.rle.label_map_to_rles(truth_labels(n), CLASSES),
         "dominant_view": "side", "segmenter_ref": "sam:abc", "status": "ok"}
        for n, iid in enumerate(ids[:2])
    ]  # fmt: skip
    dm.upsert(root, "segments", predicted)
    result = export_annotations(root, tmp_path / "ls", fmt="labelstudio", view_classes=CLASSES, url_prefix="/x/")
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    assert result.preannotated == 2 and [t["data"]["diffveri_image_id"] for t in tasks] == ids
    assert tasks[0]["data"]["image"] == f"/x/images/{ids[0]}.png" and "predictions" not in tasks[2]
    assert "PolygonLabels" in (tmp_path / "ls" / "labelstudio_config.xml").read_text()
    # The annotator accepts the pre-annotations of tasks 0-1 and draws tasks 2-3 (polygons from pycocotools masks).
    for n, task in enumerate(tasks):
        if "predictions" in task:
            results = task["predictions"][0]["result"]
        else:
            results = []
            for index, name in enumerate(CLASSES[1:], start=1):
                mask = truth_labels(n) == index
                if mask.any():
                    pts = np.asarray(rect_polygon(mask)).reshape(-1, 2) * [100 / W, 100 / H]
                    results.append({"id": f"r{index}", "type": "polygonlabels", "from_name": "view", "to_name": "image",
                                    "original_width": W, "original_height": H,
                                    "value": {"points": pts.tolist(), "polygonlabels": [name]}})  # fmt: skip
        task["annotations"] = [{"id": 100 + n, "result": results}]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))
    out = import_annotations(path, root, view_classes=CLASSES)
    assert out.rows == 4 and out.replaced == 2 and out.segmenter_ref.startswith("human:labelstudio:")
    rows = segments_by_id(root)
    for n, iid in enumerate(ids):
        assert np.array_equal(dm.rle.rles_to_label_map(rows[iid]["view_rles"]), truth_labels(n))
        assert rows[iid]["segmenter_ref"] == out.segmenter_ref


def test_polygons_of_a_mask_rasterise_back_to_it() -> None:
    mask = np.zeros((30, 40), bool)
    mask[5:20, 3:17] = True
    mask[10:25, 25:38] = True
    polys = mask_to_polygons(mask)
    assert len(polys) == 2
    back = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polys, 30, 40))).astype(bool)
    assert np.array_equal(back, mask)


def _break(case: str, doc: dict) -> tuple[dict, str]:
    anns = doc["annotations"]
    if case == "unknown image":
        doc["images"][3]["diffveri_image_id"] = "ffffffffffffffff"
        return doc, "unknown image 'ffffffffffffffff'"
    if case == "unknown category":
        doc["categories"].append({"id": 99, "name": "wheel"})
        anns[0]["category_id"] = 99
        return doc, "unknown category 'wheel'"
    if case == "polygon out of bounds":
        poly = next(a for a in anns if a["image_id"] == 3 and isinstance(a["segmentation"], list))
        poly["segmentation"][0][2] = W + 5
        return doc, "polygon out of bounds"
    if case == "duplicate annotation ids":
        anns[3]["id"] = anns[2]["id"]
        return doc, f"annotation id {anns[2]['id']} appears 2 times"
    assert case == "overlapping views"
    top = next(a for a in anns if a["image_id"] == 1 and a["category_id"] == 4)
    top["segmentation"] = [[14.0, 8.0, 40.0, 8.0, 40.0, 20.0, 14.0, 20.0]]  # reaches into front and side
    return doc, "overlap on"


CASES = ["unknown image", "unknown category", "polygon out of bounds", "duplicate annotation ids", "overlapping views"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("existing", [False, True])
def test_every_refused_file_changes_nothing(tmp_path: Path, case: str, existing: bool) -> None:
    root = tmp_path / "root"
    build_root(root)
    export_annotations(root, tmp_path / "ann", fmt="coco", view_classes=CLASSES)
    good = fill_coco(json.loads((tmp_path / "ann" / "annotations.json").read_text()), styles=("polygon",))
    if existing:  # an earlier import is in the table: it must stay exactly as it was
        (tmp_path / "first.json").write_text(json.dumps(good))
        import_annotations(tmp_path / "first.json", root, view_classes=CLASSES)
    before = dm.read_table(root, "segments").sort_by("image_id") if existing else None
    doc, expected = _break(case, json.loads(json.dumps(good)))
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(AnnotationImportError, match="nothing was imported") as info:
        import_annotations(tmp_path / "bad.json", root, view_classes=CLASSES)
    assert expected in str(info.value)
    if existing:
        assert dm.read_table(root, "segments").sort_by("image_id").equals(before)
    else:
        assert not dm.table_exists(root, "segments")


def test_all_problems_are_listed_at_once(tmp_path: Path) -> None:
    root = tmp_path / "root"
    build_root(root)
    export_annotations(root, tmp_path / "ann", fmt="coco", view_classes=CLASSES)
    doc = fill_coco(json.loads((tmp_path / "ann" / "annotations.json").read_text()), styles=("polygon",))
    expected = []
    for case in CASES:
        doc, text = _break(case, doc)
        expected.append(text)
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(AnnotationImportError) as info:
        import_annotations(tmp_path / "bad.json", root, view_classes=CLASSES)
    assert all(text in str(info.value) for text in expected), str(info.value)
    assert not dm.table_exists(root, "segments")


def test_category_map_and_fine_tuning_reads_human_rows_only(tmp_path: Path) -> None:
    root = tmp_path / "root"
    ids = build_root(root)
    export_annotations(root, tmp_path / "ann", fmt="coco", view_classes=CLASSES, sample=2, seed=1)
    doc = fill_coco(json.loads((tmp_path / "ann" / "annotations.json").read_text()))
    assert len(doc["images"]) == 2
    for c in doc["categories"]:  # the annotation tool's own label names
        c["name"] = f"{c['name'].title()} face"
    (tmp_path / "done.json").write_text(json.dumps(doc))
    with pytest.raises(AnnotationImportError, match="Front face"):
        import_annotations(tmp_path / "done.json", root, view_classes=CLASSES)
    mapping = {f"{v.title()} face": v for v in ("front", "rear", "side", "top")}
    import_annotations(tmp_path / "done.json", root, view_classes=CLASSES, category_map=mapping)
    annotated = {i["diffveri_image_id"] for i in doc["images"]}
    # The segmenter's own predictions for the other images sit in the same table ...
    others = [i for i in ids if i not in annotated]
    dm.upsert(root, "segments", [
        {"image_id": i, "bbox": [5.0, 5.0, 55.0, 35.0], "vehicle_rle": dm.rle.encode(truth_labels(0) > 0),
         "view_classes": list(CLASSES), "view_rles": dm.rle.label_map_to_rles(truth_labels(0), CLASSES),
         "dominant_view": "side", "segmenter_ref": "sam:abc", "status": "ok"} for i in others
    ])  # fmt: skip
    # ... fine-tuning reads the human rows only, and the segment stage never overwrites them.
    assert {a.image_id for a in load_annotated(root, refs=ANNOTATION_REFS)} == annotated
    assert {a.image_id for a in load_annotated(root)} == set(ids)
    candidates, _ = select_candidates(root, None, overwrite=True)
    assert {c.image_id for c in candidates} == set(others)


def test_cli_export_and_import(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "root"
    build_root(root)
    assert main(["segment", "annotations", "export", "--root", str(root), "--out", str(tmp_path / "a"),
                 "--format", "coco"]) == 0  # fmt: skip
    doc = fill_coco(json.loads((tmp_path / "a" / "annotations.json").read_text()))
    (tmp_path / "done.json").write_text(json.dumps(doc))
    assert main(["segment", "annotations", "import", str(tmp_path / "done.json"), "--root", str(root)]) == 0
    assert "imported 4 annotated images" in capsys.readouterr().out
    doc["annotations"][0]["category_id"] = 42
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    assert main(["segment", "annotations", "import", str(tmp_path / "bad.json"), "--root", str(root)]) == 2
    assert "category_id 42 is not in the file's categories" in capsys.readouterr().err


def test_fine_tuning_refuses_a_table_of_predictions_only(tmp_path: Path) -> None:
    from pipeline.segment.finetune import finetune
    from pipeline.segment.model import ModelSpec

    root = tmp_path / "root"
    ids = build_root(root)
    dm.upsert(root, "segments", [
        {"image_id": i, "bbox": [5.0, 5.0, 55.0, 35.0], "vehicle_rle": dm.rle.encode(truth_labels(0) > 0),
         "view_classes": list(CLASSES), "view_rles": dm.rle.label_map_to_rles(truth_labels(0), CLASSES),
         "dominant_view": "side", "segmenter_ref": "sam:abc", "status": "ok"} for i in ids
    ])  # fmt: skip
    with pytest.raises(ValueError, match="segment annotations import"):
        finetune(root=root, view_classes=CLASSES, model=ModelSpec(), checkpoint=tmp_path / "m.pt", out_dir=tmp_path)
    assert not (tmp_path / "m.pt").exists()


def test_boundary_slop_is_tolerated_and_a_real_overlap_is_not(tmp_path: Path) -> None:
    root = tmp_path / "root"
    ids = build_root(root, n=1)
    export_annotations(root, tmp_path / "ann", fmt="coco", view_classes=CLASSES)
    doc = fill_coco(json.loads((tmp_path / "ann" / "annotations.json").read_text()), styles=("polygon",))
    front = next(a for a in doc["annotations"] if a["category_id"] == 1)
    front["segmentation"][0][2] += 1  # front's right edge reaches one column into side (17 of 204 pixels)
    front["segmentation"][0][4] += 1
    (tmp_path / "slop.json").write_text(json.dumps(doc))
    # 17 pixels are 8 % of this tiny front face: refused at the default 5 % and at 0, tolerated at 10 %.
    for tolerance in (0.0, 0.05):
        with pytest.raises(AnnotationImportError, match="front and side overlap on 17 pixel"):
            import_annotations(tmp_path / "slop.json", root, view_classes=CLASSES, overlap_tolerance=tolerance)
    assert not dm.table_exists(root, "segments")
    import_annotations(tmp_path / "slop.json", root, view_classes=CLASSES, overlap_tolerance=0.1)
    labels = dm.rle.rles_to_label_map(segments_by_id(root)[ids[0]]["view_rles"])
    expected = truth_labels(0)
    expected[15:32, 22] = 1  # the shared column goes to the smaller region (front)
    assert np.array_equal(labels, expected)


def test_pre_annotations_of_a_prediction_with_islands_do_not_overlap() -> None:
    from pipeline.segment.annotation_export import _ls_polygons

    labels = truth_labels(0)
    labels[10:12, 18:20] = 1  # a 'front' island inside 'top'
    results = _ls_polygons(labels, CLASSES)
    masks = {}
    for r in results:
        pts = (np.asarray(r["value"]["points"]) * [W / 100, H / 100]).reshape(-1).tolist()
        m = mask_utils.decode(mask_utils.frPyObjects([pts], H, W)[0]).astype(bool)
        name = r["value"]["polygonlabels"][0]
        masks[name] = masks.get(name, np.zeros_like(m)) | m
    total = sum(m.astype(int) for m in masks.values())
    assert total.max() == 1  # no pixel claimed twice
    assert np.array_equal(masks["top"], truth_labels(0) == 4)  # the island was absorbed by its surroundings


def test_labelstudio_brush_masks_are_imported(tmp_path: Path) -> None:
    from pipeline.segment import labelstudio_rle

    root = tmp_path / "root"
    ids = build_root(root, n=2)
    export_annotations(root, tmp_path / "ls", fmt="labelstudio", view_classes=CLASSES)
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    for n, task in enumerate(tasks):  # brushes: the view masks made with pycocotools, in Label Studio's RLE
        results = []
        for index, name in enumerate(CLASSES[1:], start=1):
            rle = mask_utils.encode(np.asfortranarray((truth_labels(n) == index).astype(np.uint8)))
            mask = mask_utils.decode(rle).astype(bool)
            if mask.any():
                results.append({"id": f"b{index}", "type": "brushlabels", "original_width": W, "original_height": H,
                                "value": {"format": "rle", "rle": labelstudio_rle.encode(mask),
                                          "brushlabels": [name]}})  # fmt: skip
        task["annotations"] = [{"id": n + 1, "result": results}]
    tasks[1]["annotations"][0]["result"][0]["value"]["rle"] = labelstudio_rle.encode(np.zeros((H + 1, W), bool))
    (tmp_path / "bad.json").write_text(json.dumps(tasks))
    with pytest.raises(AnnotationImportError, match="RLE holds 9840 values, a 60x40 RGBA image has 9600"):
        import_annotations(tmp_path / "bad.json", root, view_classes=CLASSES)
    assert not dm.table_exists(root, "segments")
    tasks[1]["annotations"][0]["result"][0]["value"]["rle"] = labelstudio_rle.encode(truth_labels(1) == 1)
    (tmp_path / "good.json").write_text(json.dumps(tasks))
    import_annotations(tmp_path / "good.json", root, view_classes=CLASSES)
    rows = segments_by_id(root)
    for n, iid in enumerate(ids):
        assert np.array_equal(dm.rle.rles_to_label_map(rows[iid]["view_rles"]), truth_labels(n))
