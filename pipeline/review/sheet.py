"""The HTML contact sheet of a review batch, self-contained: its pictures are copied beside it.

``batch_<id>.html`` refers only to files in ``batch_<id>_files/`` next to it (candidate crops, the identity's
reference photo, and view-mask overlays where a ``segments`` row exists), so the review folder can be zipped and
sent on its own. Small image files (up to :data:`COPY_BYTES`) are copied byte for byte; larger ones become JPEG
thumbnails (longest side :data:`THUMB_SIZE`). A picture that cannot be read is shown as text naming its path; it
never stops the export.
"""

from __future__ import annotations

import html
import io
import logging
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image, UnidentifiedImageError

import data_manifests as dm
from data_manifests import rle

from .csvio import export_id

log = logging.getLogger(__name__)

THUMB_SIZE = 256
# Files this small are copied as they are (no decoding: a 100k-row batch stays fast); larger ones are thumbnailed.
COPY_BYTES = 200_000
COPY_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif")
# Overlay colours of the view classes (PVEN and toy-world names), with the legend shown on the sheet.
VIEW_COLOURS: dict[str, tuple[int, int, int]] = {
    "front": (230, 40, 40),
    "rear": (40, 90, 230),
    "side": (40, 180, 60),
    "left": (40, 180, 60),
    "right": (240, 190, 20),
    "top": (200, 60, 200),
}
OVERLAY_ALPHA = 0.55


def files_dir_name(batch_id: str) -> str:
    """The folder beside ``batch_<id>.html`` that holds its pictures."""
    return f"batch_{batch_id}_files"


# -------------------------------------------------------------------------------------------------------- pictures
def _copy_or_thumbnail(source: Path, target_stem: Path) -> Path | None:
    """Copy ``source`` (small files, without decoding them) or write a JPEG thumbnail of it; returns the written
    file or None."""
    try:
        if source.suffix.lower() in COPY_SUFFIXES and source.stat().st_size <= COPY_BYTES:
            target = target_stem.with_suffix(source.suffix.lower())
            shutil.copyfile(source, target)
            return target
        with dm.open_image(source) as img:
            if max(img.size) <= THUMB_SIZE and img.format in ("PNG", "JPEG", "GIF", "WEBP"):
                target = target_stem.with_suffix(source.suffix.lower() or ".png")
                shutil.copyfile(source, target)
                return target
            img.thumbnail((THUMB_SIZE, THUMB_SIZE))
            buf = io.BytesIO()
            img.convert("RGB").save(buf, format="JPEG", quality=88)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        log.debug("contact sheet: %s is not usable (%s)", source, exc)
        return None
    target = target_stem.with_suffix(".jpg")
    dm.atomic_write_bytes(target, buf.getvalue())
    return target


def overlay(image: np.ndarray, view_classes: Sequence[str], view_rles: Sequence[dict[str, Any]]) -> np.ndarray:
    """``image`` (H, W, 3) uint8 with each view class's mask tinted in its :data:`VIEW_COLOURS` colour."""
    out = image.astype(np.float32)
    for name, mask_rle in zip(view_classes, view_rles, strict=True):
        colour = VIEW_COLOURS.get(name)
        if colour is None or mask_rle is None:
            continue  # background (and unknown classes) stay as they are
        mask = rle.decode(mask_rle)
        if mask.shape != image.shape[:2]:
            raise ValueError(f"mask {mask.shape} does not fit the image {image.shape[:2]}")
        out[mask] = (1 - OVERLAY_ALPHA) * out[mask] + OVERLAY_ALPHA * np.asarray(colour, np.float32)
    return out.round().clip(0, 255).astype(np.uint8)


def _write_overlay(source: Path, segment: dict[str, Any], target_stem: Path) -> Path | None:
    try:
        with dm.open_image(source) as img:
            picture = overlay(np.asarray(img.convert("RGB")), segment["view_classes"], segment["view_rles"])
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        log.debug("contact sheet: no overlay for %s (%s)", source, exc)
        return None
    thumb = Image.fromarray(picture)
    thumb.thumbnail((THUMB_SIZE, THUMB_SIZE))
    buf = io.BytesIO()
    thumb.save(buf, format="PNG")
    target = target_stem.with_suffix(".png")
    dm.atomic_write_bytes(target, buf.getvalue())
    return target


def view_segments(root: Path, image_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """image_id -> its ok ``segments`` row (view_classes, view_rles), for the images that have one."""
    if not dm.table_exists(root, "segments") or not image_ids:
        return {}
    ids = pa.array(list(image_ids), pa.string())
    rows = dm.read_rows(
        root,
        "segments",
        columns=["image_id", "view_classes", "view_rles"],
        filter=(pc.field("status") == dm.Status.OK) & pc.field("image_id").isin(ids),
    )
    return {r["image_id"]: r for r in rows if r["view_classes"] and r["view_rles"]}


def copy_pictures(
    root: Path, rows: Sequence[dict[str, Any]], info: dict[str, dict[str, Any]], files_dir: Path, threads: int = 4
) -> dict[tuple[str, str], str]:
    """Copy every picture the sheet shows into ``files_dir``; returns ``(kind, key) -> file name`` for those written.

    Kinds: ``("image", image_id)``, ``("reference", identity_id)``, ``("views", image_id)``.
    """
    files_dir.mkdir(parents=True, exist_ok=True)
    segments = view_segments(root, [r["image_id"] for r in rows])
    jobs: dict[tuple[str, str], Any] = {}
    for r in rows:
        iid, ident = r["image_id"], r["identity_id"]
        if r["image"]:
            jobs[("image", iid)] = (_copy_or_thumbnail, r["image"], files_dir / iid)
        if r["reference"] and ("reference", ident) not in jobs:
            jobs[("reference", ident)] = (_copy_or_thumbnail, r["reference"], files_dir / f"reference_{ident}")
        path = info.get(iid, {}).get("path")
        if iid in segments and path:
            jobs[("views", iid)] = (_write_overlay, path, segments[iid], files_dir / f"{iid}_views")

    def run(job: tuple[Any, ...]) -> Path | None:
        fn, rel, *args = job
        try:
            source = dm.inside_root(root, rel, "contact sheet picture")
        except ValueError as exc:
            log.warning("contact sheet: %s", exc)
            return None
        return fn(source, *args)

    with ThreadPoolExecutor(threads) as pool:  # PIL releases the GIL while decoding and encoding
        written = list(pool.map(run, jobs.values()))
    return {key: path.name for key, path in zip(jobs, written, strict=True) if path is not None}


# ------------------------------------------------------------------------------------------------------------ page
def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    return f"{float(value):.{digits}f}"


def _row_html(
    line: int, r: dict[str, Any], g: dict[str, Any], pictures: dict[tuple[str, str], str], folder: str
) -> str:
    def img(kind: str, key: str, rel: str, alt: str) -> str:
        name = pictures.get((kind, key))
        if name is None:
            return f"<em>no image</em><br><small>{html.escape(rel)}</small>" if rel else "<em>no image</em>"
        return f'<img src="{html.escape(f"{folder}/{name}")}" alt="{html.escape(alt)}" loading="lazy">'

    iid, ident = r["image_id"], r["identity_id"]
    views = img("views", iid, "", "view masks " + iid) if ("views", iid) in pictures else "<em>no masks yet</em>"
    checks = ""
    if g.get("identity_score") is not None or g.get("view_score") is not None:
        checks = (
            f"<br>identity score {_fmt(g.get('identity_score'))}<br>view score {_fmt(g.get('view_score'))}"
            f" (segmenter: {html.escape(str(g.get('segment_view') or '-'))})"
        )
    return (
        "<tr>"
        f"<td>{line}</td>"
        f"<td>{img('image', iid, r['image'], 'candidate ' + iid)}</td>"
        f"<td>{img('reference', ident, r['reference'], 'reference ' + ident)}</td>"
        f"<td>{views}</td>"
        f"<td><code>{html.escape(export_id(iid))}</code><br>identity <b>{html.escape(ident)}</b><br>"
        f"intended view <b>{html.escape(r['intended_view'])}</b><br>detector conf {html.escape(r['detector_conf'])}"
        f"{checks}</td></tr>"
    )


def _legend() -> str:
    items = {}
    for name, (red, green, blue) in VIEW_COLOURS.items():
        items.setdefault((red, green, blue), []).append(name)
    spans = [
        f'<span style="background:rgb({c[0]},{c[1]},{c[2]});padding:0 6px">&nbsp;</span> {"/".join(names)}'
        for c, names in items.items()
    ]
    return "<p>View masks: " + " &nbsp; ".join(spans) + "</p>"


def contact_sheet(
    batch_id: str,
    rows: Sequence[dict[str, Any]],
    info: dict[str, dict[str, Any]],
    pictures: dict[tuple[str, str], str],
) -> str:
    """An HTML page: each candidate crop beside its identity's reference photo and its view masks (when segmented),
    with the row's CSV line, id and check scores. Pictures are named relative to the page (``batch_<id>_files/``)."""
    folder = files_dir_name(batch_id)
    body = [
        _row_html(i, r, info.get(r["image_id"], {}), pictures, folder) for i, r in enumerate(rows, start=2)
    ]  # CSV line numbers: the header is line 1
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>review batch {html.escape(batch_id)}</title>"
        "<style>body{font-family:sans-serif}td{padding:4px;vertical-align:top;border-bottom:1px solid #ccc}"
        "img{height:160px;image-rendering:pixelated}</style></head><body>"
        f"<h1>Review batch {html.escape(batch_id)}</h1>"
        f"<p>{len(rows)} images. Fill in <code>batch_{html.escape(batch_id)}.csv</code> "
        "(columns decision, view_label, identity_ok, notes, reviewer); see docs/review-guide.md. Keep this page, the "
        f"CSV and the folder <code>{html.escape(folder)}</code> together.</p>"
        + _legend()
        + "<table><tr><th>CSV line</th><th>candidate</th><th>reference</th><th>view masks</th><th>row</th></tr>"
        + "\n".join(body)
        + "</table></body></html>\n"
    )


def write_sheet(
    root: Path, batch_id: str, rows: Sequence[dict[str, Any]], info: dict[str, dict[str, Any]], out_dir: Path
) -> Path:
    """Copy the pictures and write ``out_dir/batch_<id>.html``; returns the page's path."""
    pictures = copy_pictures(Path(root), rows, info, Path(out_dir) / files_dir_name(batch_id))
    page = Path(out_dir) / f"batch_{batch_id}.html"
    dm.atomic_write_bytes(page, contact_sheet(batch_id, rows, info, pictures).encode("utf-8"))
    return page


def referenced_files(page: Path) -> list[str]:
    """The ``src`` of every picture of a contact sheet (for checks that a folder is self-contained)."""
    import re

    return re.findall(r'<img src="([^"]+)"', page.read_text(encoding="utf-8"))


__all__ = [
    "THUMB_SIZE",
    "VIEW_COLOURS",
    "contact_sheet",
    "copy_pictures",
    "files_dir_name",
    "overlay",
    "referenced_files",
    "view_segments",
    "write_sheet",
]
