"""One PNG per identity after synthesis: the subject photos in a column on the left, then the synthesized images in
one row per view (prompt order of :data:`data_manifests.INTENDED_VIEWS`), up to ``per_view`` images each.

Each tile's caption names its backend (``toyworld``, ``diffusion``) and, once the filter has run, its outcome:
``kept 0.87`` (detector confidence) in green or the reject reason in red. Written to
``ROOT/reports/identities/<identity>.png``; the synthesize stage writes the grids of the identities it ran
(``synthesize.report_grids``), ``diffveri report grids --root ROOT`` draws them again at any time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc

import data_manifests as dm
from data_manifests import INTENDED_VIEWS, Status

from .figures import FAILED, KEPT, REJECTED, new_figure, reports_dir, save_png

GRIDS = "identities"  # ROOT/reports/identities/
MIN_PHOTOS = 4  # subject photos shown even when the identity has fewer view rows (more rows: one photo each)


@dataclass(frozen=True)
class Tile:
    """One drawn image: its id (or subject photo path), caption and caption colour."""

    image_id: str
    caption: str
    colour: str


@dataclass(frozen=True)
class IdentityGrid:
    """What one identity's grid shows: rows by view (in drawing order), the subject photos, and the file."""

    identity_id: str
    views: dict[str, list[Tile]]
    subject_photos: list[str]
    path: Path
    total_images: dict[str, int] = field(default_factory=dict)  # ok generations per view (drawn or not)


def _thumbnail(root: Path, rel: str | None, what: str, size: int) -> np.ndarray | None:
    """The image at ``root/rel`` as an RGB array fitted in ``size`` px, or None when it is missing or unreadable
    (a report draws what exists; the stages and ``manifests validate`` report missing files)."""
    if not rel:
        return None
    try:
        with dm.open_image(dm.inside_root(root, rel, what)) as im:
            im = im.convert("RGB")
            im.thumbnail((size, size))
            return np.asarray(im)
    except (OSError, ValueError):
        return None


def _outcomes(root: Path, image_ids: set[str]) -> dict[str, Tile]:
    """Filter outcome per image id (from ``detections``, when the filter has run)."""
    if not dm.table_exists(root, "detections"):
        return {}
    flt = pc.field("image_id").isin(sorted(image_ids))
    rows = dm.read_rows(root, "detections", columns=["image_id", "status", "reason", "conf"], filter=flt)
    out = {}
    for r in rows:
        if r["status"] == Status.OK:
            conf = f" {r['conf']:.2f}" if r["conf"] is not None else ""
            out[r["image_id"]] = Tile(r["image_id"], f"kept{conf}", KEPT)
        else:
            colour = REJECTED if r["status"] == Status.REJECTED else FAILED
            out[r["image_id"]] = Tile(r["image_id"], str(r["reason"] or r["status"]), colour)
    return out


def _view_order(views: Iterable[str]) -> list[str]:
    present = set(views)
    return [v for v in INTENDED_VIEWS if v in present] + sorted(present - set(INTENDED_VIEWS))


def _draw(
    root: Path,
    subject: Mapping[str, Any] | None,
    rows_by_view: dict[str, list[Mapping[str, Any]]],
    outcomes: dict[str, Tile],
    per_view: int,
    size: int,
) -> tuple[Any, dict[str, list[Tile]], list[str]]:
    """The grid figure, the tiles drawn per view and the subject photos drawn."""
    order = _view_order(rows_by_view)
    all_photos = list((subject or {}).get("instance_images") or [])
    n_rows = max(len(order), min(len(all_photos), MIN_PHOTOS), 1)  # a one-view identity still shows its photos
    n_images = max([min(len(rows_by_view[v]), per_view) for v in order] or [1])
    n_cols = 2 + n_images  # subject photos, a narrow gap holding the view names, the synthesized images
    photos = all_photos[:n_rows]
    height = 0.45 + 1.3 * n_rows
    fig = new_figure(1.4 + 1.25 * (n_cols - 1), height)
    grid = {"wspace": 0.08, "hspace": 0.35, "top": 1 - 0.6 / height, "width_ratios": [1, 0.3] + [1] * n_images}
    axes = fig.subplots(n_rows, n_cols, squeeze=False, gridspec_kw=grid)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_frame_on(False)
    for i, rel in enumerate(photos):
        ax = axes[i, 0]
        image = _thumbnail(root, rel, f"subjects[{subject['identity_id']}].instance_images", size)  # type: ignore[index]
        if image is not None:
            ax.imshow(image)
        ax.set_title("subject photo" if i == 0 else "", fontsize=7)
        ax.set_xlabel(Path(rel).stem[:18], fontsize=6)
    drawn: dict[str, list[Tile]] = {}
    for r_i, view in enumerate(order):
        axes[r_i, 2].set_ylabel(f"{view}\n({len(rows_by_view[view])})", fontsize=8)
        drawn[view] = []
        for c_i, row in enumerate(rows_by_view[view][:per_view]):
            ax = axes[r_i, 2 + c_i]
            image = _thumbnail(root, row["path"], f"generations[{row['image_id']}].path", size)
            if image is not None:
                ax.imshow(image)
            backend = str(row.get("model_ref") or "?").split(":")[0]
            outcome = outcomes.get(row["image_id"])
            caption = backend + (f"\n{outcome.caption}" if outcome else "") + ("" if image is not None else "\nmissing")
            colour = outcome.colour if outcome else "black"
            ax.set_xlabel(caption, fontsize=6, color=colour)
            drawn[view].append(Tile(row["image_id"], caption, colour))
    return fig, drawn, photos


def identity_grids(
    root: str | Path,
    identities: Iterable[str] | None = None,
    *,
    out_dir: str | Path | None = None,
    per_view: int = 4,
    size: int = 128,
    progress: bool = False,
) -> list[IdentityGrid]:
    """Write one grid PNG per identity that has ``ok`` generations (default: every such identity); returns what
    each grid shows. ``out_dir`` defaults to ``ROOT/reports/identities``; files are ``<identity>.png``.
    ``progress``: a bar with ETA on stderr (about a second per identity)."""
    from tqdm.auto import tqdm

    root = Path(root)
    if per_view < 1:
        raise ValueError(f"per_view must be >= 1, got {per_view}")
    if not dm.table_exists(root, "generations"):
        raise ValueError(f"{root}/manifests has no generations table; run the synthesize stage first")
    wanted = None if identities is None else sorted(set(identities))
    flt = pc.field("status") == Status.OK
    if wanted is not None:
        flt = flt & pc.field("identity_id").isin(wanted)
    columns = ["image_id", "identity_id", "intended_view", "path", "model_ref"]
    rows = sorted(dm.read_rows(root, "generations", columns=columns, filter=flt), key=lambda r: r["image_id"])
    by_identity: dict[str, dict[str, list[Mapping[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        by_identity[r["identity_id"]][r["intended_view"]].append(r)
    subjects = {}
    if dm.table_exists(root, "subjects"):
        subjects = {
            s["identity_id"]: s for s in dm.read_rows(root, "subjects", columns=["identity_id", "instance_images"])
        }
    outcomes = _outcomes(root, {r["image_id"] for r in rows})
    folder = Path(out_dir) if out_dir is not None else reports_dir(root) / GRIDS
    grids = []
    for ident in tqdm(sorted(by_identity), desc="identity grids", unit="identity", disable=not progress):
        views = by_identity[ident]
        fig, drawn, photos = _draw(root, subjects.get(ident), views, outcomes, per_view, size)
        total = sum(len(v) for v in views.values())
        fig.suptitle(f"{ident}: {total} synthesized image(s), {len(views)} view(s)", fontsize=9)
        path = save_png(fig, folder / f"{dm.check_id(ident, 'identity_id')}.png", palette=True)
        grids.append(IdentityGrid(ident, drawn, photos, path, {v: len(r) for v, r in views.items()}))
    return grids
