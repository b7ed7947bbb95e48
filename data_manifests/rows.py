"""Row builders: each table's row is made in one place, next to its schema, and checked like the writer checks it.

A builder refuses what :func:`data_manifests.to_arrow` would refuse later (an unknown column, a missing required
value, a value outside its enumeration), so the error names the row where it was made. Column types are left to
the writer.

* :func:`subject_row` — a ``subjects`` row (one identity and its instance images);
* :func:`generation_row` — a ``generations`` row (one generated or rendered image, or why it is missing);
* :func:`segment_row` — a ``segments`` / ``segments_gt`` row from a vehicle mask and a view label map;
* :func:`diffveri_row` — a ``diffveri`` row (``split`` is set later, by the split assignment).

Optional columns left at ``None`` are left out of the row; the writer fills them with nulls.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

from . import rle
from .enums import INTENDED_VIEWS, Reason, Status
from .schemas import get_spec
from .store import ManifestError

# diffveri.camera_id: one virtual camera per intended viewpoint, as in VeRi-776 where cameras see vehicles from
# different angles; real photos whose view is unknown share one more camera.
CAMERA_OF_VIEW: dict[str, int] = {view: i + 1 for i, view in enumerate(INTENDED_VIEWS)}
REAL_CAMERA = len(CAMERA_OF_VIEW) + 1


def camera_of(view: str | None) -> int:
    """The virtual camera of a viewpoint (:data:`REAL_CAMERA` when the view is unknown)."""
    return REAL_CAMERA if view is None else CAMERA_OF_VIEW[view]


def check_row(table: str, row: Mapping[str, Any], *, later: Collection[str] = ()) -> None:
    """Raise :class:`ManifestError` if ``row`` would not fit ``table``: unknown columns, a required column without
    a value (except the columns in ``later``, which another step fills), a value outside its enumeration."""
    spec = get_spec(table)
    names = spec.schema.names
    unknown = sorted(set(row) - set(names))
    if unknown:
        raise ManifestError(f"{table}: row has unknown column(s) {unknown}; schema: {names}")
    key = ", ".join(f"{k}={row.get(k)!r}" for k in spec.key)
    for f in spec.schema:
        if not f.nullable and f.name not in later and row.get(f.name) is None:
            raise ManifestError(f"{table}: column {f.name!r} is required but row ({key}) has no value")
    bad = [(c, row[c]) for c, allowed in spec.enums.items() if row.get(c) is not None and row[c] not in allowed]
    bad += [(c, v) for c, allowed in spec.list_enums.items() for v in row.get(c) or () if v not in allowed]
    if bad:
        column, value = bad[0]
        allowed = sorted(spec.enums.get(column) or spec.list_enums[column])
        raise ManifestError(
            f"{table}: row ({key}): {column}={value!r} is outside its enumeration; allowed: {allowed} "
            "(add new codes in data_manifests/enums.py)"
        )


def _without_none(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if v is not None}


def subject_row(
    *,
    identity_id: str,
    class_name: str,
    instance_images: Sequence[str],
    source: str,
    token: str | None = None,
    instance_sha256: Sequence[str] | None = None,
    attributes: str | None = None,
    status: Status = Status.OK,
) -> dict[str, Any]:
    """A ``subjects`` row: an identity, its instance image paths (relative to the root, with their sha256 when
    known), where it comes from (a :class:`~data_manifests.enums.Source` code) and ``attributes`` as JSON."""
    row = _without_none(
        {
            "identity_id": identity_id,
            "class_name": class_name,
            "token": token,
            "instance_images": list(instance_images),
            "instance_sha256": None if instance_sha256 is None else list(instance_sha256),
            "source": source,
            "attributes": attributes,
            "status": status,
        }
    )
    check_row("subjects", row)
    return row


def generation_row(
    *,
    image_id: str,
    identity_id: str,
    intended_view: str,
    prompt: str | None = None,
    negative_prompt: str | None = None,
    seed: int | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    scheduler: str | None = None,
    width: int | None = None,
    height: int | None = None,
    path: str | None = None,
    sha256: str | None = None,
    model_ref: str | None = None,
    lora_sha256: str | None = None,
    status: Status = Status.OK,
    reason: str | None = None,
    message: str | None = None,
) -> dict[str, Any]:
    """A ``generations`` row: one image of ``identity_id`` asked for at ``intended_view``, how it was made
    (prompt, seed, sampler settings, ``model_ref``) and where it is (``path`` relative to the root, ``sha256``).
    A row that is not ``ok`` says why in ``reason`` / ``message`` and usually has no ``path``."""
    row = _without_none(
        {
            "image_id": image_id,
            "identity_id": identity_id,
            "intended_view": intended_view,
            "prompt": prompt,
            "negative_prompt": negative_prompt,
            "seed": seed,
            "steps": steps,
            "guidance": guidance,
            "scheduler": scheduler,
            "width": width,
            "height": height,
            "path": path,
            "sha256": sha256,
            "model_ref": model_ref,
            "lora_sha256": lora_sha256,
            "status": status,
            "reason": reason,
            "message": message,
        }
    )
    check_row("generations", row)
    return row


def segment_row(
    image_id: str,
    bbox: Sequence[float] | None,
    vehicle: np.ndarray,
    labels: np.ndarray,
    view_classes: Sequence[str],
    segmenter_ref: str,
    *,
    empty_message: str,
) -> dict[str, Any]:
    """A ``segments`` (or ``segments_gt``) row from a vehicle mask ``(H, W)`` bool and a view label map ``(H, W)``
    into ``view_classes`` (background first; 0 outside the vehicle).

    ``view_fractions`` are shares of vehicle pixels (the background's is 0). An empty vehicle mask gives a
    ``rejected`` / ``empty_mask`` row with ``empty_message`` (masks kept for inspection)."""
    vehicle = np.asarray(vehicle, dtype=bool)
    counts = np.bincount(labels[vehicle].ravel(), minlength=len(view_classes)).astype(np.float64)
    total = counts.sum()
    fractions = (counts / total) if total else np.zeros(len(view_classes))
    row: dict[str, Any] = {
        "image_id": image_id,
        "bbox": None if bbox is None else [float(v) for v in bbox],
        "vehicle_rle": rle.encode(vehicle),
        "view_classes": list(view_classes),
        "view_rles": rle.label_map_to_rles(labels, view_classes),
        "view_fractions": [float(f) for f in fractions],
        "dominant_view": view_classes[1 + int(np.argmax(counts[1:]))] if total else None,
        "segmenter_ref": segmenter_ref,
        "status": Status.OK,
    }
    if not total:
        row.update(status=Status.REJECTED, reason=Reason.EMPTY_MASK, message=empty_message)
    check_row("segments", row)
    return row


MASK_COLUMNS: tuple[str, ...] = ("dominant_view", "vehicle_rle", "view_classes", "view_rles")


def diffveri_row(
    *,
    image_id: str,
    identity_id: str,
    class_name: str | None,
    camera_id: int,
    path: str,
    width: int,
    height: int,
    view_label: str | None,
    provenance: Mapping[str, Any],
    masks: Mapping[str, Any] | None = None,
    source: str | None = None,
    status: Status = Status.OK,
) -> dict[str, Any]:
    """A ``diffveri`` row without its ``split`` (set by the split assignment). ``masks`` is a ``segments`` row (or
    any mapping with its :data:`MASK_COLUMNS`); ``provenance`` is stored as sorted JSON."""
    row: dict[str, Any] = {
        "image_id": image_id,
        "identity_id": identity_id,
        "class_name": class_name,
        "camera_id": camera_id,
        "path": path,
        "width": width,
        "height": height,
        "view_label": view_label,
    }
    if masks is not None:
        row.update({k: masks[k] for k in MASK_COLUMNS})
    if source is not None:
        row["source"] = source
    row["provenance"] = json.dumps(dict(provenance), sort_keys=True)
    row["status"] = status
    check_row("diffveri", row, later=("split",))
    return row


__all__ = [
    "CAMERA_OF_VIEW",
    "MASK_COLUMNS",
    "REAL_CAMERA",
    "camera_of",
    "check_row",
    "diffveri_row",
    "generation_row",
    "segment_row",
    "subject_row",
]
