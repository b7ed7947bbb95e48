"""COCO run-length encoding of binary masks, through pycocotools (so results are bit-identical to it).

An RLE is stored as ``{"size": [h, w], "counts": str}`` — pycocotools' compressed form with ``counts`` decoded to
text so that it fits a Parquet string column and JSON.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

Rle = dict[str, Any]


def encode(mask: np.ndarray) -> Rle:
    """Encode one mask ``(H, W)`` (bool or 0/1) as ``{"size": [H, W], "counts": str}``."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"encode expects one (H, W) mask, got shape {mask.shape}")
    return encode_many(mask[None])[0]


def encode_many(masks: np.ndarray) -> list[Rle]:
    """Encode masks ``(N, H, W)`` in one pycocotools call."""
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"encode_many expects (N, H, W) masks, got shape {masks.shape}")
    fortran = np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8, copy=False))
    out = []
    for rle in mask_utils.encode(fortran):
        out.append({"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")})
    return out


def _coco(rle: Rle) -> dict[str, Any]:
    try:
        size, counts = rle["size"], rle["counts"]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not an RLE dict with 'size' and 'counts': {rle!r:.80}") from exc
    return {
        "size": [int(size[0]), int(size[1])],
        "counts": counts.encode("ascii") if isinstance(counts, str) else counts,
    }


def decode(rle: Rle) -> np.ndarray:
    """Decode one RLE to a boolean mask ``(H, W)``."""
    return mask_utils.decode(_coco(rle)).astype(bool)


def decode_many(rles: list[Rle]) -> np.ndarray:
    """Decode RLEs of equal size to boolean masks ``(N, H, W)``."""
    if not rles:
        raise ValueError("decode_many needs at least one RLE")
    return np.ascontiguousarray(mask_utils.decode([_coco(r) for r in rles]).transpose(2, 0, 1).astype(bool))


def area(rle: Rle) -> int:
    """Number of foreground pixels."""
    return int(mask_utils.area(_coco(rle)))


def label_map_to_rles(labels: np.ndarray, classes: tuple[str, ...] | list[str]) -> list[Rle]:
    """Split a label map ``(H, W)`` with values ``0..len(classes)-1`` into one RLE per class."""
    labels = np.asarray(labels)
    masks = labels[None] == np.arange(len(classes), dtype=labels.dtype)[:, None, None]
    return encode_many(masks)


def rles_to_label_map(rles: list[Rle], background: int = 0) -> np.ndarray:
    """Inverse of :func:`label_map_to_rles`: label map ``(H, W)`` int64; pixels in no mask get ``background``.

    Where masks overlap, the later class wins.
    """
    masks = decode_many(rles)
    labels = np.full(masks.shape[1:], background, dtype=np.int64)
    for index, mask in enumerate(masks):
        labels[mask] = index
    return labels
