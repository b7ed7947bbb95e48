"""The review queue: put the images a selection policy picks into new batches, for people (``export_batches``:
``pending`` rows plus the CSV + HTML files) or decided without a person (``auto_review``: reviewer ``auto-policy``
accepts an image, or rejects it with the reason code of the consistency check it failed).

Forming batches lives in :mod:`.batches`, a batch's files in :mod:`.batch_files`, reading the review state in
:mod:`.queries`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import data_manifests as dm
from data_manifests.enums import Triage

from .batch_files import write_batch_files
from .batches import chunks, new_batch_id, new_rows, queueable
from .csvio import gc_paused
from .policy import Bands, Policy, parse_policy, select
from .queries import candidates

log = logging.getLogger(__name__)

__all__ = ["auto_review", "export_batches"]


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
        cands = queueable(root, candidates(root, identities), requeue_auto=pol.name == "all")
        chosen = select(
            cands, pol, seed=seed, uncertain_low=uncertain_low, uncertain_high=uncertain_high, bands=bands,
            audit_rate=audit_rate,
        )  # fmt: skip
        batch_ids = []
        for chunk in chunks(chosen, batch_size):
            bid = new_batch_id(list(chunk["image_id"]), "b")
            rows = new_rows(root, chunk, bid, automatic=False)
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
    cands = queueable(root, candidates(root, identities), requeue_auto=False)
    chosen = select(cands, pol, seed=seed, uncertain_low=uncertain_low, uncertain_high=uncertain_high, bands=bands)
    batch_ids = []
    for chunk in chunks(chosen, batch_size):
        bid = new_batch_id(list(chunk["image_id"]), "auto-")
        rows = new_rows(root, chunk, bid, automatic=True)
        if rows:
            dm.upsert(root, "reviews", rows)
            batch_ids.append(bid)
    rejected = int((chosen["triage"] == Triage.REJECT.value).sum()) if len(chosen) else 0
    log.info(
        "auto review: %d image(s) decided (%d rejected by the checks) in %d batch(es), policy %s",
        len(chosen), rejected, len(batch_ids), pol,
    )  # fmt: skip
    return batch_ids
