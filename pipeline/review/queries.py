"""Read-only questions the review asks: candidates, a batch's rows, what an image shows, a row's status.

What the review decided (the latest decision of an image, what was accepted) is a question other stages ask too:
it lives in :mod:`data_manifests.queries`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

import data_manifests as dm
from data_manifests import Decision, Reason, Status

# Columns of ``detections`` a reviewer (and the selection policies) use, beside the generation's own.
DETECTION_COLUMNS = ["image_id", "crop_path", "conf", "bbox", "identity_score", "view_score", "segment_view"]


def subject_references(root: Path) -> dict[str, str]:
    """identity_id -> its first instance image (the reference shown beside every candidate)."""
    if not dm.table_exists(root, "subjects"):
        return {}
    rows = dm.read_rows(root, "subjects", columns=["identity_id", "instance_images"])
    return {r["identity_id"]: (r["instance_images"] or [""])[0] for r in rows}


def candidates(root: Path, identities: Sequence[str] | None = None) -> pd.DataFrame:
    """Kept images with what a reviewer needs to see.

    Columns: image_id, identity_id, intended_view, path (the generated image), crop_path, conf, bbox, identity_score,
    view_score, segment_view (the last three NaN/None until the consistency checks ran), reference (the identity's
    first instance image, or "" when there is no subjects row).
    """
    det = dm.read_table(root, "detections", columns=DETECTION_COLUMNS, filter=pc.field("status") == Status.OK)
    gen = dm.read_table(
        root,
        "generations",
        columns=["image_id", "identity_id", "intended_view", "path"],
        filter=pc.field("status") == Status.OK,
    )
    df = gen.to_pandas().merge(det.to_pandas(), on="image_id", how="inner")
    if identities is not None:
        df = df[df["identity_id"].isin(list(identities))]
    df["reference"] = df["identity_id"].map(subject_references(root)).fillna("")
    for column in ("conf", "identity_score", "view_score"):
        df[column] = df[column].astype(float)
    return df.sort_values(["identity_id", "image_id"], kind="stable").reset_index(drop=True)


def status_of(decision: str, identity_ok: bool | None) -> tuple[str, str | None]:
    """``(status, reason)`` of a reviews row."""
    if decision == Decision.ACCEPT.value:
        if identity_ok is False:
            return Status.REJECTED.value, Reason.IDENTITY_MISMATCH.value
        return Status.OK.value, None
    if decision == Decision.REJECT.value:
        return Status.REJECTED.value, Reason.REVIEWER_REJECTED.value
    if decision == Decision.UNSURE.value:
        return Status.PENDING.value, Reason.REVIEWER_UNSURE.value
    return Status.PENDING.value, Reason.AWAITING_REVIEW.value


def batch_reviews(root: Path, batch_id: str) -> list[dict[str, Any]]:
    """The ``reviews`` rows of one batch."""
    return dm.read_rows(root, "reviews", filter=pc.field("batch_id") == batch_id, missing_ok=True)


_INFO_DETECTION = ("crop_path", "conf", "identity_score", "view_score", "segment_view")


def image_info(root: Path, image_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """image_id -> identity_id, intended_view, path, crop_path, conf, identity_score, view_score, segment_view,
    reference (missing values as None)."""
    ids = pa.array(list(image_ids), pa.string())
    gen = dm.read_table(
        root,
        "generations",
        columns=["image_id", "identity_id", "intended_view", "path"],
        filter=pc.field("image_id").isin(ids),
    )
    det = dm.read_table(
        root,
        "detections",
        columns=["image_id", *_INFO_DETECTION],
        filter=pc.field("image_id").isin(ids),
        missing_ok=True,
    )
    refs = subject_references(root)
    info: dict[str, dict[str, Any]] = {}
    for r in gen.to_pylist():
        r["reference"] = refs.get(r["identity_id"], "")
        r.update(dict.fromkeys(_INFO_DETECTION))
        info[r["image_id"]] = r
    for r in det.to_pylist():
        if r["image_id"] in info:
            info[r["image_id"]].update({k: r[k] for k in _INFO_DETECTION})
    return info
