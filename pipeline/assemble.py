"""Assemble the final DiffVERI table: accepted, segmented images with identity-disjoint Re-ID splits.

An image enters the dataset when its generation is ``ok``, its detection kept it, review accepted it, and its
segmentation is ``ok`` (``source: synthetic``). With ``crops`` it enters as a vehicle crop (detector box plus
``crop_margin``, masks cut alike; :mod:`pipeline.assemble_crops`), and with ``include_real`` its identity's subject
photos enter beside it (``source: real``; :mod:`pipeline.assemble_real`). Identities are split into train and
test (disjoint); each test identity contributes a few queries (each on its own virtual camera) and the rest of
its images to the gallery, so every query has a same-identity gallery match on another camera — the VeRi-776
protocol. A VeRi-style folder export and the
dataset statistics (the paper's comparison-table row) are written beside the manifests.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
from tqdm import tqdm

import data_manifests as dm
from data_manifests import Status
from data_manifests.enums import ImageSource
from data_manifests.rows import CAMERA_OF_VIEW, diffveri_row
from data_manifests.stats import dataset_row

from .assemble_crops import crop_row
from .assemble_real import real_rows
from .formats.crop import vehicle_box
from .formats.veri import veri_writer
from .splits import assign_splits
from .stages import StageResult

log = logging.getLogger(__name__)


@dataclass
class AssembleConfig:
    test_identity_fraction: float = 0.3  # share of identities held out for query/gallery
    queries_per_identity: int = 2  # at most; each on a distinct camera with a gallery match on another camera
    export_veri: bool = True  # write ROOT/export/VeRi (crops, name_*.txt)
    crop_margin: float = 0.1  # margin around the vehicle box in crops, as a fraction of the box size per side
    crops: bool = True  # the table's images are vehicle crops (detector box + crop_margin), masks cut alike
    crop_format: str = "png"  # png (lossless) | jpg (quality 95; a tenth of the bytes at paper scale)
    include_real: bool = True  # subject photos enter as source: real rows, in their identity's split
    seed: int = 0


def _accepted(root: Path) -> set[str]:
    from data_manifests.queries import accepted_image_ids

    return accepted_image_ids(root)


def _candidates(root: Path) -> list[dict[str, Any]]:
    """Rows of every image that passed all stages, joined across the stage tables."""
    ok = pc.field("status") == Status.OK
    gens = {r["image_id"]: r for r in dm.read_rows(root, "generations", filter=ok)}
    kept = {r["image_id"]: r for r in dm.read_rows(root, "detections", filter=ok)}
    segs = {r["image_id"]: r for r in dm.read_rows(root, "segments", filter=ok)}
    subjects = {r["identity_id"]: r for r in dm.read_rows(root, "subjects")}
    reviews = {}
    if dm.table_exists(root, "reviews"):
        for r in dm.read_rows(root, "reviews", columns=["image_id", "reviewer", "view_label", "decision"]):
            reviews[r["image_id"]] = r  # any batch; only used for provenance and the reviewed view label
    accepted = _accepted(root)
    rows = []
    for image_id in sorted(set(gens) & set(kept) & set(segs) & accepted):
        g, d, s = gens[image_id], kept[image_id], segs[image_id]
        review = reviews.get(image_id) or {}
        view = review.get("view_label") or g["intended_view"]
        row = diffveri_row(
            image_id=image_id,
            identity_id=g["identity_id"],
            class_name=(subjects.get(g["identity_id"]) or {}).get("class_name"),
            camera_id=CAMERA_OF_VIEW[view],
            path=g["path"],
            width=g["width"],
            height=g["height"],
            view_label=view,
            masks=s,
            source=ImageSource.SYNTHETIC,
            provenance={
                "model_ref": g["model_ref"],
                "seed": g["seed"],
                "prompt": g["prompt"],
                "lora_sha256": g["lora_sha256"],
                "detector_ref": d["detector_ref"],
                "detector_conf": d["conf"],
                "segmenter_ref": s["segmenter_ref"],
                "reviewer": review.get("reviewer"),
            },
        )
        rows.append({**row, "detector_bbox": d["bbox"]})  # the box is used for the crop, not stored
    return rows


def export_veri(root: Path, rows: list[dict[str, Any]], margin: float, out: Path | None = None) -> Path:
    """Write a VeRi-776 folder (:mod:`pipeline.formats.veri`), by default ``ROOT/export/VeRi``: vids number the
    identities in id order, frames number the images in id order. Rows that are crops already (or have no mask)
    are exported as they are; full images are cut to the vehicle box plus ``margin`` (edges rounded as
    :func:`pipeline.formats.crop.vehicle_box` describes)."""
    out = out or root / "export" / "VeRi"
    vids = {identity: i + 1 for i, identity in enumerate(sorted({r["identity_id"] for r in rows}))}
    ordered = sorted(rows, key=lambda r: r["image_id"])
    with veri_writer(out, quality=95) as writer:
        for frame, row in enumerate(tqdm(ordered, desc="assemble VeRi export", unit="img")):
            source = dm.inside_root(root, row["path"], f"diffveri[{row['image_id']}].path")
            full = row.get("crop_box") is None and row.get("vehicle_rle")
            box = vehicle_box(row["vehicle_rle"], margin, round_edges=True) if full else None
            writer.add(source, vids[row["identity_id"]], row["camera_id"], frame, row["split"], box)
    return out


def format_dataset_row(row: dict[str, Any]) -> str:
    """The dataset statistics as a markdown table in the paper's comparison format (resolution: mean W × H)."""
    resolution = f"{row['mean_width']:.0f} × {row['mean_height']:.0f}" if row["images"] else "-"
    views = ", ".join(f"{k}: {v}" for k, v in row["views"].items()) or "-"
    splits = ", ".join(f"{k}: {v}" for k, v in sorted(row["splits"].items())) or "-"
    sources = row.get("sources") or {}
    kind = (
        "Real-synthetic"
        if sources.get("real") and sources.get("synthetic")
        else "Real"
        if sources.get("real")
        else "Synthetic"
    )
    by_source = ", ".join(f"{k}: {v:,}" for k, v in sorted(sources.items())) or "-"
    return "\n".join(
        [
            "| Dataset | Images | Identities | Source | Multi-view semantic annotations | Resolution (W × H) | Views |",
            "|---|---|---|---|---|---|---|",
            "| DiffVERI (paper) | 1,712,703 | - | Real-synthetic | ✓ | 496 × 485 | Diverse |",
            f"| DiffVERI (this build) | {row['images']:,} | {row['identities']:,} | {kind} | "
            f"{row['multi_view_annotations']:,} | {resolution} | {views} |",
            "",
            f"Splits: {splits}",
            f"Sources: {by_source}",
        ]
    )


def assemble(
    root: Path,
    *,
    test_identity_fraction: float = 0.3,
    queries_per_identity: int = 2,
    export: bool = True,
    crop_margin: float = 0.1,
    crops: bool = True,
    crop_format: str = "png",
    include_real: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """Write the ``diffveri`` table (replacing it whole), the crops, the VeRi export and ``ROOT/stats.{json,md}``.

    Returns the dataset statistics row.
    """
    root = Path(root)
    # 1. Join the stage tables; only images that passed every stage enter.
    rows = _candidates(root)
    if not rows:
        raise ValueError(
            f"no image under {root} has passed generation, filtering, review and segmentation yet; "
            "run those stages first (diffveri manifests stats --root ROOT shows where images stopped)"
        )
    # 2. Vehicle crops: detector box plus margin, masks cut alike (files written once, named by image and box).
    boxes = {r["image_id"]: r.pop("detector_bbox") for r in rows}
    if crops:
        bar = tqdm(rows, desc="assemble crops", unit="img")
        rows = [crop_row(root, r, boxes[r["image_id"]], crop_margin, crop_format) for r in bar]
    # 3. Real-synthetic: the subject photos of the dataset's identities.
    if include_real:
        rows += real_rows(root, {r["identity_id"] for r in rows})
    # 4. Identity-disjoint splits over real and synthetic rows together, deterministic for the seed.
    rows = assign_splits(rows, test_identity_fraction, queries_per_identity, seed)
    # 5. The table is derived data: replace it whole so removed images disappear too.
    dm.write_table(root, "diffveri", rows)
    if export:
        export_veri(root, rows, crop_margin)
    # 6. Statistics, in the paper's comparison format.
    stats = dataset_row(root)
    dm.atomic_write_bytes(root / "stats.json", json.dumps(stats, indent=2).encode())
    dm.atomic_write_bytes(root / "stats.md", (format_dataset_row(stats) + "\n").encode())
    log.info("assembled %d images of %d identities", stats["images"], stats["identities"])
    return stats


def run_stage(config: dict[str, Any], root: Path, identities: list[str] | None = None) -> StageResult:
    """Stage adapter (``diffveri run assemble``). Assembly always covers every identity."""
    from .config import section

    cfg = section(config, "assemble", AssembleConfig)
    stats = assemble(
        root,
        test_identity_fraction=cfg.test_identity_fraction,
        queries_per_identity=cfg.queries_per_identity,
        export=cfg.export_veri,
        crop_margin=cfg.crop_margin,
        crops=cfg.crops,
        crop_format=cfg.crop_format,
        include_real=cfg.include_real,
        seed=cfg.seed,
    )
    return StageResult("assemble", {"images": stats["images"], "identities": stats["identities"]}, "stats.md written")
