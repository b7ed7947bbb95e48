"""Rendering a toy world: each identity's instance images and planned images, written as lossless PNGs, with
their ``subjects``, ``generations`` and exact-mask ``segments`` rows (a worker function, run in processes)."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from data_manifests import VIEW_SETS, rows, seeds

from .camera import view_to_camera
from .plan import MODEL_REF, PlannedImage, image_seed, plan_identity
from .renderer import collapse_labels, render
from .settings import ToyworldSettings

SEGMENTER_REF = "groundtruth:toyworld"


def write_file(path: Path, data: bytes) -> None:
    """Temp file + ``os.replace``: readers see the old file or the new one, never a part. No fsync per image
    (``data_manifests.atomic_write_bytes`` syncs, which costs more than rendering here); a crash may lose the
    last images, and the resume check then re-renders them because their rows were never written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def segment_row(image_id: str, labels: np.ndarray, bbox: tuple[float, ...] | None, classes: tuple[str, ...]) -> dict:
    """The exact-mask ``segments`` row of a rendered label map ``(H, W)`` over ``classes`` (background first); a
    vehicle that occluders hide entirely gives ``rejected``/``empty_mask``."""
    return rows.segment_row(
        image_id, bbox, labels > 0, labels, classes, SEGMENTER_REF, empty_message="occluders hide the whole vehicle"
    )


def render_identity(args: tuple[ToyworldSettings, int, str, bool]) -> dict[str, Any]:
    """Worker: render identity ``index`` (instance images and planned images) into ``out``. Returns its rows.

    ``args = (settings, index, out, skip)``; with ``skip`` only the subject row is rebuilt (images exist)."""
    settings, index, out_str, skip = args
    out = Path(out_str)
    ident, plans = plan_identity(settings, index)
    classes = VIEW_SETS[settings.view_classes]
    # 1. Instance images at canonical views (no occluders).
    instance_paths = []
    rng = seeds.rng(settings.seed, "toyworld.instance_cameras", index)
    for k, view in enumerate(settings.instance_views):
        azimuth, elevation = view_to_camera(view, rng)
        rel = f"subjects/{ident.identity_id}/{view}.png"
        instance_paths.append(rel)
        if not (skip and (out / rel).is_file()):
            r = render(ident, azimuth, elevation, settings.size, image_seed(settings.seed, index, 100_000 + k))
            write_file(out / rel, _png(r.image))
    subject = rows.subject_row(
        identity_id=ident.identity_id,
        class_name=ident.class_name,
        instance_images=instance_paths,
        source="toyworld",
        attributes=json.dumps(ident.attributes(), sort_keys=True),
    )
    result: dict[str, Any] = {"subject": subject, "generations": [], "segments": [], "rendered": 0}
    if skip:
        return result
    # 2. The planned images, their exact masks and rows.
    for p in plans:
        r = render(ident, p.azimuth, p.elevation, settings.size, p.seed, occluders=p.occluders)
        labels = collapse_labels(r.labels) if settings.view_classes == "pven" else r.labels
        data = _png(r.image)
        write_file(out / p.path, data)
        result["generations"].append(
            rows.generation_row(
                image_id=p.image_id,
                identity_id=ident.identity_id,
                intended_view=p.view,
                prompt=f"a {ident.color_name} {ident.class_name}, {p.view.replace('_', ' ')} view",
                seed=p.seed,
                width=settings.size,
                height=settings.size,
                path=p.path,
                sha256=hashlib.sha256(data).hexdigest(),
                model_ref=MODEL_REF,
            )
        )
        result["segments"].append(segment_row(p.image_id, labels, r.bbox, classes))
        result["rendered"] += 1
    return result


def images_exist(out: Path, plans: list[PlannedImage], gen_keys: set[str], seg_keys: set[str]) -> bool:
    """Whether every planned image has its file and its rows: the identity is resumed, not rendered again."""
    return all(p.image_id in gen_keys and p.image_id in seg_keys and (out / p.path).is_file() for p in plans)
