"""The toy chain with the real trained detector: toy world -> toy detector -> run filter -> run review (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import data_manifests as dm
from pipeline.cli import main

CONFIG = str(Path(__file__).parents[2] / "configs" / "pipeline" / "toy.yaml")


@pytest.mark.slow
def test_toy_chain_filter_then_auto_review(tmp_path):
    root = str(tmp_path)
    assert main(["toy", "world", "--root", root, "--identities", "3", "--images-per-identity", "4",
                 "--detection-images", "120", "--no-progress"]) == 0  # fmt: skip
    assert main(["toy", "detector", "--root", root, "--epochs", "5", "--img-size", "96"]) == 0
    report = json.loads((tmp_path / "models" / "toy-yolo.json").read_text())
    assert report["eval_split"] == "val" and 0.0 <= report["map50"] <= 1.0
    assert main(["run", "filter", "--config", CONFIG, "--root", root, "--set", "filter.imgsz=96"]) == 0
    gens = {r["image_id"] for r in dm.read_rows(tmp_path, "generations") if r["status"] == "ok"}
    det = dm.read_rows(tmp_path, "detections")
    assert {r["image_id"] for r in det} == gens  # every image has its row, kept or with a reason
    assert all(r["status"] == "ok" or r["reason"] for r in det)
    assert main(["run", "review", "--config", CONFIG, "--root", root]) == 0
    from data_manifests.queries import accepted_image_ids

    assert accepted_image_ids(tmp_path) == {r["image_id"] for r in det if r["status"] == "ok"}
    assert not [p for p in dm.validate(tmp_path) if p.table in ("detections", "reviews")]
