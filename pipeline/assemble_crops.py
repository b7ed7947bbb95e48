"""Vehicle crops for the assembled dataset: the detector box plus a margin, with every mask cropped alike.

Re-ID datasets are detection crops (VeRi-776 averages 243 × 214 px, the paper's DiffVERI 496 × 485), so the
``diffveri`` table's images are crops: ``ROOT/dataset/crops/<identity>/<image_id>_<x0>_<y0>_<x1>_<y1>.<ext>``. The
crop box is integral (the grown box rounded outward, clipped to the image), so cutting the masks is exact slicing:
crop and masks align pixel for pixel. A crop whose file already exists is not written again (its name holds the
image and the box, and image ids are content hashes), so re-assembling 1.7M images costs only the new ones.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np

import data_manifests as dm
from data_manifests import rle

CROP_DIR = "dataset/crops"
FORMATS = {"png": ("PNG", ".png"), "jpg": ("JPEG", ".jpg")}


def crop_box(
    bbox: list[float] | tuple[float, ...], width: int, height: int, margin: float
) -> tuple[int, int, int, int]:
    """``bbox`` (x1, y1, x2, y2) grown by ``margin`` × its size per side, rounded outward, clipped to the image."""
    if margin < 0:
        raise ValueError(f"assemble.crop_margin must be >= 0, got {margin}")
    x1, y1, x2, y2 = (float(v) for v in bbox)
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    box = (
        max(0, math.floor(x1 - mx)),
        max(0, math.floor(y1 - my)),
        min(width, math.ceil(x2 + mx)),
        min(height, math.ceil(y2 + my)),
    )
    if box[2] <= box[0] or box[3] <= box[1]:
        raise ValueError(f"box {list(bbox)} leaves no pixel of the {width}x{height} image")
    return box


def crop_rle(mask_rle: dict[str, Any], box: tuple[int, int, int, int]) -> dict[str, Any]:
    """The mask inside ``box`` (x0, y0, x1, y1), re-encoded at the crop's size."""
    x0, y0, x1, y1 = box
    return rle.encode(rle.decode(mask_rle)[y0:y1, x0:x1])


def crop_row(root: Path, row: dict[str, Any], bbox: list[float] | None, margin: float, fmt: str = "png") -> dict:
    """``row`` (a ``diffveri`` row over the full image) turned into its crop: file written, masks and size cut.

    The box is the detector's ``bbox``, or the vehicle mask's box when there is none; a row with neither keeps
    the full image.
    """
    if fmt not in FORMATS:
        raise ValueError(f"assemble.crop_format must be one of {sorted(FORMATS)}, got {fmt!r}")
    if bbox is None and row.get("vehicle_rle") is not None:
        ys, xs = np.nonzero(rle.decode(row["vehicle_rle"]))
        bbox = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] if len(xs) else None
    if bbox is None:
        return row
    box = crop_box(bbox, row["width"], row["height"], margin)
    pil_format, suffix = FORMATS[fmt]
    rel = f"{CROP_DIR}/{row['identity_id']}/{row['image_id']}_{box[0]}_{box[1]}_{box[2]}_{box[3]}{suffix}"
    target = root / rel
    if not target.is_file():
        with dm.open_image(dm.inside_root(root, row["path"], f"diffveri[{row['image_id']}].path")) as source:
            image = source.convert("RGB")
        if image.size != (row["width"], row["height"]):
            raise ValueError(
                f"generations[{row['image_id']}]: {row['path']} is {image.size[0]}x{image.size[1]}, the row says "
                f"{row['width']}x{row['height']}"
            )
        buffer = io.BytesIO()
        image.crop(box).save(buffer, pil_format, **({"quality": 95} if pil_format == "JPEG" else {}))
        target.parent.mkdir(parents=True, exist_ok=True)
        dm.atomic_write_bytes(target, buffer.getvalue())
    out = dict(row)
    out.update(
        path=rel,
        width=box[2] - box[0],
        height=box[3] - box[1],
        source_path=row["path"],
        crop_box=[float(v) for v in box],
    )
    if row.get("vehicle_rle") is not None:
        out["vehicle_rle"] = crop_rle(row["vehicle_rle"], box)
    if row.get("view_rles"):
        out["view_rles"] = [crop_rle(r, box) for r in row["view_rles"]]
    return out
