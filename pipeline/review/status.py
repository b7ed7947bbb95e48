"""Counts per review batch (``diffveri review status``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from data_manifests import Decision
from data_manifests.queries import reviews_frame


@dataclass
class BatchStatus:
    batch_id: str
    total: int
    pending: int
    accepted: int
    rejected: int
    unsure: int
    reviewers: str


def review_status(root: Path) -> list[BatchStatus]:
    """Counts per batch: pending (no decision yet), accepted, rejected, unsure."""
    reviews = reviews_frame(root)
    out = []
    for bid, g in reviews.groupby("batch_id", sort=True):
        d = g["decision"]
        out.append(
            BatchStatus(
                batch_id=str(bid),
                total=len(g),
                pending=int((d == Decision.PENDING.value).sum()),
                accepted=int((d == Decision.ACCEPT.value).sum()),
                rejected=int((d == Decision.REJECT.value).sum()),
                unsure=int((d == Decision.UNSURE.value).sum()),
                reviewers=",".join(sorted({str(x) for x in g["reviewer"].dropna()})),
            )
        )
    return out


def format_status(batches: Sequence[BatchStatus]) -> str:
    """The status table as text, with a total line."""
    if not batches:
        return "no review batches yet (run `diffveri review export`)"
    head = f"{'batch':<18} {'total':>7} {'pending':>8} {'accepted':>9} {'rejected':>9} {'unsure':>7}  reviewers"
    lines = [head]
    for b in batches:
        lines.append(
            f"{b.batch_id:<18} {b.total:>7} {b.pending:>8} {b.accepted:>9} {b.rejected:>9} {b.unsure:>7}  {b.reviewers}"
        )
    t = [sum(getattr(b, k) for b in batches) for k in ("total", "pending", "accepted", "rejected", "unsure")]
    lines.append(f"{'all':<18} {t[0]:>7} {t[1]:>8} {t[2]:>9} {t[3]:>9} {t[4]:>7}")
    return "\n".join(lines)
