"""`diffveri toy detector`: ultralytics training offline on a tiny YOLO dataset, weights + mAP50 report."""

from __future__ import annotations

import json

from pipeline.cli import main

from .synth import write_yolo_dataset


def test_toyworld_detector_trains_saves_weights_and_reports_map50(tmp_path, capsys):
    data = write_yolo_dataset(tmp_path / "detection", n_train=8, n_val=4, size=64)
    rc = main(["toy", "detector", "--root", str(tmp_path), "--epochs", "1", "--img-size", "64", "--batch-size", "8"])
    assert rc == 0
    weights = tmp_path / "models" / "toy-yolo.pt"
    assert weights.is_file() and data.is_file()
    report = json.loads(weights.with_suffix(".json").read_text())
    assert report["names"] == {"0": "car"} and report["eval_split"] == "test" and report["n_eval_images"] == 4
    assert 0.0 <= report["map50"] <= 1.0
    assert "mAP50=" in capsys.readouterr().out
    # The weights load as a detector with the dataset's classes (so the toy profile uses vehicle_classes: all).
    from pipeline.filter import UltralyticsDetector

    assert UltralyticsDetector(weights, imgsz=64).names == {0: "car"}


def test_missing_dataset_says_how_to_make_it(tmp_path, capsys):
    assert main(["toy", "detector", "--root", str(tmp_path)]) == 2
    assert "diffveri toy world --root" in capsys.readouterr().err
