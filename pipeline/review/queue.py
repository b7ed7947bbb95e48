"""The review queue: batches in the ``reviews`` table, CSV/HTML export, automatic acceptance, status, and the set
of accepted images that later stages use.

A batch is a set of ``reviews`` rows sharing a ``batch_id``. Export writes each selected image as a ``pending`` row
(with the sha256 of its image bytes at that moment); import turns rows into decisions. The latest decision of an
image (over all batches, by ``reviewed_at``) is what counts: see :func:`latest_decisions`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import logging
import os
import posixpath
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

import data_manifests as dm
from data_manifests import Decision, Reason, Status

from .csvio import gc_paused, write_csv
from .policy import Policy, parse_policy, select

log = logging.getLogger(__name__)

AUTO_REVIEWER = "auto-policy"


# ----------------------------------------------------------------------------------------------------------- reading
def candidates(root: Path, identities: Sequence[str] | None = None) -> pd.DataFrame:
    """Kept images with what a reviewer needs to see.

    Columns: image_id, identity_id, intended_view, path (the generated image), crop_path, conf, reference (the
    identity's first instance image, or "" when there is no subjects row).
    """
    det = dm.read_table(
        root, "detections", columns=["image_id", "crop_path", "conf"], filter=pc.field("status") == "ok"
    )
    gen = dm.read_table(
        root,
        "generations",
        columns=["image_id", "identity_id", "intended_view", "path"],
        filter=pc.field("status") == "ok",
    )
    df = gen.to_pandas().merge(det.to_pandas(), on="image_id", how="inner")
    if identities is not None:
        df = df[df["identity_id"].isin(list(identities))]
    refs: dict[str, str] = {}
    if dm.table_exists(root, "subjects"):
        for r in dm.read_rows(root, "subjects", columns=["identity_id", "instance_images"]):
            refs[r["identity_id"]] = (r["instance_images"] or [""])[0]
    df["reference"] = df["identity_id"].map(refs).fillna("")
    df["conf"] = df["conf"].astype(float)
    return df.sort_values(["identity_id", "image_id"], kind="stable").reset_index(drop=True)


def reviews_frame(root: Path) -> pd.DataFrame:
    """The whole ``reviews`` table as a DataFrame (empty with the right columns when the table does not exist)."""
    return dm.read_table(root, "reviews", missing_ok=True).to_pandas()


def latest_decisions(reviews: pd.DataFrame) -> pd.DataFrame:
    """One row per image: its most recent decided review (decision not pending), over every batch."""
    decided = reviews[reviews["decision"] != Decision.PENDING.value]
    if decided.empty:
        return decided
    return (
        decided.sort_values(["reviewed_at", "batch_id"], kind="stable").groupby("image_id", sort=False).tail(1)
    ).set_index("image_id")


def accepted_image_ids(root: Path) -> set[str]:
    """Images whose latest decided review is ``accept`` and whose identity was not marked wrong (``identity_ok`` is
    not False). Downstream stages (segment, assemble) pass on only these."""
    if not dm.table_exists(root, "reviews"):
        return set()
    latest = latest_decisions(reviews_frame(root))
    if latest.empty:
        return set()
    ok = (latest["decision"] == Decision.ACCEPT.value) & (latest["identity_ok"] != False)  # noqa: E712 - keeps NA
    return set(latest.index[ok.fillna(True)])


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


def hash_files(paths: Sequence[str | os.PathLike], threads: int = 4) -> list[str | None]:
    """sha256 of each file (None if it does not exist). A few threads, each hashing a contiguous share of the list,
    overlap the file system calls (they release the GIL)."""

    def some(part: Sequence[str | os.PathLike]) -> list[str | None]:
        out: list[str | None] = []
        for path in part:
            try:
                with open(path, "rb") as handle:
                    out.append(hashlib.file_digest(handle, "sha256").hexdigest())
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                out.append(None)
        return out

    if len(paths) < 256:
        return some(paths)
    step = -(-len(paths) // threads)
    with ThreadPoolExecutor(threads) as pool:
        parts = pool.map(some, [paths[i : i + step] for i in range(0, len(paths), step)])
    return [h for part in parts for h in part]


def _new_rows(root: Path, chunk: pd.DataFrame, batch_id: str, decision: str, reviewer: str | None) -> list[dict]:
    now = dt.datetime.now(dt.UTC) if decision != Decision.PENDING.value else None
    status, reason = status_of(decision, None)
    base = str(root)
    shas = hash_files([os.path.join(base, p) for p in chunk["path"]])
    rows = []
    for r, sha in zip(chunk.itertuples(index=False), shas, strict=True):
        if sha is None:
            log.warning("review: %s has no image file %s; not queued", r.image_id, root / r.path)
            continue
        rows.append(
            {
                "image_id": r.image_id,
                "batch_id": batch_id,
                "decision": decision,
                "view_label": r.intended_view if decision != Decision.PENDING.value else None,
                "reviewer": reviewer,
                "reviewed_at": now,
                "source_sha256": sha,
                "status": status,
                "reason": reason,
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
) -> list[str]:
    """Queue the images the policy selects into new batches and write ``batch_<id>.csv`` + ``.html`` for each.

    Images already in a batch are not queued again (except, with ``all``, those only ``auto-policy`` reviewed).
    Returns the new batch ids (empty when nothing is left to queue).
    """
    with gc_paused():
        return _export(Path(root), Path(out_dir), policy, batch_size, seed, identities, uncertain_low, uncertain_high)


def _export(
    root: Path,
    out_dir: Path,
    policy: str | Policy,
    batch_size: int,
    seed: int,
    identities: Sequence[str] | None,
    uncertain_low: float,
    uncertain_high: float,
) -> list[str]:
    pol = policy if isinstance(policy, Policy) else parse_policy(policy)
    cands = _queueable(root, candidates(root, identities), requeue_auto=pol.name == "all")
    chosen = select(cands, pol, seed=seed, uncertain_low=uncertain_low, uncertain_high=uncertain_high)
    batch_ids = []
    for chunk in _chunks(chosen, batch_size):
        bid = _batch_id(list(chunk["image_id"]), "b")
        rows = _new_rows(root, chunk, bid, Decision.PENDING.value, None)
        if not rows:
            continue
        dm.upsert(root, "reviews", rows)
        write_batch_files(root, bid, out_dir)
        batch_ids.append(bid)
    log.info("review export: %d batch(es) from %d image(s), policy %s", len(batch_ids), len(chosen), pol)
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
) -> list[str]:
    """Accept the images the policy selects without a human (``reviewer="auto-policy"``, view = intended view).

    Only images not yet in any batch are considered, so re-running is a no-op. Returns the new batch ids.
    """
    root = Path(root)
    pol = policy if isinstance(policy, Policy) else parse_policy(policy)
    # Auto acceptance never re-queues: it must not override an earlier (human) decision.
    cands = _queueable(root, candidates(root, identities), requeue_auto=False)
    chosen = select(cands, pol, seed=seed, uncertain_low=uncertain_low, uncertain_high=uncertain_high)
    batch_ids = []
    for chunk in _chunks(chosen, batch_size):
        bid = _batch_id(list(chunk["image_id"]), "auto-")
        rows = _new_rows(root, chunk, bid, Decision.ACCEPT.value, AUTO_REVIEWER)
        if rows:
            dm.upsert(root, "reviews", rows)
            batch_ids.append(bid)
    log.info("auto review: accepted %d image(s) in %d batch(es), policy %s", len(chosen), len(batch_ids), pol)
    return batch_ids


# ---------------------------------------------------------------------------------------------------- batch contents
_NO_INFO: dict[str, Any] = dict.fromkeys(("identity_id", "intended_view", "path", "crop_path", "conf", "reference"))


def batch_reviews(root: Path, batch_id: str) -> list[dict[str, Any]]:
    """The ``reviews`` rows of one batch."""
    return dm.read_rows(root, "reviews", filter=pc.field("batch_id") == batch_id, missing_ok=True)


def image_info(root: Path, image_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """image_id -> identity_id, intended_view, path, crop_path, conf, reference (missing values as None)."""
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
        columns=["image_id", "crop_path", "conf"],
        filter=pc.field("image_id").isin(ids),
        missing_ok=True,
    )
    refs: dict[str, str] = {}
    if dm.table_exists(root, "subjects"):
        for r in dm.read_rows(root, "subjects", columns=["identity_id", "instance_images"]):
            refs[r["identity_id"]] = (r["instance_images"] or [""])[0]
    info: dict[str, dict[str, Any]] = {}
    for r in gen.to_pylist():
        r["reference"] = refs.get(r["identity_id"], "")
        r["crop_path"] = r["conf"] = None
        info[r["image_id"]] = r
    for r in det.to_pylist():
        if r["image_id"] in info:
            info[r["image_id"]].update(crop_path=r["crop_path"], conf=r["conf"])
    return info


def batch_rows(
    root: Path,
    batch_id: str,
    reviews: list[dict[str, Any]] | None = None,
    info: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The CSV rows of a batch as export writes them (read-only columns from the manifests, editable ones from the
    batch's current ``reviews`` rows), sorted by identity then image. Import compares files against this."""
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
    """(Re)write ``batch_<id>.csv`` and its HTML contact sheet ``batch_<id>.html`` in ``out_dir``."""
    rows = batch_rows(root, batch_id)
    out_dir = Path(out_dir)
    csv_path, html_path = out_dir / f"batch_{batch_id}.csv", out_dir / f"batch_{batch_id}.html"
    write_csv(csv_path, rows)
    dm.atomic_write_bytes(html_path, contact_sheet(root, batch_id, rows, out_dir).encode("utf-8"))
    return csv_path, html_path


def contact_sheet(root: Path, batch_id: str, rows: Sequence[dict[str, Any]], out_dir: Path) -> str:
    """An HTML page: each candidate crop beside its identity's reference image, with the row's image_id."""

    prefix = Path(os.path.relpath(Path(root).resolve(), Path(out_dir).resolve())).as_posix()

    def img(rel: str, alt: str) -> str:
        if not rel:
            return "<em>no image</em>"
        src = posixpath.normpath(f"{prefix}/{rel}")
        return f'<img src="{html.escape(src)}" alt="{html.escape(alt)}" loading="lazy">'

    body = []
    for i, r in enumerate(rows, start=2):  # CSV line numbers: the header is line 1
        body.append(
            "<tr>"
            f"<td>{i}</td>"
            f"<td>{img(r['image'], 'candidate ' + r['image_id'])}</td>"
            f"<td>{img(r['reference'], 'reference ' + r['identity_id'])}</td>"
            f"<td><code>{html.escape(r['image_id'])}</code><br>identity <b>{html.escape(r['identity_id'])}</b><br>"
            f"intended view <b>{html.escape(r['intended_view'])}</b><br>detector conf {html.escape(r['detector_conf'])}"
            "</td></tr>"
        )
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>review batch {html.escape(batch_id)}</title>"
        "<style>body{font-family:sans-serif}td{padding:4px;vertical-align:top;border-bottom:1px solid #ccc}"
        "img{height:160px;image-rendering:pixelated}</style></head><body>"
        f"<h1>Review batch {html.escape(batch_id)}</h1>"
        f"<p>{len(rows)} images. Fill in <code>batch_{html.escape(batch_id)}.csv</code> "
        "(columns decision, view_label, identity_ok, notes, reviewer); see docs/review-guide.md.</p>"
        "<table><tr><th>CSV line</th><th>candidate</th><th>reference</th><th>row</th></tr>"
        + "\n".join(body)
        + "</table></body></html>\n"
    )


# ------------------------------------------------------------------------------------------------------------ status
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
