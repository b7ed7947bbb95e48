"""A contact sheet of the assembled dataset: images with their predicted view masks laid over them.

One row per view class (the true dominant view when the root has ``segments_gt``, else the predicted one), up to
``per_row`` images each, spread over identities. Each tile is the image with the vehicle's view classes blended in
(colours of :data:`pipeline.segment.evaluate.PALETTE`) and a caption ``predicted / true`` dominant view, green when
they agree and red when not. ``diffveri truth --sheet PNG`` writes it; ``docs/img/demo_dataset_sheet.png`` is one.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
from PIL import Image, ImageDraw

import data_manifests as dm
from data_manifests import VIEW_CLASSES_PVEN, rle

from .segment.evaluate import PALETTE
from .truth import true_dominant_view

ALPHA = 0.55  # weight of the mask colour over a vehicle pixel
CAPTION = 14  # pixels of text under each tile
AGREE, DISAGREE = (20, 130, 40), (200, 30, 30)


def overlay(image: np.ndarray, labels: np.ndarray, classes: tuple[str, ...], alpha: float = ALPHA) -> np.ndarray:
    """``image (H, W, 3)`` uint8 with the view label map ``(H, W)`` (0 = background, left untouched) blended in."""
    colours = np.asarray([PALETTE.get(c, (128, 128, 128)) for c in classes], dtype=np.float32)
    out = image.astype(np.float32)
    inside = labels > 0
    out[inside] = (1 - alpha) * out[inside] + alpha * colours[labels[inside]]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def pick(rows: list[Mapping[str, Any]], n: int) -> list[Mapping[str, Any]]:
    """Up to ``n`` rows spread over identities: the first image of each identity (by image id), then the second..."""
    by_identity: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in sorted(rows, key=lambda r: r["image_id"]):
        by_identity[r["identity_id"]].append(r)
    chosen: list[Mapping[str, Any]] = []
    depth = 0
    while len(chosen) < n and any(len(v) > depth for v in by_identity.values()):
        chosen += [v[depth] for _, v in sorted(by_identity.items()) if len(v) > depth][: n - len(chosen)]
        depth += 1
    return chosen


def _tile(root: Path, row: Mapping[str, Any], size: int) -> Image.Image:
    with dm.open_image(dm.inside_root(root, row["path"], f"diffveri[{row['image_id']}].path")) as im:
        image = np.asarray(im.convert("RGB"))
    labels = rle.rles_to_label_map(row["view_rles"])
    labels[~rle.decode(row["vehicle_rle"])] = 0
    tile = Image.fromarray(overlay(image, labels, tuple(row["view_classes"])))
    return tile.resize((size, size), Image.NEAREST) if tile.size != (size, size) else tile


def dataset_sheet(root: Path, out: Path, per_row: int = 8, size: int = 128) -> Path:
    """Write the contact sheet of ``root``'s ``diffveri`` table to ``out`` (PNG, atomically); returns ``out``."""
    root = Path(root)
    rows = dm.read_rows(
        root,
        "diffveri",
        columns=["image_id", "identity_id", "path", "dominant_view", "vehicle_rle", "view_classes", "view_rles"],
        filter=pc.field("status") == dm.Status.OK,
    )
    rows = [r for r in rows if r["view_rles"] and r["vehicle_rle"] is not None]  # real photos carry no masks
    if not rows:
        raise ValueError(f"{root}/manifests/diffveri has no ok rows with masks to draw; run the assemble stage first")
    truth: dict[str, str | None] = {}
    if dm.table_exists(root, "segments_gt"):
        gts = dm.read_rows(root, "segments_gt", columns=["image_id", "status", "view_classes", "view_fractions"])
        classes = tuple(rows[0]["view_classes"])
        truth = {t["image_id"]: true_dominant_view(t, classes) for t in gts}
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[truth.get(r["image_id"]) or r["dominant_view"] or "none"].append(r)
    order = [c for c in VIEW_CLASSES_PVEN[1:] if c in groups] + sorted(set(groups) - set(VIEW_CLASSES_PVEN))
    label_w, pad, legend = 96, 4, 22
    cell_w, cell_h = size + pad, size + CAPTION + pad
    sheet = Image.new("RGB", (label_w + per_row * cell_w, len(order) * cell_h + legend), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for r_i, cls in enumerate(order):
        y = r_i * cell_h
        heading = "true " if truth else "predicted "
        draw.text((4, y + size // 2 - 12), f"{heading}{cls}\n{len(groups[cls])} images", fill=(0, 0, 0))
        for c_i, row in enumerate(pick(groups[cls], per_row)):
            x = label_w + c_i * cell_w
            sheet.paste(_tile(root, row, size), (x, y))
            pred, true = row["dominant_view"] or "none", truth.get(row["image_id"])
            text = f"{pred} / {true}" if true else pred
            draw.text((x + 2, y + size + 1), text, fill=AGREE if (true is None or pred == true) else DISAGREE)
    x, y = 4, len(order) * cell_h + 4
    for name in VIEW_CLASSES_PVEN[1:]:
        draw.rectangle([x, y + 2, x + 10, y + 12], fill=PALETTE[name], outline=(0, 0, 0))
        draw.text((x + 14, y + 1), name, fill=(0, 0, 0))
        x += 14 + 7 * len(name) + 12
    draw.text((x + 8, y + 1), "caption: predicted / true dominant view", fill=(0, 0, 0))
    buffer = io.BytesIO()
    # A 256-colour palette: a quarter of the bytes (noisy toy backgrounds compress badly), no visible loss here.
    sheet.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(buffer, "PNG", optimize=True)
    dm.atomic_write_bytes(Path(out), buffer.getvalue())
    return Path(out)
