"""The filter stage end to end: rows for every image, crops, failures kept, resume; a real YOLO run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import data_manifests as dm
from pipeline.filter import FilterRules, UltralyticsDetector, filter_images
from pipeline.filter.stage import load_rgb
from pipeline.toyworld.synthetic import write_generations

from .synth import draw, known_detector, make_generations, png

RULES = FilterRules(min_area=0.02, vehicle_classes=None)


def test_every_image_gets_a_row_and_kept_images_a_margin_crop(tmp_path):
    truth = make_generations(tmp_path, n_identities=2, per_identity=3)
    det = known_detector(tmp_path, truth)
    counts = filter_images(root=tmp_path, detector=det, rules=RULES, batch_size=4, crop_margin=0.1, progress=False)
    assert counts["processed"] == 6 and counts["kept"] == 6
    assert det.batches == [4, 2]  # batched
    rows = {r["image_id"]: r for r in dm.read_rows(tmp_path, "detections")}
    assert set(rows) == set(truth)
    for iid, r in rows.items():
        assert r["status"] == "ok" and r["detector_ref"] == "known-boxes:test"
        x1, y1, x2, y2 = truth[iid][0]
        assert r["bbox"] == pytest.approx([x1, y1, x2, y2])
        crop = load_rgb(tmp_path / r["crop_path"])
        mx, my = 0.1 * (x2 - x1), 0.1 * (y2 - y1)
        assert crop.shape[1] == min(int(np.ceil(x2 + mx)), 96) - max(int(np.floor(x1 - mx)), 0)
        assert crop.shape[0] == min(int(np.ceil(y2 + my)), 96) - max(int(np.floor(y1 - my)), 0)
        assert r["crop_path"].startswith(f"crops/{r['crop_path'].split('/')[1]}/")
    assert not dm.validate(tmp_path)  # the contract holds (foreign keys, files)


def test_rejections_failures_and_resume(tmp_path):
    truth = make_generations(tmp_path, n_identities=1, per_identity=4)
    ids = sorted(truth)
    # Two vehicles in one image, a broken file and a missing file.
    two, _ = draw(7, boxes=[(5, 5, 40, 30), (50, 50, 90, 80)])
    gens = {r["image_id"]: r for r in dm.read_rows(tmp_path, "generations")}
    dm.atomic_write_bytes(tmp_path / gens[ids[0]]["path"], png(two))
    truth[ids[0]] = [(5, 5, 40, 30), (50, 50, 90, 80)]
    (tmp_path / gens[ids[1]]["path"]).write_bytes(b"not a png")
    (tmp_path / gens[ids[2]]["path"]).unlink()
    det = known_detector_safe(tmp_path, truth)
    counts = filter_images(root=tmp_path, detector=det, rules=RULES, batch_size=3, progress=False)
    assert counts == {"processed": 4, "kept": 1, "rejected": 1, "failed": 2, "skipped": 0}
    rows = {r["image_id"]: r for r in dm.read_rows(tmp_path, "detections")}
    assert (rows[ids[0]]["status"], rows[ids[0]]["reason"], rows[ids[0]]["n_vehicles"]) == (
        "rejected",
        "multiple_vehicles",
        2,
    )
    assert rows[ids[0]]["crop_path"] is None
    assert (rows[ids[1]]["status"], rows[ids[1]]["reason"]) == ("failed", "unreadable_image")
    assert (rows[ids[2]]["status"], rows[ids[2]]["reason"]) == ("failed", "missing_file")
    # 2. Resume: nothing left to do, nothing predicted.
    det.batches.clear()
    again = filter_images(root=tmp_path, detector=det, rules=RULES, progress=False)
    assert again["processed"] == 0 and again["skipped"] == 4 and det.batches == []


def known_detector_safe(root, truth):
    """``known_detector`` for a root where some image files are broken or missing."""
    from .synth import KnownBoxesDetector

    table = {}
    for r in dm.read_rows(root, "generations"):
        try:
            img = load_rgb(root / r["path"])
        except Exception:
            continue
        table[KnownBoxesDetector.key(img)] = [[*map(float, b), 0.9, 0.0] for b in truth[r["image_id"]]]
    return KnownBoxesDetector(table)


def test_identities_restrict_the_work(tmp_path):
    truth = make_generations(tmp_path, n_identities=2, per_identity=2)
    det = known_detector(tmp_path, truth)
    counts = filter_images(root=tmp_path, detector=det, rules=RULES, identities=["toy001"], progress=False)
    assert counts["processed"] == 2
    assert {r["image_id"] for r in dm.read_rows(tmp_path, "detections")} == {
        r["image_id"] for r in dm.read_rows(tmp_path, "generations") if r["identity_id"] == "toy001"
    }


def test_real_yolo_run_on_toy_world_images_through_the_stage_adapter(tmp_path):
    """A randomly initialised YOLO11n saved to a local .pt, run by `diffveri run filter`'s adapter on toy renders."""
    from ultralytics import YOLO

    from pipeline.filter import run_stage

    write_generations(tmp_path, identities=1, per_identity=3)
    weights = tmp_path / "models" / "rand.pt"
    weights.parent.mkdir(parents=True)
    YOLO("yolo11n.yaml").save(str(weights))
    config = {
        "filter": {"weights": "models/rand.pt", "imgsz": 64, "batch_size": 2, "conf_min": 0.01, "conf_other": 0.001}
    }
    result = run_stage(config, tmp_path, None)
    assert result.counts["processed"] == 3 and result.counts["failed"] == 0
    rows = dm.read_rows(tmp_path, "detections")
    assert len(rows) == 3 and all(r["detector_ref"].startswith("ultralytics:rand.pt@") for r in rows)
    assert all(r["status"] in ("ok", "rejected") for r in rows)
    assert run_stage(config, tmp_path, None).counts == {"processed": 0}  # resumable
    # Batched prediction and the per-image path agree on the same model.
    det = UltralyticsDetector(weights, imgsz=64, conf=0.001)
    imgs = [load_rgb(tmp_path / r["path"]) for r in dm.read_rows(tmp_path, "generations")]
    batched = det.predict(imgs)
    single = [det.predict([im])[0] for im in imgs]
    for b, s in zip(batched, single):
        assert b.shape == s.shape
        np.testing.assert_allclose(b, s, rtol=1e-3, atol=1e-2)


def test_missing_weights_error_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="toy detector"):
        UltralyticsDetector(tmp_path / "nope.pt")


def test_toy_world_renders_with_their_true_boxes_are_kept(tmp_path):
    """The renderer's exact boxes pass the toy profile's rules (a sanity check of the thresholds)."""
    from pipeline.config import load_config, section
    from pipeline.filter import FilterConfig

    truth = write_generations(tmp_path, identities=2, per_identity=4)
    cfg = section(load_config(Path(__file__).parents[2] / "configs/pipeline/toy.yaml"), "filter", FilterConfig)
    counts = filter_images(root=tmp_path, detector=known_detector(tmp_path, truth), rules=cfg.rules(), progress=False)
    rows = dm.read_rows(tmp_path, "detections")
    assert counts["processed"] == 8 and counts["failed"] == 0
    assert counts["kept"] >= 6, [(r["reason"], r["message"]) for r in rows if r["status"] != "ok"]
