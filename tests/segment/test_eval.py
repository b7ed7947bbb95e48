"""Evaluation: IoU bookkeeping with known values, table comparison, checkpoint evaluation, PNG, CLI."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from data_manifests import VIEW_CLASSES_PVEN, VIEW_CLASSES_TOYWORLD, read_rows, upsert
from pipeline.cli import main
from pipeline.segment.data import class_mapping, make_segment_row
from pipeline.segment.evaluate import evaluate_checkpoint, evaluate_tables
from pipeline.segment.metrics import SegMeter

from .helpers import annotated_root, pipeline_root, save_tiny_checkpoint


def test_meter_known_values():
    classes = ("background", "front", "rear")
    true = np.array([[0, 1, 1, 2]])
    pred = np.array([[0, 1, 2, 2]])
    meter = SegMeter(classes)
    meter.update(pred, true, pred > 0, true > 0)
    r = meter.result()
    assert r["iou"] == {"background": 1.0, "front": 0.5, "rear": 0.5}
    assert r["view_miou"] == 0.5 and r["vehicle_iou"] == 1.0 and r["miou"] == pytest.approx(2 / 3)
    meter.update(np.zeros((1, 4), int), true, np.zeros((1, 4), bool), true > 0)  # missed everything
    assert meter.result()["vehicle_iou"] == 0.5


def test_absent_class_is_left_out_of_the_mean():
    meter = SegMeter(("background", "front", "top"))
    meter.update(np.array([[0, 1]]), np.array([[0, 1]]), np.array([[False, True]]), np.array([[False, True]]))
    r = meter.result()
    assert r["iou"]["top"] is None and r["view_miou"] == 1.0


def test_toyworld_classes_collapse_to_pven():
    mapping = class_mapping(VIEW_CLASSES_TOYWORLD, VIEW_CLASSES_PVEN, "x")
    assert [VIEW_CLASSES_PVEN[i] for i in mapping] == ["background", "front", "rear", "side", "side", "top"]
    with pytest.raises(ValueError, match="segment.view_classes"):
        class_mapping(("background", "wheel"), VIEW_CLASSES_PVEN, "image 7")


def _truth_as_predictions(root):
    """Predictions equal to the ground truth (collapsed to PVEN), except the first image is all background."""
    from pipeline.segment.data import label_map, load_annotated

    rows = []
    for i, item in enumerate(load_annotated(root, "segments_gt")):
        labels = label_map(item, VIEW_CLASSES_PVEN)
        if i == 0:
            labels[:] = 0
        rows.append(make_segment_row(item.image_id, item.bbox, labels > 0, labels, VIEW_CLASSES_PVEN, "sam:x"))
    upsert(root, "segments", rows)


def test_evaluate_tables_perfect_and_missing(tmp_path):
    pipeline_root(tmp_path, identities=2, images=2)
    _truth_as_predictions(tmp_path)
    result, samples = evaluate_tables(tmp_path)
    # the first prediction is an empty mask (rejected), so it counts as missing and the rest are exact
    assert result["missing"] == 1 and result["images"] == 3
    assert result["vehicle_iou"] == 1.0 and result["view_miou"] == 1.0
    assert len(samples) == 3 and samples[0].image is not None


def test_evaluate_against_another_root(tmp_path):
    truth_root, pred_root = tmp_path / "gt", tmp_path / "pred"
    annotated_root(truth_root, identities=1, images=2)
    pipeline_root(pred_root, identities=1, images=2)  # same seed -> same image ids
    _truth_as_predictions(pred_root)
    result, _ = evaluate_tables(pred_root, truth_root, "segments")
    assert result["images"] == 1 and result["vehicle_iou"] == 1.0


def test_evaluate_checkpoint_and_cli_png(tmp_path, capsys):
    annotated_root(tmp_path, identities=2, images=2)
    checkpoint = tmp_path / "sam.pt"
    save_tiny_checkpoint(checkpoint)
    result, samples = evaluate_checkpoint(checkpoint, tmp_path, "segments", batch_size=3, box_jitter=0.1)
    assert result["images"] == 4 and result["segmenter_ref"].startswith("sam:")
    assert 0.0 <= (result["vehicle_iou"] or 0.0) <= 1.0 and len(samples) == 4
    png = tmp_path / "out.png"
    code = main(["segment", "eval", "--root", str(tmp_path), "--checkpoint", str(checkpoint), "--out", str(png),
                 "--metrics", str(tmp_path / "m.json")])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "vehicle IoU" in out and "view mIoU" in out
    with Image.open(png) as img:
        assert img.size[0] == 3 * 2 * 64 and img.size[1] > 4 * 2 * 64


def test_cli_eval_without_predictions_is_a_clear_error(tmp_path, capsys):
    annotated_root(tmp_path, identities=1, images=1)
    rows = read_rows(tmp_path, "segments")
    assert rows
    code = main(["segment", "eval", "--root", str(tmp_path / "nothing")])
    assert code == 2
    assert "run `diffveri run segment` first" in capsys.readouterr().err
