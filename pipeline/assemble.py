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
import os
import shutil
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
from tqdm import tqdm

import data_manifests as dm
from data_manifests import rle
from data_manifests.stats import dataset_row

from .assemble_crops import crop_row
from .assemble_real import real_rows
from .splits import assign_query_gallery
from .stages import StageResult

log = logging.getLogger(__name__)

# One virtual camera per intended viewpoint, as in VeRi-776 where cameras see vehicles from different angles.
CAMERA_OF_VIEW: dict[str, int] = {view: i + 1 for i, view in enumerate(dm.INTENDED_VIEWS)}
REAL_CAMERA = len(CAMERA_OF_VIEW) + 1  # real photos whose view is unknown


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
    from pipeline.review import accepted_image_ids

    return accepted_image_ids(root)


def _candidates(root: Path) -> list[dict[str, Any]]:
    """Rows of every image that passed all stages, joined across the stage tables."""
    ok = pc.field("status") == "ok"
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
        rows.append(
            {
                "image_id": image_id,
                "identity_id": g["identity_id"],
                "source": "synthetic",
                "detector_bbox": d["bbox"],  # used for the crop, not stored
                "class_name": (subjects.get(g["identity_id"]) or {}).get("class_name"),
                "camera_id": CAMERA_OF_VIEW[view],
                "path": g["path"],
                "width": g["width"],
                "height": g["height"],
                "view_label": view,
                "dominant_view": s["dominant_view"],
                "vehicle_rle": s["vehicle_rle"],
                "view_classes": s["view_classes"],
                "view_rles": s["view_rles"],
                "provenance": json.dumps(
                    {
                        "model_ref": g["model_ref"],
                        "seed": g["seed"],
                        "prompt": g["prompt"],
                        "lora_sha256": g["lora_sha256"],
                        "detector_ref": d["detector_ref"],
                        "detector_conf": d["conf"],
                        "segmenter_ref": s["segmenter_ref"],
                        "reviewer": review.get("reviewer"),
                    },
                    sort_keys=True,
                ),
                "status": "ok",
            }
        )
    return rows


def assign_splits(
    rows: list[dict[str, Any]], test_identity_fraction: float, queries_per_identity: int, seed: int
) -> list[dict[str, Any]]:
    """Set ``split`` on every row: identity-disjoint train/test; test identities give queries and gallery.

    A test image becomes a query only if its identity keeps a gallery image on another camera, so every query is
    answerable under the VeRi-776 protocol (same-camera gallery matches are ignored there).
    """
    if not 0 <= test_identity_fraction <= 1:
        raise ValueError(f"test_identity_fraction must be in [0, 1], got {test_identity_fraction}")
    rng = np.random.default_rng(seed)
    identities = sorted({r["identity_id"] for r in rows})
    rng.shuffle(identities)
    test = set(identities[: int(round(len(identities) * test_identity_fraction))])
    return assign_query_gallery(rows, test, queries_per_identity, rng)


def _mask_box(vehicle_rle: dict[str, Any]) -> tuple[int, int, int, int] | None:
    mask = rle.decode(vehicle_rle)
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def export_veri(root: Path, rows: list[dict[str, Any]], margin: float, out: Path | None = None) -> Path:
    """Write a VeRi-776-style folder (vehicle crops named ``{vid:04d}_c{cam:03d}_{frame:08d}_0.jpg``).

    The folder is built under a temporary name and swapped in whole, so a crash never leaves half an export.
    """
    out = out or root / "export" / "VeRi"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-veri-", dir=out.parent))
    vids = {identity: i + 1 for i, identity in enumerate(sorted({r["identity_id"] for r in rows}))}
    names: dict[str, list[str]] = defaultdict(list)
    ordered = sorted(rows, key=lambda r: r["image_id"])
    for frame, row in enumerate(tqdm(ordered, desc="assemble VeRi export", unit="img")):
        name = f"{vids[row['identity_id']]:04d}_c{row['camera_id']:03d}_{frame:08d}_0.jpg"
        with dm.open_image(dm.inside_root(root, row["path"], f"diffveri[{row['image_id']}].path")) as source:
            image = source.convert("RGB")
        # Rows that are crops already are exported as they are; full images are cut to the vehicle box.
        box = _mask_box(row["vehicle_rle"]) if row.get("crop_box") is None and row.get("vehicle_rle") else None
        if box is not None:
            x1, y1, x2, y2 = box
            mx, my = (x2 - x1) * margin, (y2 - y1) * margin
            image = image.crop(
                (max(0, x1 - mx), max(0, y1 - my), min(image.width, x2 + mx), min(image.height, y2 + my))
            )
        # As in VeRi-776, image_test holds every test image, the queries too.
        targets = ["image_train"] if row["split"] == "train" else ["image_test"]
        if row["split"] == "query":
            targets.append("image_query")
        for folder in targets:
            (tmp / folder).mkdir(exist_ok=True)
            image.save(tmp / folder / name, quality=95)
            names[folder].append(name)
    for folder in ("image_train", "image_query", "image_test"):
        (tmp / folder).mkdir(exist_ok=True)
        listing = folder.replace("image_", "name_") + ".txt"
        (tmp / listing).write_text("".join(f"{n}\n" for n in sorted(names[folder])))
    if out.exists():
        old = out.with_name(f".old-{out.name}-{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old)
    else:
        os.replace(tmp, out)
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
        rows += real_rows(root, {r["identity_id"] for r in rows}, CAMERA_OF_VIEW, REAL_CAMERA)
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
