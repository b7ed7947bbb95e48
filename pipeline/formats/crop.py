"""The crop of a Re-ID image: the vehicle mask's box grown by a margin (Re-ID datasets are detection crops)."""

from __future__ import annotations

from typing import Any

import numpy as np

from data_manifests import rle


def mask_box(vehicle_rle: dict[str, Any]) -> tuple[int, int, int, int] | None:
    """The pixel box ``(x0, y0, x1, y1)`` (end exclusive) of a COCO RLE mask, or None when the mask is empty."""
    mask = rle.decode(vehicle_rle)
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if not len(rows):
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def vehicle_box(
    vehicle_rle: dict[str, Any], margin: float | None, *, round_edges: bool = False
) -> tuple[int, int, int, int] | None:
    """The box of the vehicle mask grown by ``margin`` times its size per side and clipped to the image, or None
    (no ``margin``, or an empty mask) for the whole image.

    The toy world rounds the margin (``x0 - round(margin * w)``); ``round_edges`` rounds each grown edge instead
    (``round(x0 - margin * w)``), as the assemble stage's VeRi export always did (it cropped at float edges, which
    PIL rounds). Python rounds halves to even, so the two differ by a pixel when ``margin * w`` ends in .5."""
    if margin is None:
        return None
    box = mask_box(vehicle_rle)
    if box is None:
        return None
    height, width = (int(v) for v in vehicle_rle["size"])
    x0, y0, x1, y1 = box
    if round_edges:
        mx, my = (x1 - x0) * margin, (y1 - y0) * margin
        grown = (max(0, x0 - mx), max(0, y0 - my), min(width, x1 + mx), min(height, y1 + my))
        return tuple(int(round(v)) for v in grown)  # type: ignore[return-value]
    mx, my = round(margin * (x1 - x0)), round(margin * (y1 - y0))
    return max(0, x0 - mx), max(0, y0 - my), min(width, x1 + mx), min(height, y1 + my)
