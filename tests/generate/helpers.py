"""Instance photos and toy-world subjects for the generation and subject-import tests.

Why drawn photos (:func:`draw_vehicle`) and not toy-world renders (:mod:`pipeline.toyworld.synthetic`): the
DreamBooth and import tests need photos of any size whose bytes do not change when the toy world's renderer does
(a coloured box with a window band, drawn with numpy in microseconds); the identities themselves are the toy
world's (:func:`make_toy_subjects`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import data_manifests as dm
from pipeline.generate.common import write_png


def draw_vehicle(seed: int, size: int) -> np.ndarray:
    """A simple synthetic photo ``(size, size, 3)`` uint8: a coloured box with a darker window band on a grey road."""
    rng = np.random.default_rng(seed)
    image = np.full((size, size, 3), 90, np.uint8)
    x0, y0 = rng.integers(2, size // 4, 2)
    x1, y1 = size - rng.integers(2, size // 4, 2)
    color = rng.integers(40, 255, 3)
    image[y0:y1, x0:x1] = color
    image[y0 : y0 + (y1 - y0) // 3, x0 + 2 : x1 - 2] = color // 3
    return image


def make_toy_subjects(root: Path, n: int = 2, size: int = 32, images: int = 2) -> list[str]:
    """``n`` toy-world identities (attributes from ``sample_identity``, as `diffveri toy world` writes them) with
    ``images`` drawn instance photos each (drawn here, so the DreamBooth tests do not depend on the renderer)."""
    from pipeline.toyworld import sample_identity

    rows = []
    for index in range(n):
        ident = sample_identity(seed=0, index=index)
        paths = []
        for k in range(images):
            rel = f"subjects/{ident.identity_id}/{k}.png"
            write_png(root / rel, draw_vehicle(100 * index + k, size))
            paths.append(rel)
        rows.append(
            {
                "identity_id": ident.identity_id,
                "class_name": ident.class_name,
                "token": None,
                "instance_images": paths,
                "source": "toyworld",
                "attributes": json.dumps(ident.attributes()),
                "status": "ok",
            }
        )
    dm.upsert(root, "subjects", rows)
    return [r["identity_id"] for r in rows]


def photo_folder(tmp_path: Path, ids: tuple[str, ...] = ("car1", "car2"), n: int = 3) -> Path:
    """``tmp_path/photos/<identity>/<k>.png``: ``n`` drawn 24-px photos per identity, for the folder importer."""
    src = tmp_path / "photos"
    for i, ident in enumerate(ids):
        for k in range(n):
            write_png(src / ident / f"{k}.png", draw_vehicle(10 * i + k, 24))
    return src
