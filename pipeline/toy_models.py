"""The toy profile's trained models, built once: the YOLO11n vehicle detector and the view SAM.

``diffveri toy models`` (``make toy-models``) trains both on a toy world of their own and publishes the weights in
``models/toy/`` of the repository, where ``make demo`` takes them from. Steps:

1. render a training world whose identities are disjoint from the demo's (indices from ``first_index`` on; the demo
   renders indices 0-9), without occluders like the toy profile's synthesis, plus detection scenes;
2. fine-tune the view SAM on the world's exact masks with the profile's ``segment`` section
   (:func:`pipeline.segment.finetune.finetune`), holding out a share of the identities for validation;
3. build the detector's YOLO dataset: the world's detection scenes (0-4 vehicles, tiny and truncated ones, non-vehicle
   distractors) **and** its single-vehicle renders with their true boxes, which are what the filter sees in the toy
   profile; renders of the held-out identities go to ``val``;
4. train YOLO11n on it (:func:`pipeline.filter.toy_detector.train_toy_detector`);
5. run the toy filter and segmenter on the held-out identities' renders and score them against the truth like the
   demo is scored (:mod:`pipeline.truth`); copy both weights into ``out`` with ``toy_models.json`` (settings,
   scores, sha256 of each file, git commit).

Every step is seeded; a second run on the same machine and library versions gives the same models up to
floating-point non-determinism of the CPU kernels.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

import data_manifests as dm

from .formats.yolo import data_yaml, label_line

log = logging.getLogger(__name__)

DETECTOR_FILE = "toy-yolo.pt"
SEGMENTER_FILE = "sam_view.pt"
REPORT_FILE = "toy_models.json"


@dataclass(frozen=True)
class ToyModelsSettings:
    """What ``make toy-models`` trains on and for how long (the SAM's settings are the profile's ``segment``)."""

    identities: int = 120  # training-world identities (indices first_index ...)
    images_per_identity: int = 18  # two cycles of the nine intended views
    first_index: int = 1000  # disjoint from the demo world's identities 0..9
    seed: int = 0
    occluder_probability: float = 0.0  # the toy profile synthesises without occluders
    detection_images: int = 1000  # multi-vehicle scenes (a fifth go to val)
    detector_renders_per_identity: int = 9  # single-vehicle renders per identity in the detector's dataset
    detector_epochs: int = 30
    detector_batch: int = 32
    detector_imgsz: int = 128
    val_fraction: float = 0.15  # share of identities held out (detector renders and segmenter alike)
    workers: int = 2  # render processes
    reuse: bool = False  # keep a model already trained in the work folder (its report file marks it finished)


def world_settings(settings: ToyModelsSettings):
    """The training world's :class:`pipeline.toyworld.export.ToyworldSettings`."""
    from pipeline.toyworld.export import ToyworldSettings

    return ToyworldSettings(
        identities=settings.identities,
        images_per_identity=settings.images_per_identity,
        seed=settings.seed,
        first_index=settings.first_index,
        occluder_probability=settings.occluder_probability,
        detection_images=settings.detection_images,
    )


def _link(src: Path, dest: Path) -> None:
    """Hard-link ``src`` to ``dest`` (a copy across file systems); ultralytics finds labels by the image path."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.unlink(missing_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def val_identities(identities: list[str], val_fraction: float, seed: int) -> set[str]:
    """The held-out identities: those :func:`pipeline.segment.data.split_by_identity` holds out of fine-tuning."""
    from types import SimpleNamespace

    from pipeline.segment.data import split_by_identity

    items = [SimpleNamespace(identity_id=i) for i in sorted(set(identities))]
    _, held = split_by_identity(items, val_fraction, seed)  # type: ignore[arg-type]  # only .identity_id is read
    return {item.identity_id for item in held}


def detector_dataset(world: Path, out: Path, per_identity: int, held_out: set[str]) -> Path:
    """Write ``out/{images,labels}/{train,val}`` from ``world``'s detection scenes and single-vehicle renders (the
    first ``per_identity`` of each identity, by image id, with their true boxes) and ``out/data.yaml``."""
    if out.exists():
        shutil.rmtree(out)
    # 1. Detection scenes, as the toy world split them.
    for split in ("train", "val"):
        for image in sorted((world / "detection" / "images" / split).glob("*.jpg")):
            _link(image, out / "images" / split / f"scene_{image.name}")
            label = world / "detection" / "labels" / split / f"{image.stem}.txt"
            _link(label, out / "labels" / split / f"scene_{image.stem}.txt")
    # 2. Single-vehicle renders with their exact boxes; held-out identities validate.
    ok = pc.field("status") == dm.Status.OK
    gens = dm.read_rows(world, "generations", columns=["image_id", "identity_id", "path", "width", "height"], filter=ok)
    boxes = {r["image_id"]: r["bbox"] for r in dm.read_rows(world, "segments_gt", columns=["image_id", "bbox"])}
    taken: dict[str, int] = {}
    for g in sorted(gens, key=lambda r: r["image_id"]):
        bbox = boxes.get(g["image_id"])
        if bbox is None or taken.get(g["identity_id"], 0) >= per_identity:
            continue
        taken[g["identity_id"]] = taken.get(g["identity_id"], 0) + 1
        split = "val" if g["identity_id"] in held_out else "train"
        src = dm.inside_root(world, g["path"], f"generations[{g['image_id']}].path")
        _link(src, out / "images" / split / f"render_{g['image_id']}{src.suffix}")
        label = out / "labels" / split / f"render_{g['image_id']}.txt"
        label.write_text(label_line(0, bbox, int(g["width"]), int(g["height"])) + "\n")
    comment = "YOLO dataset written by `diffveri toy-models`: toy-world scenes + single-vehicle renders."
    (out / "data.yaml").write_text(data_yaml(["vehicle"], [comment]))
    return out / "data.yaml"


def held_out_check(
    world: Path,
    held_out: set[str],
    detector_weights: Path,
    segmenter_weights: Path,
    config: dict[str, Any],
    noise_images: int = 20,
    size: int = 128,
    seed: int = 0,
) -> dict[str, Any]:
    """The toy pipeline's filter and segmenter on the held-out identities' renders plus ``noise_images`` noise images,
    scored like the demo is (:mod:`pipeline.truth`): filter precision/recall of keep and noise rejected, then the
    dominant view of every kept image, segmented inside the detector's box, against the truth. This is the figure to
    choose toy-model settings by."""
    import numpy as np
    import torch

    from pipeline.config import section
    from pipeline.filter.detector import UltralyticsDetector
    from pipeline.filter.rules import judge
    from pipeline.filter.stage import FilterConfig, load_rgb
    from pipeline.segment.data import make_segment_row
    from pipeline.segment.model import load_segmenter
    from pipeline.truth import filter_figures, filter_truth, view_figures, view_truth

    cfg = section(config, "filter", FilterConfig)
    rules = cfg.rules()
    detector = UltralyticsDetector(
        detector_weights, imgsz=cfg.imgsz, conf=min(rules.conf_other, rules.conf_min), iou=cfg.iou, device=cfg.device
    )
    segmenter, _ = load_segmenter(segmenter_weights)
    torch.set_num_threads(1)  # 2 threads crawl when another job holds a core (configs/pipeline/toy.yaml)
    gens = [
        g for g in dm.read_rows(world, "generations") if g["identity_id"] in held_out and g["status"] == dm.Status.OK
    ]
    truths = dm.read_rows(world, "segments_gt", filter=pc.field("image_id").isin([g["image_id"] for g in gens]))
    # Images without truth that must be rejected: uniform noise, like the toy profile's untrained diffusion model.
    rng = dm.seeds.rng(seed, "toy_models.noise_images")
    noise = {f"noise{k:04d}": rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for k in range(noise_images)}
    gens += [{"image_id": k, "width": size, "height": size, "path": None} for k in noise]
    detections, segments = [], []
    for start in range(0, len(gens), 16):
        chunk = gens[start : start + 16]
        images = [
            noise[g["image_id"]] if g["path"] is None else load_rgb(dm.inside_root(world, g["path"], "generations"))
            for g in chunk
        ]
        kept = []
        for g, image, boxes in zip(chunk, images, detector.predict(images), strict=True):
            verdict = judge(boxes, image.shape[:2], rules)
            status, reason = (dm.Status.OK, None) if verdict.kept else (dm.Status.REJECTED, verdict.reason.value)  # type: ignore[union-attr]
            detections.append({"image_id": g["image_id"], "status": status, "reason": reason})
            if verdict.kept:
                kept.append((g["image_id"], image, verdict.bbox))
        if kept:
            masks = segmenter.predict([k[1] for k in kept], np.asarray([k[2] for k in kept]))
            for (image_id, _, box), (vehicle, labels) in zip(kept, masks, strict=True):
                segments.append(make_segment_row(image_id, box, vehicle, labels, segmenter.view_classes, "check"))
    return {
        "images": len(gens),
        "identities": len(held_out),
        "noise_images": noise_images,
        "filter": filter_figures(filter_truth(gens, detections, truths, rules)),
        "views": view_figures(view_truth(segments, truths)),
    }


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, timeout=10).stdout
        return out.stdout.strip() + ("-dirty" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def train_segmenter(config: dict[str, Any], world: Path, work: Path) -> dict[str, Any]:
    """Fine-tune the view SAM on ``world``'s exact masks with ``config``'s ``segment`` section; the checkpoint and the
    run folder go under ``work/segment``. Returns the run's ``result.json`` plus the settings used."""
    from pipeline.config import section
    from pipeline.segment.config import SegmentConfig
    from pipeline.segment.data import resolve_view_classes
    from pipeline.segment.finetune import finetune

    cfg = section(config, "segment", SegmentConfig)
    settings = {k: v for k, v in dataclasses.asdict(cfg.finetune).items() if k != "out_dir"}
    result = finetune(
        root=world,
        view_classes=resolve_view_classes(cfg.view_set, cfg.view_classes),
        model=cfg.model,
        checkpoint=work / "segment" / SEGMENTER_FILE,
        out_dir=work / "segment",
        resume=False,
        device=cfg.device,
        config_snapshot={"segment": config.get("segment")},
        **settings,
    )
    log.info("segmenter: %d steps in %.0f s", result.steps, result.seconds)
    return {**json.loads((work / "segment" / "result.json").read_text()), "settings": settings}


def build_toy_models(
    config: dict[str, Any], work: Path, out: Path, settings: ToyModelsSettings, *, progress: bool = True
) -> dict[str, Any]:
    """Steps 1-5 of the module docstring; returns the report also written to ``out/toy_models.json``."""
    from pipeline.filter.toy_detector import train_toy_detector
    from pipeline.toyworld.export import build_toyworld

    work, out = Path(work), Path(out)
    world = work / "world"
    started = time.monotonic()
    # 1. The training world (resumes when it exists with the same settings).
    build_toyworld(world, world_settings(settings), workers=settings.workers, progress=progress)
    identities = [r["identity_id"] for r in dm.read_rows(world, "subjects", columns=["identity_id"])]
    held_out = val_identities(identities, settings.val_fraction, settings.seed)
    rendered = time.monotonic()
    # 2. The segmenter first, in a fresh process state (ultralytics training sets torch-global flags and threads);
    #    its validation identities are the held-out ones (same split function and seed).
    seg_config = {**config, "segment": {**config.get("segment", {})}}
    seg_config["segment"]["finetune"] = {
        **seg_config["segment"].get("finetune", {}),
        "table": "segments_gt",
        "val_fraction": settings.val_fraction,
        "seed": settings.seed,
    }
    if settings.reuse and (work / "segment" / "result.json").is_file():
        segmenter = json.loads((work / "segment" / "result.json").read_text())
        log.info("reusing the segmenter trained in %s", work / "segment")
    else:
        segmenter = train_segmenter(seg_config, world, work)
    segmented = time.monotonic()
    # 3-4. The detector.
    if settings.reuse and (work / DETECTOR_FILE).with_suffix(".json").is_file():
        detector = json.loads((work / DETECTOR_FILE).with_suffix(".json").read_text())
        log.info("reusing the detector trained in %s", work)
    else:
        data_yaml = detector_dataset(world, work / "detector", settings.detector_renders_per_identity, held_out)
        detector = dataclasses.asdict(
            train_toy_detector(
                root=work,
                data_yaml=data_yaml,
                out=work / DETECTOR_FILE,
                epochs=settings.detector_epochs,
                imgsz=settings.detector_imgsz,
                batch=settings.detector_batch,
                seed=settings.seed,
            )
        )
    detected = time.monotonic()
    # 5. The toy pipeline on the held-out identities' renders, then publish.
    check = held_out_check(
        world, held_out, work / DETECTOR_FILE, work / "segment" / SEGMENTER_FILE, config, seed=settings.seed
    )
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "command": "diffveri toy-models",
        "git_commit": _git_commit(),
        "settings": dataclasses.asdict(settings),
        "held_out_identities": sorted(held_out),
        "detector": {**detector, "weights": DETECTOR_FILE},
        "segmenter": {**segmenter, "weights": SEGMENTER_FILE},
        "held_out_check": check,
        "minutes": {
            "world": round((rendered - started) / 60, 2),
            "segmenter": round((segmented - rendered) / 60, 2),
            "detector": round((detected - segmented) / 60, 2),
        },
    }
    for name, src in ((DETECTOR_FILE, work / DETECTOR_FILE), (SEGMENTER_FILE, work / "segment" / SEGMENTER_FILE)):
        dm.atomic_write_bytes(out / name, src.read_bytes())
        report[f"sha256_{name}"] = dm.sha256_file(out / name)
    dm.atomic_write_bytes(out / REPORT_FILE, json.dumps(report, indent=1, default=str).encode())
    log.info("toy models -> %s (%s)", out, report["minutes"])
    return report
