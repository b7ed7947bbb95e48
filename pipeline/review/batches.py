"""Forming review batches: which candidates may be queued, how they are cut into batches, the batch id, and the
``reviews`` rows a new batch starts with (pending for a person, or decided by the triage).

A batch is a set of ``reviews`` rows sharing a ``batch_id``. Each row records the sha256 of its image bytes at the
moment it was queued (the import checks that the image did not change meanwhile).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from data_manifests import Decision, Status
from data_manifests.enums import AUTO_REVIEWER, Triage
from data_manifests.queries import reviews_frame

from .hashing import hash_files
from .queries import status_of

log = logging.getLogger(__name__)


def new_batch_id(image_ids: Sequence[str], prefix: str) -> str:
    """``prefix`` + a hash of the ids. Content-addressed: exporting the same selection again names the same batch
    (and upsert changes nothing)."""
    return prefix + hashlib.sha256("\n".join(image_ids).encode()).hexdigest()[:10]


def queueable(root: Path, cands: pd.DataFrame, requeue_auto: bool) -> pd.DataFrame:
    """Candidates that are not in any batch yet; with ``requeue_auto`` also those only ``auto-policy`` reviewed."""
    reviews = reviews_frame(root)
    if reviews.empty:
        return cands
    if requeue_auto:
        human = reviews[reviews["reviewer"].fillna("") != AUTO_REVIEWER]
        taken = set(human["image_id"])
    else:
        taken = set(reviews["image_id"])
    return cands[~cands["image_id"].isin(taken)]


def chunks(df: pd.DataFrame, size: int) -> list[pd.DataFrame]:
    """``df`` in consecutive pieces of ``size`` rows (the batches)."""
    if size < 1:
        raise ValueError(f"review batch size must be >= 1, got {size}")
    return [df.iloc[i : i + size] for i in range(0, len(df), size)]


def _scored(chunk: pd.DataFrame) -> list[bool]:
    """Per row: did a consistency check score it? (Only then is its triage recorded.)"""
    scored = pd.Series(False, index=chunk.index)
    for column in ("identity_score", "view_score"):
        if column in chunk:
            scored |= chunk[column].notna()
    return scored.tolist()


def new_rows(root: Path, chunk: pd.DataFrame, batch_id: str, automatic: bool) -> list[dict[str, Any]]:
    """``reviews`` rows for ``chunk``: pending (for a person), or decided by the triage (``automatic``)."""
    now = dt.datetime.now(dt.UTC) if automatic else None
    shas = hash_files([os.path.join(str(root), p) for p in chunk["path"]], desc=f"review {batch_id}: hashing")
    triages = chunk["triage"].tolist() if "triage" in chunk else [None] * len(chunk)
    reasons = chunk["triage_reason"].tolist() if "triage_reason" in chunk else [None] * len(chunk)
    rows = []
    for r, sha, tri, why, scored in zip(
        chunk.itertuples(index=False), shas, triages, reasons, _scored(chunk), strict=True
    ):
        if sha is None:
            log.warning("review: %s has no image file %s; not queued", r.image_id, root / r.path)
            continue
        if not automatic:
            decision, reviewer = Decision.PENDING.value, None
            status, reason = status_of(decision, None)
        elif tri == Triage.REJECT.value:
            decision, reviewer, status, reason = Decision.REJECT.value, AUTO_REVIEWER, Status.REJECTED.value, why
        else:
            decision, reviewer = Decision.ACCEPT.value, AUTO_REVIEWER
            status, reason = status_of(decision, None)
        rows.append(
            {
                "image_id": r.image_id,
                "batch_id": batch_id,
                "decision": decision,
                "view_label": r.intended_view if automatic else None,
                "reviewer": reviewer,
                "reviewed_at": now,
                "source_sha256": sha,
                "status": status,
                "reason": reason,
                "triage": tri if scored else None,
            }
        )
    return rows
