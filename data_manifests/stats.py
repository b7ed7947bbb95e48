"""Dataset statistics: per-table counts by status and reason, and the paper's dataset-comparison row."""

from __future__ import annotations

import os
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

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
    arrow = read_table(root, table, filter=pc.field("status") == "ok")
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


def stats(root: str | os.PathLike) -> dict[str, Any]:
    """Counts for every table present, plus the dataset row when the ``diffveri`` table exists."""
    out: dict[str, Any] = {"tables": {t: status_counts(root, t) for t in list_tables(root)}}
    if "diffveri" in out["tables"]:
        out["dataset"] = dataset_row(root)
    return out


def format_stats(result: dict[str, Any]) -> str:
    lines = []
    for table, counts in result["tables"].items():
        total = sum(counts.values())
        lines.append(f"{table}: {total} rows")
        lines.extend(f"  {label:<32} {n}" for label, n in counts.items())
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
