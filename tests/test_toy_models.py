"""``diffveri toy models``: the detector's dataset (scenes + single-vehicle renders), the held-out identities, and
(slow) the whole build at tiny sizes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

import data_manifests as dm
from pipeline.config import load_config
from pipeline.filter.detector import load_yolo
from pipeline.segment.model import load_segmenter
from pipeline.toy_models import ToyModelsSettings, build_toy_models, detector_dataset, val_identities
from pipeline.toyworld.export import ToyworldSettings, build_toyworld

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "pipeline" / "toy.yaml"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("world")
    settings = ToyworldSettings(identities=6, images_per_identity=3, first_index=1000, detection_images=10)
    build_toyworld(out, settings, progress=False)
    return out


def test_held_out_identities_are_the_segmenters_validation_identities(world):
    from pipeline.segment.data import load_annotated, split_by_identity

    ids = [r["identity_id"] for r in dm.read_rows(world, "subjects")]
    held = val_identities(ids, 0.34, seed=3)
    _, val = split_by_identity(load_annotated(world, "segments_gt"), 0.34, 3)
    assert held == {a.identity_id for a in val} and len(held) == 2
    assert val_identities(ids, 0.0, 3) == set()


def test_detector_dataset_holds_scenes_and_renders_with_their_true_boxes(world, tmp_path):
    held = {"toy1000"}
    data_yaml = detector_dataset(world, tmp_path / "det", per_identity=2, held_out=held)
    spec = yaml.safe_load(data_yaml.read_text())
    assert spec["names"] == {0: "vehicle"} and spec["train"] == "images/train"
    images = {split: sorted((tmp_path / "det" / "images" / split).iterdir()) for split in ("train", "val")}
    renders = {s: [p for p in images[s] if p.name.startswith("render_")] for s in images}
    scenes = {s: [p for p in images[s] if p.name.startswith("scene_")] for s in images}
    assert len(scenes["train"]) + len(scenes["val"]) == 10 and len(scenes["val"]) == 2
    assert len(renders["val"]) == 2 and len(renders["train"]) == 5 * 2  # 2 per identity, toy1000's in val
    gens = {r["image_id"]: r for r in dm.read_rows(world, "generations")}
    boxes = {r["image_id"]: r["bbox"] for r in dm.read_rows(world, "segments_gt")}
    for split in ("train", "val"):
        for image in renders[split]:
            image_id = image.stem.removeprefix("render_")
            assert (gens[image_id]["identity_id"] in held) == (split == "val")
            assert image.read_bytes() == (world / gens[image_id]["path"]).read_bytes()
            cls, cx, cy, w, h = (tmp_path / "det" / "labels" / split / f"{image.stem}.txt").read_text().split()
            x1, y1, x2, y2 = boxes[image_id]
            assert cls == "0"
            assert [float(cx), float(cy), float(w), float(h)] == pytest.approx(
                [(x1 + x2) / 256, (y1 + y2) / 256, (x2 - x1) / 128, (y2 - y1) / 128], abs=1e-6
            )
        for image in scenes[split]:  # a scene keeps its own label file
            assert (tmp_path / "det" / "labels" / split / f"{image.stem}.txt").is_file()


@pytest.mark.slow
def test_build_toy_models_at_tiny_size_publishes_loadable_weights_and_a_report(tmp_path):
    config = load_config(
        CONFIG, ["segment.finetune.steps=4", "segment.finetune.eval_every=2", "segment.finetune.num_threads=1"]
    )
    settings = ToyModelsSettings(
        identities=7, images_per_identity=3, detection_images=10, detector_epochs=1, detector_batch=8, workers=0
    )
    report = build_toy_models(config, tmp_path / "work", tmp_path / "out", settings, progress=False)
    _, digest = load_yolo(tmp_path / "out" / "toy-yolo.pt")  # the filter stage's safe loader
    segmenter, sha = load_segmenter(tmp_path / "out" / "sam_view.pt")  # the segment stage's loader
    assert report["sha256_toy-yolo.pt"].startswith(digest) and report["sha256_sam_view.pt"] == sha
    assert segmenter.view_classes == dm.VIEW_CLASSES_PVEN
    saved = json.loads((tmp_path / "out" / "toy_models.json").read_text())
    assert saved["segmenter"]["steps"] == 4 and saved["detector"]["epochs"] == 1
    check = saved["held_out_check"]
    assert check["identities"] == 1 and check["images"] == 3 + 20 and check["filter"]["should_keep"] == 3
    assert check["filter"]["without_truth"] == 20  # noise images, like the untrained diffusion model's
    # A second run with reuse keeps both models and only re-checks and re-publishes them.
    again = build_toy_models(config, tmp_path / "work", tmp_path / "out", dataclasses.replace(settings, reuse=True))
    assert again["sha256_sam_view.pt"] == sha and again["minutes"]["segmenter"] < 0.05


REPO_MODELS = Path(__file__).resolve().parents[1] / "models" / "toy"


def test_committed_toy_models_load_through_the_safe_loaders_also_from_threads_at_once():
    """The demo's weights (models/toy) pass the filter's and the segment stage's loaders; the flow builds its shards'
    detectors concurrently on threads, which once made the weights-only check refuse BatchNorm2d."""
    from concurrent.futures import ThreadPoolExecutor

    report = json.loads((REPO_MODELS / "toy_models.json").read_text())
    with ThreadPoolExecutor(4) as pool:
        digests = list(pool.map(lambda _: load_yolo(REPO_MODELS / "toy-yolo.pt")[1], range(4)))
    assert set(digests) == {report["sha256_toy-yolo.pt"][:12]}
    segmenter, sha = load_segmenter(REPO_MODELS / "sam_view.pt")
    assert sha == report["sha256_sam_view.pt"] and segmenter.view_classes == dm.VIEW_CLASSES_PVEN
