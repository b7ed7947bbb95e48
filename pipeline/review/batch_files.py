"""What a batch's files show: its CSV rows (read-only columns from the manifests, editable ones from the batch's
``reviews`` rows) and the files written for annotators (``batch_<id>.csv``, the HTML contact sheet of :mod:`.sheet`
and its pictures folder). The importer compares returned files against :func:`batch_rows`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from data_manifests import Decision

from .csvio import write_csv
from .queries import batch_reviews, image_info
from .sheet import write_sheet

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
