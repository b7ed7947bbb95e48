"""``diffveri segment eval``: per-class IoU / mIoU of predicted view masks against ground truth, and a PNG.

Two sources of predictions:
* the ``segments`` table of a data root (what ``diffveri run segment`` wrote), compared with ``segments_gt`` of the
  same root or with the ``segments`` table of a toy world root (``--gt``);
* a checkpoint run on the fly over a ground-truth table's images, prompted with their true boxes (optionally
  jittered) — the held-out evaluation of a fine-tuned model on a toy world it has never seen.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
from PIL import Image, ImageDraw

from data_manifests import Status, atomic_write_bytes, read_table, rle, seeds, table_exists

from .data import Annotated, label_map, load_annotated, read_image
from .metrics import SegMeter
from .model import load_segmenter

log = logging.getLogger(__name__)

# One colour per view name (left/right only appear with the toy world's classes).
PALETTE = {
    "background": (0, 0, 0),
    "front": (230, 60, 60),
    "rear": (60, 200, 80),
    "side": (60, 110, 240),
    "left": (60, 110, 240),
    "right": (240, 200, 40),
    "top": (220, 80, 220),
}


@dataclass
class Sample:
    """One image with its true and predicted label maps ``(H, W)`` in the evaluation classes."""

    image_id: str
    image: np.ndarray | None
    true_labels: np.ndarray
    pred_labels: np.ndarray


def evaluate_tables(
    root: Path, gt_root: Path | None = None, gt_table: str = "segments_gt", keep: int = 6
) -> tuple[dict[str, Any], list[Sample]]:
    """Compare ``root``'s ``segments`` (ok rows) with ``gt_root``'s ``gt_table`` by ``image_id``.

    Returns the metrics (plus ``missing``: ground-truth images without an ok prediction) and up to ``keep``
    samples for the PNG. The evaluation classes are the predictions' classes; ground truth is mapped onto them.
    """
    gt_root = gt_root or root
    if not table_exists(root, "segments"):
        raise FileNotFoundError(f"no segments table under {root}/manifests; run `diffveri run segment` first")
    preds = {r["image_id"]: r for r in read_table(root, "segments", filter=pc.field("status") == Status.OK).to_pylist()}
    truths = load_annotated(gt_root, gt_table)
    if not preds:
        raise ValueError(f"{root}/manifests/segments has no ok rows to evaluate")
    classes = tuple(next(iter(preds.values()))["view_classes"])
    meter = SegMeter(classes)
    samples: list[Sample] = []
    missing = 0
    for truth in truths:
        pred = preds.get(truth.image_id)
        if pred is None:
            missing += 1
            continue
        if tuple(pred["view_classes"]) != classes:
            raise ValueError(f"segments image_id={truth.image_id}: view classes {pred['view_classes']} != {classes}")
        true_labels = label_map(truth, classes)
        pred_vehicle = rle.decode(pred["vehicle_rle"])
        pred_labels = rle.rles_to_label_map(pred["view_rles"])
        pred_labels[~pred_vehicle] = 0
        if pred_labels.shape != true_labels.shape:
            raise ValueError(
                f"image_id={truth.image_id}: predicted masks {pred_labels.shape} and ground truth "
                f"{true_labels.shape} differ in size; were they made from the same image?"
            )
        meter.update(pred_labels, true_labels, pred_vehicle, rle.decode(truth.vehicle_rle))
        if len(samples) < keep:
            image = read_image(truth.path) if truth.path.is_file() else None
            samples.append(Sample(truth.image_id, image, true_labels, pred_labels))
    result = meter.result()
    result["missing"] = missing
    return result, samples


def evaluate_checkpoint(
    checkpoint: Path,
    gt_root: Path,
    gt_table: str = "segments",
    batch_size: int = 8,
    box_jitter: float = 0.0,
    seed: int = 0,
    keep: int = 6,
    limit: int | None = None,
) -> tuple[dict[str, Any], list[Sample]]:
    """Run ``checkpoint`` on ``gt_root``'s annotated images prompted with their true boxes (each corner moved by
    N(0, ``box_jitter`` * box side) to mimic a detector) and score it; no manifest is written."""
    segmenter, sha = load_segmenter(checkpoint)
    classes = segmenter.view_classes
    items: list[Annotated] = load_annotated(gt_root, gt_table)[:limit]
    if not items:
        raise ValueError(f"no ok rows in {gt_root}/manifests/{gt_table} to evaluate on")
    rng = seeds.rng(seed, "segment.evaluate.samples")
    meter = SegMeter(classes)
    samples: list[Sample] = []
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        images = [read_image(a.path, f"{a.image_id}: ") for a in chunk]
        boxes = np.asarray([a.bbox for a in chunk], dtype=np.float64)
        if box_jitter > 0:
            sides = np.concatenate([boxes[:, 2:] - boxes[:, :2]] * 2, axis=1)
            boxes = boxes + rng.normal(0, box_jitter, boxes.shape) * sides
        for item, image, (vehicle, labels) in zip(chunk, images, segmenter.predict(images, boxes, batch_size)):
            true_labels = label_map(item, classes)
            meter.update(labels, true_labels, vehicle, rle.decode(item.vehicle_rle))
            if len(samples) < keep:
                samples.append(Sample(item.image_id, image, true_labels, labels))
    result = meter.result()
    result.update(missing=0, segmenter_ref=f"sam:{sha}", box_jitter=box_jitter)
    return result, samples


def colourise(labels: np.ndarray, classes: tuple[str, ...]) -> np.ndarray:
    """Label map ``(H, W)`` -> RGB ``(H, W, 3)`` uint8 with :data:`PALETTE`."""
    table = np.asarray([PALETTE.get(c, (128, 128, 128)) for c in classes], dtype=np.uint8)
    return table[labels]


def comparison_png(path: Path, samples: list[Sample], classes: tuple[str, ...], scale: int = 2) -> None:
    """Write a grid: one row per image with columns image | true view mask | predicted view mask, plus a legend."""
    if not samples:
        raise ValueError("no samples to draw")
    h, w = samples[0].true_labels.shape
    tile_h, tile_w, header = h * scale, w * scale, 14
    legend = 16
    canvas = Image.new("RGB", (3 * tile_w, header + len(samples) * tile_h + legend), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for col, title in enumerate(("image", "true views", "predicted views")):
        draw.text((col * tile_w + 4, 2), title, fill=(0, 0, 0))
    for row, s in enumerate(samples):
        tiles = [
            s.image if s.image is not None else np.zeros((h, w, 3), np.uint8),
            colourise(s.true_labels, classes),
            colourise(s.pred_labels, classes),
        ]
        for col, tile in enumerate(tiles):
            img = Image.fromarray(tile).resize((tile_w, tile_h), Image.NEAREST)
            canvas.paste(img, (col * tile_w, header + row * tile_h))
    x = 4
    y = header + len(samples) * tile_h + 2
    for name in classes:
        draw.rectangle([x, y + 2, x + 9, y + 11], fill=PALETTE.get(name, (128, 128, 128)), outline=(0, 0, 0))
        draw.text((x + 12, y + 1), name, fill=(0, 0, 0))
        x += 12 + 7 * len(name) + 10
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    atomic_write_bytes(Path(path), buffer.getvalue())
