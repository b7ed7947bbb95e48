"""Real rows of the assembled dataset: each identity's subject photos, next to its synthetic images.

The paper's DiffVERI is real-synthetic: the few real photos DreamBooth learnt an identity from belong to the dataset
too. Every ``ok`` subject photo of an identity that has at least one synthetic image enters as a ``source: real``
row. Its view label comes from the photo's original file name when that names a view (the toy world writes
``front_left.png``; name folder photos ``rear.jpg``, ``front-2.jpg`` ... to label them), else it stays null; its
virtual camera is the view's camera, or :data:`data_manifests.rows.REAL_CAMERA` without a view. Real rows carry
no masks (nobody segmented the photos) unless a ``segments`` row exists for their id. The row id is
``image_id(identity, "real", k, "real:<photo sha256>")``, stable across runs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import data_manifests as dm
from data_manifests import INTENDED_VIEWS, Status
from data_manifests.enums import ImageSource
from data_manifests.rows import MASK_COLUMNS, camera_of, diffveri_row

# A photo's view: its file name is the view, optionally followed by "-" or "_" and anything (longest view first).
_VIEW_NAME = re.compile(
    r"^(" + "|".join(sorted(INTENDED_VIEWS, key=len, reverse=True)) + r")(?:[-_.#].*)?$", re.IGNORECASE
)


def view_from_name(name: str) -> str | None:
    """``front_left.png`` -> ``front_left``; ``rear-2.jpg`` -> ``rear``; ``IMG_0001.jpg`` -> None."""
    match = _VIEW_NAME.match(Path(name).stem)
    return match.group(1).lower() if match else None


def real_rows(root: Path, identities: set[str]) -> list[dict[str, Any]]:
    """``diffveri`` rows (without ``split``) for the subject photos of ``identities``."""
    rows = []
    segments = {}
    for r in dm.read_rows(root, "subjects"):
        if r["identity_id"] not in identities or r["status"] != Status.OK:
            continue
        attributes = json.loads(r["attributes"] or "{}")
        originals = attributes.get("source_files") or []
        hashes = r["instance_sha256"] or []
        for k, rel in enumerate(r["instance_images"]):
            path = dm.inside_root(root, rel, f"subjects[{r['identity_id']}].instance_images[{k}]")
            sha = hashes[k] if k < len(hashes) and hashes[k] else dm.sha256_file(path)
            image_id = dm.image_id(r["identity_id"], "real", k, f"real:{sha}")
            view = view_from_name(originals[k]) if k < len(originals) else None
            view = view or view_from_name(rel)
            with dm.open_image(path) as image:  # the header only: size, no decode
                width, height = image.size
            row = diffveri_row(
                image_id=image_id,
                identity_id=r["identity_id"],
                class_name=r["class_name"],
                camera_id=camera_of(view),
                path=rel,
                width=width,
                height=height,
                view_label=view,
                source=ImageSource.REAL,
                provenance={
                    "source": "real",
                    "subject_source": r["source"],
                    "photo": rel,
                    "sha256": sha,
                    "original": originals[k] if k < len(originals) else None,
                },
            )
            rows.append(row)
            segments[image_id] = row
    _attach_masks(root, segments)
    return rows


def _attach_masks(root: Path, rows: dict[str, dict[str, Any]]) -> None:
    """Masks of real photos that have an ``ok`` segments row (e.g. human annotations), at the photo's size."""
    if not rows or not dm.table_exists(root, "segments"):
        return
    import pyarrow.compute as pc

    wanted = (pc.field("status") == Status.OK) & pc.field("image_id").isin(list(rows))
    for s in dm.read_rows(root, "segments", filter=wanted):
        row = rows[s["image_id"]]
        if s["vehicle_rle"] is None or list(s["vehicle_rle"]["size"]) != [row["height"], row["width"]]:
            continue
        row.update({k: s[k] for k in MASK_COLUMNS})
