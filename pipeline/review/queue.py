"""The review queue: batches in the ``reviews`` table, CSV/HTML export, and automatic decisions.

A batch is a set of ``reviews`` rows sharing a ``batch_id``. Export writes each selected image as a ``pending`` row
(with the sha256 of its image bytes at that moment); import turns rows into decisions. Automatic decisions
(reviewer ``auto-policy``) accept an image, or reject it with the reason code of the consistency check it failed.
Reading the review state lives in :mod:`.queries`, the HTML contact sheet in :mod:`.sheet`.
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

import data_manifests as dm
from data_manifests import Decision, Status
from data_manifests.enums import AUTO_REVIEWER, Triage

from .csvio import gc_paused, write_csv
from .hashing import hash_files
from .policy import Bands, Policy, parse_policy, select
from .queries import batch_reviews, candidates, image_info, reviews_frame, status_of
from .sheet import write_sheet

log = logging.getLogger(__name__)

__all__ = ["AUTO_REVIEWER", "auto_review", "batch_rows", "export_batches", "write_batch_files"]


# ----------------------------------------------------------------------------------------------------- batch creation
def _batch_id(image_ids: Sequence[str], prefix: str) -> str:
    # Content-addressed: exporting the same selection again names the same batch (and upsert changes nothing).
    return prefix + hashlib.sha256("\n".join(image_ids).encode()).hexdigest()[:10]


def _queueable(root: Path, cands: pd.DataFrame, requeue_auto: bool) -> pd.DataFrame:
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


def _chunks(df: pd.DataFrame, size: int) -> list[pd.DataFrame]:
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


def _new_rows(root: Path, chunk: pd.DataFrame, batch_id: str, automatic: bool) -> list[dict[str, Any]]:
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


def export_batches(
    root: Path,
    out_dir: Path,
    policy: str | Policy = "all",
    batch_size: int = 100,
    *,
    seed: int = 0,
    identities: Sequence[str] | None = None,
    uncertain_low: float = 0.25,
    uncertain_high: float = 0.6,
    bands: Bands | None = None,
    audit_rate: float = 0.0,
) -> list[str]:
    """Queue the images the policy selects into new batches and write ``batch_<id>.csv`` + ``.html`` (+ its
    pictures folder) for each.

    Images already in a batch are not queued again (except, with ``all``, those only ``auto-policy`` reviewed).
    ``bands`` (default: the confidence band ``[uncertain_low, uncertain_high)``) and ``audit_rate`` are the
    ``uncertain`` policy's (see :mod:`.policy`). Returns the new batch ids (empty when nothing is left to queue).
    """
    with gc_paused():
        root, out_dir = Path(root), Path(out_dir)
        pol = policy if isinstance(policy, Policy) else parse_policy(policy)
        cands = _queueable(root, candidates(root, identities), requeue_auto=pol.name == "all")
        chosen = select(
            cands, pol, seed=seed, uncertain_low=uncertain_low, uncertain_high=uncertain_high, bands=bands,
            audit_rate=audit_rate,
        )  # fmt: skip
        batch_ids = []
        for chunk in _chunks(chosen, batch_size):
            bid = _batch_id(list(chunk["image_id"]), "b")
            rows = _new_rows(root, chunk, bid, automatic=False)
            if not rows:
                continue
            dm.upsert(root, "reviews", rows)
            write_batch_files(root, bid, out_dir)
            batch_ids.append(bid)
        audited = int(chosen["audit"].sum()) if len(chosen) else 0
        log.info(
            "review export: %d batch(es) from %d image(s) (%d audit), policy %s", len(batch_ids), len(chosen), audited,
            pol,
        )  # fmt: skip
        return batch_ids


def auto_review(
    root: Path,
    policy: str | Policy = "all",
    *,
    seed: int = 0,
    identities: Sequence[str] | None = None,
    batch_size: int = 100_000,
    uncertain_low: float = 0.25,
    uncertain_high: float = 0.6,
    bands: Bands | None = None,
) -> list[str]:
    """Decide the images the policy selects without a person (``reviewer="auto-policy"``, view = intended view):
    accept, or reject with the reason code of the consistency check an image failed (triage ``reject``).

    Only images not yet in any batch are considered, so re-running is a no-op. Returns the new batch ids.
    """
    root = Path(root)
    pol = policy if isinstance(policy, Policy) else parse_policy(policy)
    # Automatic decisions never re-queue: they must not override an earlier (human) decision.
    cands = _queueable(root, candidates(root, identities), requeue_auto=False)
    chosen = select(cands, pol, seed=seed, uncertain_low=uncertain_low, uncertain_high=uncertain_high, bands=bands)
    batch_ids = []
    for chunk in _chunks(chosen, batch_size):
        bid = _batch_id(list(chunk["image_id"]), "auto-")
        rows = _new_rows(root, chunk, bid, automatic=True)
        if rows:
            dm.upsert(root, "reviews", rows)
            batch_ids.append(bid)
    rejected = int((chosen["triage"] == Triage.REJECT.value).sum()) if len(chosen) else 0
    log.info(
        "auto review: %d image(s) decided (%d rejected by the checks) in %d batch(es), policy %s",
        len(chosen), rejected, len(batch_ids), pol,
    )  # fmt: skip
    return batch_ids


# ---------------------------------------------------------------------------------------------------- batch contents
_NO_INFO: dict[str, Any] = dict.fromkeys(("identity_id", "intended_view", "path", "crop_path", "conf", "reference"))


def batch_rows(
    root: Path,
    batch_id: str,
    reviews: list[dict[str, Any]] | None = None,
    info: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The CSV rows of a batch as export writes them (read-only columns from the manifests, editable ones from the
    batch's current ``reviews`` rows), sorted by identity then image. Import compares files against this.
    ``image_id`` is the bare id here; the CSV writer adds the spreadsheet-safe prefix."""
    reviews = batch_reviews(root, batch_id) if reviews is None else reviews
    if not reviews:
        raise KeyError(f"unknown review batch {batch_id!r}; `diffveri review status --root {root}` lists the batches")
    info = image_info(root, [r["image_id"] for r in reviews]) if info is None else info
    out = []
    pending = Decision.PENDING.value
    # Values come from pyarrow (None or str), so `or ""` is enough; this loop runs once per row of 100k-row batches.
    for r in reviews:
        g = info.get(r["image_id"], _NO_INFO)
        decision = r["decision"] or ""
        intended = g["intended_view"] or ""
        conf = g["conf"]
        out.append(
            {
                "batch_id": batch_id,
                "image_id": r["image_id"],
                "image": g["crop_path"] or "",
                "reference": g["reference"] or "",
                "identity_id": g["identity_id"] or "",
                "intended_view": intended,
                "detector_conf": f"{float(conf):.4f}" if conf is not None else "",
                "decision": "" if decision == pending else decision,
                "view_label": r["view_label"] or intended,
                "identity_ok": "" if r["identity_ok"] is None else ("yes" if r["identity_ok"] else "no"),
                "notes": r["notes"] or "",
                "reviewer": r["reviewer"] or "",
            }
        )
    out.sort(key=lambda x: (x["identity_id"], x["image_id"]))
    return out


def write_batch_files(root: Path, batch_id: str, out_dir: Path) -> tuple[Path, Path]:
    """(Re)write ``batch_<id>.csv``, its HTML contact sheet ``batch_<id>.html`` and the sheet's pictures folder
    ``batch_<id>_files/`` in ``out_dir`` (self-contained: the folder can be zipped and sent alone)."""
    reviews = batch_reviews(root, batch_id)
    info = image_info(root, [r["image_id"] for r in reviews])
    rows = batch_rows(root, batch_id, reviews, info)
    out_dir = Path(out_dir)
    csv_path = out_dir / f"batch_{batch_id}.csv"
    write_csv(csv_path, rows)
    html_path = write_sheet(root, batch_id, rows, info, out_dir)
    return csv_path, html_path
