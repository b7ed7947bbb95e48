"""A tiny VeRi-776 layout with a ``toyworld_meta.json`` (views per image, families per identity) for the view-aware
protocols; the images come from :func:`tests.reid.layouts.make_veri`.

Why not a toy world export: the view-aware tests need each query's gallery built by hand (one same-view positive,
a same-camera junk image, cross-view positives, chosen families), which a rendered world only has by chance.
"""

from __future__ import annotations

from pathlib import Path

from tests.reid.layouts import make_veri
from vehiclemae.reid.toymeta import write_toy_meta

# (camera, n) -> view bin. The query of every test id is (1, 0): front; its gallery: (1, 1) junk (same camera),
# (2, 1) front_right the only same-view positive, rear / left / top / right cross-view.
VIEWS = {(1, 0): "front", (1, 1): "front_left", (2, 0): "rear", (2, 1): "front_right", (3, 0): "top", (3, 1): "left"}
AZIMUTH = {"front": 0, "front_left": 45, "front_right": 315, "rear": 180, "left": 90, "top": 0}


def make_toy_veri(root: Path, families: dict[int, tuple[str, str, str]] | None = None, family_size: int = 2) -> Path:
    """``make_veri(root)`` (train ids 1-6, test ids 7-11, cameras 1-3, 2 images per camera) plus the meta file.

    ``families``: pid -> (family, class_name, color_name); default: pairs (1, 2), (3, 4), ... share a family,
    families alternate between ("sedan", "red") and ("suv", "blue").
    """
    make_veri(root)
    images = {}
    for folder in ("image_train", "image_query", "image_test"):
        for path in sorted((root / folder).glob("*.jpg")):
            cam, n = int(path.name.split("_")[1][1:]), int(path.name.split("_")[2])
            view = VIEWS[(cam, n)]
            images[path.name] = {
                "view": view,
                "azimuth": float(AZIMUTH[view]),
                "elevation": 90.0 if view == "top" else 10.0,
            }
    identities = {}
    for pid in range(1, 12):
        fam = (pid - 1) // 2
        family, cls, colour = (families or {}).get(
            pid, (f"fam{fam:04d}", *(("sedan", "red"), ("suv", "blue"))[fam % 2])
        )
        identities[pid] = {
            "identity_id": f"toy{pid:04d}",
            "family": family,
            "class_name": cls,
            "color_name": colour,
            "dims": [4.0, 1.8, 1.5],
        }
    write_toy_meta(root, family_size, images, identities)
    return root
