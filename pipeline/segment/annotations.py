"""What the annotation round trip shares: human rows, the images a root knows, masks <-> polygons.

Human view masks live in the ``segments`` table like the segmenter's predictions; they are told apart by
``segmenter_ref``: ``human:<format>:<sha256 prefix of the imported file>`` for annotations brought back with
``diffveri segment annotations import``, ``groundtruth:toyworld`` for the toy world's exact masks and
``sam:<checkpoint sha256>`` for predictions. Fine-tuning reads annotation rows only (:data:`ANNOTATION_REFS`), and
the ``segment`` stage never replaces a human row.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

import data_manifests as dm

HUMAN_PREFIX = "human:"
# segmenter_ref prefixes of rows made by people or by an exact renderer: what fine-tuning may learn from.
ANNOTATION_REFS: tuple[str, ...] = (HUMAN_PREFIX, "groundtruth:")


def is_human(ref: str | None) -> bool:
    """Is a ``segments`` row with this ``segmenter_ref`` a human annotation?"""
    return bool(ref) and str(ref).startswith(HUMAN_PREFIX)


def human_ids(root: Path) -> set[str]:
    """Image ids whose ``segments`` row is an ``ok`` human annotation."""
    if not dm.table_exists(root, "segments"):
        return set()
    rows = dm.read_rows(
        root, "segments", columns=["image_id", "segmenter_ref"], filter=pc.field("status") == dm.Status.OK
    )
    return {r["image_id"] for r in rows if is_human(r["segmenter_ref"])}


@dataclass(frozen=True)
class KnownImage:
    """A generated image of the root: its id, file (absolute), size and the filter's box (if any)."""

    image_id: str
    path: Path
    width: int
    height: int
    bbox: tuple[float, float, float, float] | None


def known_images(root: Path) -> dict[str, KnownImage]:
    """Every ``ok`` generation of ``root`` with its size and, when the filter kept it, its detector box."""
    boxes: dict[str, list[float]] = {}
    if dm.table_exists(root, "detections"):
        for d in dm.read_rows(
            root, "detections", columns=["image_id", "bbox"], filter=pc.field("status") == dm.Status.OK
        ):
            if d["bbox"] is not None:
                boxes[d["image_id"]] = d["bbox"]
    out = {}
    columns = ["image_id", "path", "width", "height"]
    for g in dm.read_rows(root, "generations", columns=columns, filter=pc.field("status") == dm.Status.OK):
        if not g["path"]:
            continue
        box = boxes.get(g["image_id"])
        out[g["image_id"]] = KnownImage(
            g["image_id"],
            dm.inside_root(root, g["path"], f"generations[{g['image_id']}].path"),
            int(g["width"]),
            int(g["height"]),
            None if box is None else tuple(float(v) for v in box),  # type: ignore[arg-type]
        )
    return out


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    """The tight box ``(x1, y1, x2, y2)`` of a boolean mask, or None when it is empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """The mask with every hole filled (pixels enclosed by the mask's outer contours)."""
    import cv2

    m = np.asarray(mask, dtype=np.uint8)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros_like(m)
    cv2.drawContours(filled, contours, -1, 1, thickness=-1)
    return filled.astype(bool) | m.astype(bool)


def without_enclosed_islands(labels: np.ndarray, rounds: int = 3) -> np.ndarray:
    """A label map whose view regions have no holes: what another region encloses becomes that region's view.

    Polygons (Label Studio's, COCO's) cannot have holes, so a predicted island of one view inside another (a few
    "front" pixels in the middle of "top") would make the pre-annotation polygons overlap. Background stays 0.
    """
    out = np.asarray(labels).copy()
    for _ in range(rounds):
        before = out.copy()
        for c in np.unique(out):
            if c == 0:
                continue
            region = out == c
            out[fill_holes(region) & ~region] = c
        if np.array_equal(out, before):
            break
    return out


def mask_to_polygons(mask: np.ndarray, min_points: int = 3) -> list[list[float]]:
    """Outer contours of a boolean mask as COCO polygons ``[x1, y1, x2, y2, ...]`` (pixel corners).

    The outline follows the boundary pixels' outer corners, so pycocotools rasterises the polygons back to exactly
    the mask when it has no holes (holes cannot be polygons: see :func:`without_enclosed_islands`).
    """
    import cv2

    m = np.asarray(mask, dtype=np.uint8)
    if not m.any():
        return []
    # Upsample x2 so contour vertices can sit on pixel corners: vertex (u, v) at 2x -> corner (u + 1) / 2.
    big = np.kron(m, np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(big, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = []
    for contour in contours:
        pts = contour.reshape(-1, 2).astype(np.float64)
        if len(pts) < min_points:
            continue
        pts = np.floor((pts + 1) / 2)
        pts[:, 0] = pts[:, 0].clip(0, m.shape[1])
        pts[:, 1] = pts[:, 1].clip(0, m.shape[0])
        out.append([float(v) for v in pts.reshape(-1)])
    return out
