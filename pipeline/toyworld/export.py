"""``diffveri toy world``: render a toy world and write it as manifests and as VeRi / VehicleID / YOLO datasets.

Layout under ``out`` (every path in the manifests is relative to ``out``):

* ``subjects/<identity>/<view>.png`` — instance images at canonical views (for DreamBooth);
* ``renders/<identity>/<image_id>.png`` — every rendered image (lossless, so masks align exactly);
* ``manifests/`` — ``subjects``, ``generations``, ``segments`` and ``segments_gt`` (exact masks), ``diffveri``;
* ``VeRi/`` — VeRi-776 layout; ``VehicleID_V1.0/`` — VehicleID layout; ``detection/`` — YOLO dataset;
* ``toyworld.json`` — the settings used.

``family_size`` K >= 2 builds the family world (:mod:`pipeline.toyworld.family`): identities come in families of K
that only individual per-face cues tell apart, and the train/test split takes whole families. ``first_index`` N
makes the world hold identity indices ``[N, N + identities)``, so a second world with the same seed and an offset
(e.g. a pre-training world) has identities and families disjoint from the first.

Deterministic for a seed: every random draw comes from a generator seeded with ``(seed, identity index, image
index, purpose)``, so the result does not depend on the number of workers. Re-running skips identities whose images
and rows already exist (resume); the three folder exports are rebuilt under temporary names and swapped in whole.

One job per module: :mod:`.settings` (what a world is made of), :mod:`.plan` (each image's id, view, camera, seed),
:mod:`.rendering` (images and their rows, in worker processes), :mod:`.manifests` (table rows), :mod:`.splits`
(family-disjoint Re-ID splits), :mod:`.datasets` (the VeRi / VehicleID / YOLO folders, through
:mod:`pipeline.formats`); this module runs them in order.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from tqdm import tqdm

import data_manifests as dm

from .datasets import export_detection, export_vehicleid, export_veri
from .manifests import diffveri_rows, table_rows, write_rendered
from .plan import plan_identity
from .rendering import images_exist, render_identity
from .settings import ToyworldSettings, check_compatible
from .splits import assign_family_splits, train_identities

log = logging.getLogger(__name__)


@dataclass
class ToyworldSummary:
    out: Path
    identities: int = 0
    images: int = 0
    rendered: int = 0
    skipped_identities: int = 0
    detection_images: int = 0
    splits: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        return (
            f"toyworld: {self.identities} identities, {self.images} images ({self.rendered} rendered, "
            f"{self.skipped_identities} identities resumed), {self.detection_images} detection images, "
            f"splits {self.splits} -> {self.out}"
        )


def build_toyworld(
    out: str | os.PathLike,
    settings: ToyworldSettings,
    workers: int = 0,
    progress: bool = True,
    flush_every: int = 64,
) -> ToyworldSummary:
    """Render the toy world described by ``settings`` into ``out`` (see the module docstring for the layout).

    ``workers`` > 1 renders identities in that many processes; the output is identical for any value. Rows are
    written every ``flush_every`` identities (the resume granularity)."""
    settings.validate()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    check_compatible(out, settings)
    summary = ToyworldSummary(out=out, identities=settings.identities)
    # 1. Plan every identity; identities whose images and rows already exist are only re-read (resume).
    first = settings.first_index
    plans = {i: plan_identity(settings, i) for i in range(first, first + settings.identities)}
    gen_keys = dm.existing_keys(out, "generations") if dm.table_exists(out, "generations") else set()
    seg_keys = dm.existing_keys(out, "segments_gt") if dm.table_exists(out, "segments_gt") else set()
    jobs = [(settings, i, str(out), images_exist(out, plans[i][1], gen_keys, seg_keys)) for i in plans]
    summary.skipped_identities = sum(job[3] for job in jobs)
    # 2. Render (in worker processes when asked); results come back in identity order and are written every
    #    `flush_every` identities, so an interrupted run resumes from the last flush.
    pending: list[dict[str, Any]] = []

    def flush() -> None:
        if pending:
            summary.rendered += write_rendered(out, pending)
            pending.clear()

    bar = tqdm(total=len(jobs), desc="toyworld identities", disable=not progress)
    with contextlib.ExitStack() as stack:
        if workers > 1:
            pool = stack.enter_context(get_context("spawn").Pool(workers))
            stream = pool.imap(render_identity, jobs)
        else:
            stream = map(render_identity, jobs)
        for res in stream:
            pending.append(res)
            bar.update()
            if len(pending) >= flush_every:
                flush()
        flush()
    bar.close()
    # 3. The exact masks of every planned image (from segments_gt: the ground truth even after the segment stage).
    wanted = {p.image_id for _, ps in plans.values() for p in ps}
    seg_by_id = {s["image_id"]: s for s in dm.read_rows(out, "segments_gt") if s["image_id"] in wanted}
    # 4. The diffveri table with identity-disjoint splits: whole families (classic world: single identities) go to
    #    train or test, so the test gallery holds the siblings of every query as hard negatives.
    identities = {ident.identity_id: ident for ident, _ in plans.values()}
    train_ids = train_identities(settings, [ident for ident, _ in plans.values()])
    rows = diffveri_rows(plans, seg_by_id, settings.size)
    assign_family_splits(rows, train_ids, settings.queries_per_identity, settings.seed)
    dm.write_table(out, "diffveri", table_rows(rows))  # derived as a whole: replace, so no stale rows survive
    summary.images = len(rows)
    summary.splits = {s: sum(r["split"] == s for r in rows) for s in ("train", "query", "gallery")}
    # 5. Folder exports and the settings file.
    export_veri(out, rows, settings.jpeg_quality, identities, settings.family_size, settings.reid_crop)
    export_vehicleid(out, rows, identities, train_ids, settings.jpeg_quality, settings.reid_crop)
    n_det = settings.detection_images or max(16, 4 * settings.identities)
    export_detection(
        out,
        list(identities.values()),
        n_det,
        settings.size,
        settings.seed,
        settings.detection_classes,
        settings.jpeg_quality,
        progress,
    )
    summary.detection_images = n_det
    info = {"settings": asdict(settings), "train_identities": sorted(train_ids), "summary": str(summary)}
    dm.atomic_write_bytes(out / "toyworld.json", json.dumps(info, indent=1, sort_keys=True).encode())
    log.info("%s", summary)
    return summary
