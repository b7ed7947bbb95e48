"""Dataset statistics: per-table counts by status and reason, and the paper's dataset-comparison row."""

from __future__ import annotations

import os
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .enums import AUTO_REVIEWER, Decision, Status
from .store import list_tables, read_table


def status_counts(root: str | os.PathLike, table: str) -> dict[str, int]:
    """Rows per ``status`` or ``status/reason`` (e.g. ``{"ok": 90, "rejected/too_small": 10}``)."""
    arrow = read_table(root, table, columns=["status", "reason"])
    counts: dict[str, int] = {}
    for row in arrow.group_by(["status", "reason"]).aggregate([("status", "count")]).to_pylist():
        label = row["status"] if row["reason"] is None else f"{row['status']}/{row['reason']}"
        counts[label] = row["status_count"]
    return dict(sorted(counts.items()))


def dataset_row(root: str | os.PathLike, table: str = "diffveri") -> dict[str, Any]:
    """The columns of the paper's dataset comparison table for the final dataset (``ok`` rows only)."""
    arrow = read_table(root, table, filter=pc.field("status") == Status.OK)
    n = arrow.num_rows
    views = {}
    if n and "dominant_view" in arrow.column_names:
        for item in pc.value_counts(arrow.column("dominant_view")).to_pylist():
            if item["values"] is not None:  # rows without masks (real photos) have no dominant view
                views[item["values"]] = item["counts"]
    annotated = 0
    if n and "view_rles" in arrow.column_names:
        annotated = n - int(pc.sum(pc.is_null(arrow.column("view_rles"))).as_py() or 0)
    return {
        "images": n,
        "identities": len(pc.unique(arrow.column("identity_id"))) if n else 0,
        "mean_height": round(pc.mean(arrow.column("height")).as_py(), 1) if n else None,
        "mean_width": round(pc.mean(arrow.column("width")).as_py(), 1) if n else None,
        "multi_view_annotations": annotated,
        "views": dict(sorted(views.items())),
        "splits": {i["values"]: i["counts"] for i in pc.value_counts(arrow.column("split")).to_pylist()} if n else {},
        "sources": _counts(arrow, "source") if n else {},
    }


def _counts(arrow: pa.Table, column: str) -> dict[str, int]:
    """Rows per value of ``column`` (null counted as ``unknown``), sorted by value."""
    if column not in arrow.column_names:
        return {}
    items = pc.value_counts(arrow.column(column)).to_pylist()
    return dict(sorted((i["values"] or "unknown", i["counts"]) for i in items))


def review_coverage(root: str | os.PathLike) -> dict[str, Any]:
    """What share of the images a person saw, from ``reviews`` (and of the final dataset, when ``diffveri`` exists).

    An image counts as seen by a person when any of its decided reviews rows has a reviewer other than
    ``auto-policy``; ``pending_for_a_person`` images sit in a batch without a decision by a person yet;
    ``decided_automatically`` images have only ``auto-policy`` decisions (``auto_rejected`` by reason code).
    """
    rev = read_table(root, "reviews", columns=["image_id", "decision", "reviewer", "reason"]).to_pandas()
    decided = rev["decision"] != Decision.PENDING.value
    person = decided & (rev["reviewer"].fillna("") != AUTO_REVIEWER)
    seen = set(rev.loc[person, "image_id"])
    pending = set(rev.loc[~decided, "image_id"]) - seen
    auto_rows = rev[decided & ~person & ~rev["image_id"].isin(seen | pending)]
    rejected = auto_rows[auto_rows["decision"] == Decision.REJECT.value]
    images = rev["image_id"].nunique()
    out: dict[str, Any] = {
        "images": images,
        "seen_by_a_person": len(seen),
        "pending_for_a_person": len(pending),
        "decided_automatically": auto_rows["image_id"].nunique(),
        "auto_rejected": {str(k): int(v) for k, v in rejected.groupby("reason")["image_id"].nunique().items()},
        "share_seen": round(len(seen) / images, 4) if images else None,
    }
    if "diffveri" in list_tables(root):
        ids = read_table(root, "diffveri", columns=["image_id"], filter=pc.field("status") == Status.OK)["image_id"]
        in_dataset = set(ids.to_pylist())
        out["dataset_images"] = len(in_dataset)
        out["dataset_seen_by_a_person"] = len(in_dataset & seen)
        out["dataset_share_seen"] = round(len(in_dataset & seen) / len(in_dataset), 4) if in_dataset else None
    return out


def stats(root: str | os.PathLike) -> dict[str, Any]:
    """Counts for every table present, plus the review coverage and the dataset row when those tables exist."""
    out: dict[str, Any] = {"tables": {t: status_counts(root, t) for t in list_tables(root)}}
    if "reviews" in out["tables"]:
        out["review"] = review_coverage(root)
    if "diffveri" in out["tables"]:
        out["dataset"] = dataset_row(root)
    return out


def format_review(r: dict[str, Any]) -> list[str]:
    """The review coverage as text lines."""
    share = f" ({100 * r['share_seen']:.1f} %)" if r["share_seen"] is not None else ""
    rejects = ", ".join(f"{k} {v}" for k, v in r["auto_rejected"].items()) or "none"
    lines = [
        f"review: {r['images']} images; a person saw {r['seen_by_a_person']}{share}, "
        f"{r['pending_for_a_person']} await a person, {r['decided_automatically']} decided automatically "
        f"(rejected: {rejects})"
    ]
    if "dataset_images" in r:
        share = f" ({100 * r['dataset_share_seen']:.1f} %)" if r["dataset_share_seen"] is not None else ""
        lines.append(
            f"dataset: a person saw {r['dataset_seen_by_a_person']} of its {r['dataset_images']} images{share}"
        )
    return lines


def format_stats(result: dict[str, Any]) -> str:
    lines = []
    for table, counts in result["tables"].items():
        total = sum(counts.values())
        lines.append(f"{table}: {total} rows")
        lines.extend(f"  {label:<32} {n}" for label, n in counts.items())
    if "review" in result:
        lines.append("")
        lines.extend(format_review(result["review"]))
    if "dataset" in result:
        d = result["dataset"]
        lines.append("")
        lines.append(
            "| Dataset | Images | Identities | Sources | Multi-view annotations | Resolution (mean W x H) | Views |"
        )
        lines.append("|---|---|---|---|---|---|---|")
        res = f"{d['mean_width']:.0f} x {d['mean_height']:.0f}" if d["images"] else "-"
        views = ", ".join(f"{k} {v}" for k, v in d["views"].items())
        sources = ", ".join(f"{k} {v:,}" for k, v in d.get("sources", {}).items()) or "-"
        lines.append(
            f"| DiffVERI (this root) | {d['images']:,} | {d['identities']:,} | {sources} | "
            f"{d['multi_view_annotations']:,} | {res} | {views} |"
        )
    return "\n".join(lines) if lines else "no manifest tables found"
