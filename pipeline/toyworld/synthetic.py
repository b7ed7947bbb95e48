"""Small synthetic data for tests, benchmarks and quick looks, built from the toy world: one API for all of them.

* :func:`random_renders` — toy-world renders from random cameras, in memory;
* :func:`write_diffveri` — a ``diffveri`` table, one image per identity and view (pre-training input);
* :func:`write_generations` — ``subjects`` and ``generations`` rows, and each render's exact box (filter input);
* :func:`write_annotated_world` — ``images/``, ``generations`` and ``segments`` with exact view masks (segment
  input), rendered by the toy world or by the box vehicles of :mod:`pipeline.toyworld.boxes`.

A whole world with splits and VeRi / VehicleID / YOLO exports is ``diffveri toy world``
(:func:`pipeline.toyworld.export.build_toyworld`). Everything here is deterministic for its arguments; paths in the
rows are relative to ``root``.

    >>> from pathlib import Path
    >>> from pipeline.toyworld.synthetic import write_diffveri
    >>> root = write_diffveri(Path("data/tiny"), identities=4, size=64)   # 4 identities x 4 views, split train
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

import data_manifests as dm
from data_manifests import VIEW_CLASSES_TOYWORLD, rle
from data_manifests.rows import diffveri_row, generation_row, subject_row

from .boxes import render_box, sample_box_vehicle
from .camera import VIEW_ANGLES
from .identity import sample_identity
from .renderer import RenderResult, render

DIFFVERI_VIEWS: tuple[str, ...] = ("front", "rear", "left", "right")
_DIFFVERI_AZIMUTH = {"front": 0.0, "left": 90.0, "rear": 180.0, "right": 270.0}
WORLD_BACKENDS = ("auto", "toyworld", "boxes")  # "auto" is the toy world (kept as the CLI's default spelling)


def _png(image: np.ndarray) -> bytes:
    """PNG bytes of an ``(H, W, 3)`` uint8 image (PIL's default compression: the bytes tests hash)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def random_renders(
    n: int, size: int = 128, seed: int = 0, identities: int | None = None, elevation: float | None = None
) -> list[RenderResult]:
    """``n`` renders of identities ``sample_identity(seed, k)`` from random cameras.

    Image ``k`` shows identity ``k`` (``k % identities`` when ``identities`` is given) at an azimuth uniform in
    [0, 360) and an elevation uniform in [5, 60) (or the fixed ``elevation``), rendered with seed ``k``; the cameras
    come from one ``numpy`` generator seeded with ``seed``. Each result holds ``image (S, S, 3) uint8``, ``labels
    (S, S) int64`` and ``bbox``.
    """
    rng = dm.seeds.rng(seed, "toyworld.synthetic.cameras")
    out = []
    for k in range(n):
        azimuth = float(rng.uniform(0, 360))
        camera_elevation = float(rng.uniform(5, 60)) if elevation is None else elevation
        ident = sample_identity(seed=seed, index=k % identities if identities else k)
        out.append(render(ident, azimuth=azimuth, elevation=camera_elevation, size=size, seed=k))
    return out


def write_diffveri(
    root: Path, identities: int = 4, views: tuple[str, ...] = DIFFVERI_VIEWS, size: int = 64, seed: int = 0
) -> Path:
    """Write ``root/images/`` and a ``diffveri`` table: one ``train`` row per (identity, view), exact view masks.

    Identity ``i`` is ``sample_identity(seed, i)`` (``identity_id`` ``toy{i:03d}``, class ``sedan``), seen at
    elevation 15 from the azimuth of each of ``views`` (front 0, left 90, rear 180, right 270); its camera id is
    the view's index. Returns ``root``.
    """
    rows = []
    (root / "images").mkdir(parents=True, exist_ok=True)
    for index in range(identities):
        ident = sample_identity(seed, index)
        for view in views:
            result = render(ident, azimuth=_DIFFVERI_AZIMUTH[view], elevation=15.0, size=size, seed=seed)
            labels = result.labels
            iid = dm.image_id(f"toy{index:03d}", view, seed, "test")
            rel = f"images/{iid}.png"
            Image.fromarray(result.image).save(root / rel)
            present = [c for c in range(len(VIEW_CLASSES_TOYWORLD)) if (labels == c).any() or c == 0]
            masks = {
                "dominant_view": view,
                "vehicle_rle": rle.encode(labels > 0),
                "view_classes": [VIEW_CLASSES_TOYWORLD[c] for c in present],
                "view_rles": [rle.encode(labels == c) for c in present],
            }
            row = diffveri_row(
                image_id=iid,
                identity_id=f"toy{index:03d}",
                class_name="sedan",
                camera_id=DIFFVERI_VIEWS.index(view),
                path=rel,
                width=size,
                height=size,
                view_label=view,
                provenance={},
                masks=masks,
            )
            row["split"] = "train"
            rows.append(row)
    dm.write_table(root, "diffveri", rows)
    return root


def write_generations(
    root: Path, identities: int = 2, per_identity: int = 3, size: int = 128
) -> dict[str, list[tuple[float, ...]]]:
    """Write ``subjects`` and ``generations`` (status ok) of toy-world renders under ``root``.

    Identity ``k`` is ``sample_identity(0, k)``, with one instance image (azimuth 30, elevation 15) and
    ``per_identity`` renders at the canonical ``VIEW_ANGLES`` (in their order), render seeds 1, 2, ...
    Returns ``image_id -> [the render's exact box (x1, y1, x2, y2)]``, the truth a filter should find.
    """
    views = list(VIEW_ANGLES)
    subjects, gens, truth = [], [], {}
    for k in range(identities):
        ident = sample_identity(seed=0, index=k)
        identity_id = ident.identity_id
        ref_path = f"subjects/{identity_id}/0.png"
        dm.atomic_write_bytes(root / ref_path, _png(render(ident, 30.0, 15.0, size=size, seed=0).image))
        subjects.append(
            subject_row(
                identity_id=identity_id, class_name=ident.class_name, instance_images=[ref_path], source="toyworld"
            )
        )
        for j in range(per_identity):
            view = views[j % len(views)]
            result = render(ident, *VIEW_ANGLES[view], size=size, seed=j + 1)
            iid = dm.image_id(identity_id, view, j + 1, "toyworld:test")
            path = f"generations/{identity_id}/{iid}.png"
            dm.atomic_write_bytes(root / path, _png(result.image))
            truth[iid] = [tuple(result.bbox)]
            gens.append(
                generation_row(
                    image_id=iid,
                    identity_id=identity_id,
                    intended_view=view,
                    seed=j + 1,
                    width=size,
                    height=size,
                    path=path,
                    sha256=dm.sha256_file(root / path),
                    model_ref="toyworld:test",
                )
            )
    dm.upsert(root, "subjects", subjects)
    dm.upsert(root, "generations", gens)
    return truth


def write_annotated_world(
    root: Path,
    identities: int = 4,
    images_per_identity: int = 4,
    size: int = 128,
    seed: int = 0,
    backend: str = "auto",
) -> list[str]:
    """Render a small annotated world under ``root`` (``images/``, ``generations``, ``segments``); returns the ids.

    ``backend``: ``toyworld`` (the toy world's renderer: meshes, scenes, exact labels; ``auto`` is the same) or
    ``boxes`` (:mod:`pipeline.toyworld.boxes`: box vehicles, fast). Image ``k`` of identity ``index`` has a camera
    drawn from ``(seed, index)`` and render seed ``seed * 100003 + index * 101 + k``.
    """
    from pipeline.segment.data import make_segment_row

    if backend not in WORLD_BACKENDS:
        raise ValueError(f"synthetic world backend {backend!r} is not one of {', '.join(WORLD_BACKENDS)}")
    boxes = backend == "boxes"
    model_ref = "synthetic:boxes" if boxes else "toyworld:render"
    generations, segments = [], []
    for index in range(identities):
        rng = dm.seeds.rng(seed, "toyworld.synthetic.camera", index)
        if boxes:
            vehicle = sample_box_vehicle(seed, index)
            identity_id = vehicle.identity_id
        else:
            ident = sample_identity(seed=seed, index=index)
            identity_id = str(ident.identity_id)
        for k in range(images_per_identity):
            azimuth = float(rng.uniform(0, 360))
            elevation = float(rng.uniform(5, 60))
            render_seed = dm.seeds.derive_seed(seed, "toyworld.synthetic.render", index, k)
            if boxes:
                image, labels = render_box(vehicle, azimuth, elevation, size, seed=render_seed)
            else:
                result = render(ident, azimuth=azimuth, elevation=elevation, size=size, seed=render_seed)
                image, labels = result.image, result.labels
            view = _intended_view(azimuth)
            iid = dm.image_id(identity_id, view, k, model_ref)
            rel = f"images/{identity_id}/{iid}.png"
            dm.atomic_write_bytes(root / rel, _png(image))
            vehicle_mask = labels > 0
            if not vehicle_mask.any():  # fully out of frame; never happens with these framings, but do not crash
                continue
            ys, xs = np.nonzero(vehicle_mask)
            bbox = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
            generations.append(
                generation_row(
                    image_id=iid,
                    identity_id=identity_id,
                    intended_view=view,
                    seed=k,
                    width=size,
                    height=size,
                    path=rel,
                    sha256=dm.sha256_file(root / rel),
                    model_ref=model_ref,
                )
            )
            segments.append(
                make_segment_row(iid, bbox, vehicle_mask, labels, VIEW_CLASSES_TOYWORLD, "groundtruth:" + model_ref)
            )
    dm.upsert(root, "generations", generations)
    dm.upsert(root, "segments", segments)
    return [g["image_id"] for g in generations]


def _intended_view(azimuth: float) -> str:
    """The eight-way view name of a camera azimuth (0 = looking at the front)."""
    names = ["front", "front_left", "left", "rear_left", "rear", "rear_right", "right", "front_right"]
    return names[int(((azimuth % 360) + 22.5) // 45) % 8]
