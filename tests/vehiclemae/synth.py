"""A small ``diffveri`` table for tests, written through ``data_manifests``.

Uses the toy world's renderer when it is available (``pipeline.toyworld.render``), else draws simple synthetic
vehicles with numpy: a coloured box whose visible faces carry the toy-world view labels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from data_manifests import VIEW_CLASSES_TOYWORLD, image_id, rle, write_table

VIEWS = ("front", "rear", "left", "right")


def _draw(identity: int, view: str, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A box vehicle seen from one side: image ``(size, size, 3) uint8`` and labels ``(size, size) int64``."""
    base = np.array([(identity * 67) % 200 + 40, (identity * 131) % 200 + 30, (identity * 29) % 200 + 50])
    img = np.full((size, size, 3), 90, np.uint8) + rng.integers(0, 20, (size, size, 3), dtype=np.uint8)
    labels = np.zeros((size, size), np.int64)
    y0, y1 = size // 3, size - size // 6
    x0, x1 = size // 8, size - size // 8
    labels[y0:y1, x0:x1] = VIEW_CLASSES_TOYWORLD.index(view)
    labels[y0 - size // 8 : y0, x0 + size // 8 : x1 - size // 8] = VIEW_CLASSES_TOYWORLD.index("top")
    shade = {"front": 1.0, "rear": 0.8, "left": 0.6, "right": 0.7, "top": 1.2}
    for name, factor in shade.items():
        img[labels == VIEW_CLASSES_TOYWORLD.index(name)] = np.clip(base * factor, 0, 255).astype(np.uint8)
    # an identity mark (a sticker) at an identity-specific place: something to learn beyond the colour
    sx = x0 + (identity * 7) % max(1, (x1 - x0 - 4))
    img[y0 + 2 : y0 + 6, sx : sx + 4] = (255 - base).astype(np.uint8)
    return img, labels


def _render(identity: int, view: str, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        from pipeline.toyworld import render, sample_identity  # type: ignore[attr-defined]
    except ImportError:
        return _draw(identity, view, size, np.random.default_rng([seed, identity, VIEWS.index(view)]))
    azimuth = {"front": 0.0, "left": 90.0, "rear": 180.0, "right": 270.0}[view]
    result = render(sample_identity(seed, identity), azimuth=azimuth, elevation=15.0, size=size, seed=seed)
    return result.image, result.labels


def make_diffveri(
    root: Path, n_identities: int = 4, views: tuple[str, ...] = VIEWS, size: int = 64, seed: int = 0
) -> Path:
    """Write images under ``root/images`` and a ``diffveri`` table with one row per (identity, view)."""
    rows = []
    for ident in range(n_identities):
        for view in views:
            img, labels = _render(ident, view, size, seed)
            iid = image_id(f"toy{ident:03d}", view, seed, "test")
            rel = f"images/{iid}.png"
            (root / "images").mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(root / rel)
            present = [c for c in range(len(VIEW_CLASSES_TOYWORLD)) if (labels == c).any() or c == 0]
            rows.append(
                {
                    "image_id": iid,
                    "identity_id": f"toy{ident:03d}",
                    "class_name": "sedan",
                    "split": "train",
                    "camera_id": VIEWS.index(view),
                    "path": rel,
                    "width": size,
                    "height": size,
                    "view_label": view,
                    "dominant_view": view,
                    "vehicle_rle": rle.encode(labels > 0),
                    "view_classes": [VIEW_CLASSES_TOYWORLD[c] for c in present],
                    "view_rles": [rle.encode(labels == c) for c in present],
                    "provenance": "{}",
                    "status": "ok",
                }
            )
    write_table(root, "diffveri", rows)
    return root
