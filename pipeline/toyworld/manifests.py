"""The toy world's manifest rows: rendered identities into ``subjects``, ``generations``, ``segments`` and
``segments_gt``, and the ``diffveri`` rows of every planned image with an ``ok`` exact mask."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import data_manifests as dm
from data_manifests import Status
from data_manifests.rows import CAMERA_OF_VIEW, diffveri_row

from .identity import ToyIdentity
from .plan import MODEL_REF, PlannedImage
from .rendering import SEGMENTER_REF

# Fields of the toy world's diffveri rows that only the folder exports use (VeRi vid and frame); not in the table.
EXPORT_ONLY: tuple[str, ...] = ("vid", "frame")


def write_rendered(out: Path, results: list[dict[str, Any]]) -> int:
    """Upsert the rows of rendered identities (results of :func:`pipeline.toyworld.rendering.render_identity`);
    returns the number of images rendered. ``generations`` is written last: its keys mark an identity as done for
    the resume check."""
    dm.upsert(out, "subjects", [r["subject"] for r in results])
    gens = [g for r in results for g in r["generations"]]
    segs = [s for r in results for s in r["segments"]]
    if gens:
        # segments_gt keeps the exact masks when the segment stage later replaces `segments` with predictions.
        dm.upsert(out, "segments_gt", segs)
        dm.upsert(out, "segments", segs)
        dm.upsert(out, "generations", gens)
    return sum(r["rendered"] for r in results)


def diffveri_rows(
    plans: dict[int, tuple[ToyIdentity, list[PlannedImage]]], segments: dict[str, dict[str, Any]], size: int
) -> list[dict[str, Any]]:
    """The ``diffveri`` rows (without ``split``) of every planned image whose exact mask is ``ok``, in plan order,
    with the export-only ``vid`` (identity index + 1) and ``frame`` (image index) of :data:`EXPORT_ONLY`."""
    rows = []
    for index, (ident, ps) in plans.items():
        for p in ps:
            seg = segments.get(p.image_id)
            if seg is None or seg["status"] != Status.OK:
                continue
            row = diffveri_row(
                image_id=p.image_id,
                identity_id=ident.identity_id,
                class_name=ident.class_name,
                camera_id=CAMERA_OF_VIEW[p.view],
                path=p.path,
                width=size,
                height=size,
                view_label=p.view,
                masks=seg,
                provenance={
                    "model_ref": MODEL_REF,
                    "seed": p.seed,
                    "segmenter_ref": SEGMENTER_REF,
                    "azimuth": p.azimuth,
                    "elevation": p.elevation,
                    "occluders": p.occluders,
                },
            )
            rows.append({**row, "vid": index + 1, "frame": p.j})
    return rows


def table_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` without their :data:`EXPORT_ONLY` fields, as the ``diffveri`` table stores them."""
    return [{k: v for k, v in r.items() if k not in EXPORT_ONLY} for r in rows]
