"""The ``segment`` stage: view masks for every kept, accepted image, prompted with the filter stage's box.

Each image's embedding is computed once, ``batch_size`` images per encoder pass, and all prompts of a batch go
through the mask decoder together. One ``segments`` row per image; resumable (images with an ok row are skipped).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import torch
from tqdm import tqdm

from data_manifests import Reason, Status, existing_keys, inside_root, read_table, table_exists, upsert

from .annotations import human_ids
from .data import failed_row, make_segment_row, read_image
from .model import load_segmenter

log = logging.getLogger(__name__)


def accepted_ids(root: Path, kept: set[str]) -> set[str]:
    """The kept images a reviewer accepted. Without a ``reviews`` table every kept image counts as accepted."""
    if not table_exists(root, "reviews"):
        log.warning(
            "no reviews table under %s/manifests: treating all %d kept detections as accepted "
            "(run `diffveri run review` first to gate segmentation on review)",
            root,
            len(kept),
        )
        return set(kept)
    from data_manifests.queries import accepted_image_ids

    return kept & accepted_image_ids(root)


@dataclass
class Candidate:
    image_id: str
    path: Path | None
    bbox: list[float] | None


def select_candidates(
    root: Path, identities: list[str] | None, overwrite: bool
) -> tuple[list[Candidate], dict[str, int]]:
    """Images to segment: detection ok, review accepted, in ``identities`` (if given), no ok row yet."""
    detections = read_table(root, "detections", columns=["image_id", "bbox", "status"]).to_pylist()
    generations = {
        r["image_id"]: r
        for r in read_table(root, "generations", columns=["image_id", "identity_id", "path"]).to_pylist()
    }
    kept = {d["image_id"] for d in detections if d["status"] == Status.OK.value}
    accepted = accepted_ids(root, kept)
    # Human annotations are never replaced by predictions, not even with overwrite.
    done = (
        human_ids(root) if overwrite else existing_keys(root, "segments", filter=pc.field("status") == Status.OK.value)
    )
    counts = {"not_kept": len(detections) - len(kept), "not_accepted": len(kept) - len(accepted), "skipped": 0}
    out = []
    for det in sorted(detections, key=lambda d: d["image_id"]):
        iid = det["image_id"]
        if iid not in accepted:
            continue
        gen = generations.get(iid)
        if identities is not None and (gen is None or gen["identity_id"] not in identities):
            continue
        if iid in done:
            counts["skipped"] += 1
            continue
        path = inside_root(root, gen["path"], f"generations[{iid}].path") if gen is not None and gen["path"] else None
        out.append(Candidate(iid, path, det["bbox"]))
    return out, counts


def _box_problem(bbox: list[float] | None, shape: tuple[int, int]) -> str | None:
    if bbox is None:
        return "the detections row has no bbox"
    x1, y1, x2, y2 = bbox
    if not all(np.isfinite(bbox)) or x2 <= x1 or y2 <= y1:
        return f"degenerate bbox {bbox}"
    h, w = shape
    if x2 <= 0 or y2 <= 0 or x1 >= w or y1 >= h:
        return f"bbox {bbox} lies outside the {w}x{h} image"
    return None


def segment_images(
    *,
    root: Path,
    checkpoint: Path,
    identities: list[str] | None = None,
    batch_size: int = 8,
    overwrite: bool = False,
    flush_every: int = 64,
    device: str = "cpu",
    num_threads: int = 1,
) -> dict[str, int]:
    """Segment the selected images of ``root`` with the fine-tuned ``checkpoint``; returns outcome counts."""
    torch.set_num_threads(num_threads)
    candidates, counts = select_candidates(root, identities, overwrite)
    counts.update(processed=0, failed=0, rejected=0)
    if not candidates:
        return counts
    segmenter, sha = load_segmenter(checkpoint, device)
    ref = f"sam:{sha}"
    buffer: list[dict[str, Any]] = []

    def flush() -> None:
        if buffer:
            upsert(root, "segments", buffer)
            buffer.clear()

    def record(row: dict[str, Any]) -> None:
        status = row["status"]
        counts["processed" if status == Status.OK.value else status] += 1
        buffer.append(row)
        if len(buffer) >= flush_every:
            flush()

    for start in tqdm(range(0, len(candidates), batch_size), desc="segment", unit="batch"):
        # 1. Load the batch; rows with a missing file, unreadable image or no usable box are recorded and dropped.
        images, boxes, ids = [], [], []
        for cand in candidates[start : start + batch_size]:
            if cand.path is None:
                record(failed_row(cand.image_id, Reason.MISSING_FILE, "no generations row gives this image's path"))
                continue
            try:
                image = read_image(cand.path)
            except FileNotFoundError as exc:
                record(failed_row(cand.image_id, Reason.MISSING_FILE, str(exc)))
                continue
            except ValueError as exc:
                record(failed_row(cand.image_id, Reason.UNREADABLE_IMAGE, str(exc)))
                continue
            problem = _box_problem(cand.bbox, image.shape[:2])
            if problem:
                record(failed_row(cand.image_id, Reason.NO_BOX, problem, bbox=cand.bbox))
                continue
            images.append(image)
            boxes.append(cand.bbox)
            ids.append(cand.image_id)
        if not images:
            continue
        # 2. One encoder pass and one decoder pass for the whole batch.
        for iid, box, (vehicle, labels) in zip(ids, boxes, segmenter.predict(images, np.asarray(boxes), batch_size)):
            record(make_segment_row(iid, box, vehicle, labels, segmenter.view_classes, ref))
    flush()
    return counts


def run_stage(config: dict[str, Any], root: Path, identities: list[str] | None = None):
    """``diffveri run segment`` adapter: the ``segment:`` section -> :func:`segment_images`."""
    from pipeline.config import section
    from pipeline.stages import StageResult

    from .config import SegmentConfig

    cfg = section(config, "segment", SegmentConfig)
    checkpoint = Path(cfg.checkpoint) if Path(cfg.checkpoint).is_absolute() else root / cfg.checkpoint
    counts = segment_images(
        root=root,
        checkpoint=checkpoint,
        identities=identities,
        batch_size=cfg.batch_size,
        overwrite=cfg.overwrite,
        flush_every=cfg.flush_every,
        device=cfg.device,
        num_threads=cfg.num_threads,
    )
    return StageResult("segment", counts, f"checkpoint {checkpoint}")
