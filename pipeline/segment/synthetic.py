"""Small annotated worlds for tests and benchmarks, written in the layout ``diffveri toy world`` writes.

Two renderers: the project's toy world (``pipeline.toyworld.render``: meshes, scenes, exact view labels) and, so
that tests need nothing else, box "vehicles": a box (random length/width/height and colour) seen by an
orthographic camera from a random azimuth and elevation, each face carrying a cue (headlights on the front, red
lights on the rear, windows on the sides, a roof panel on top) so the faces are distinguishable. Labels use
``VIEW_CLASSES_TOYWORLD`` (background, front, rear, left, right, top). :func:`write_synthetic_world` writes
``images/`` plus ``generations`` and ``segments`` tables.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from data_manifests import VIEW_CLASSES_TOYWORLD, atomic_write_bytes, image_id, upsert
from data_manifests.ids import sha256_file

from .data import make_segment_row

MODEL_REF = "synthetic:boxes"


@dataclass(frozen=True)
class BoxVehicle:
    identity_id: str
    half_extent: tuple[float, float, float]  # length (x, front is +x), width (y, left is +y), height (z)
    colour: tuple[int, int, int]


def sample_box_vehicle(seed: int, index: int) -> BoxVehicle:
    rng = np.random.default_rng([seed, index])
    length = rng.uniform(1.6, 2.4)
    return BoxVehicle(
        identity_id=f"syn{seed:03d}_{index:04d}",
        half_extent=(length, rng.uniform(0.75, 1.0), rng.uniform(0.6, 0.95)),
        colour=tuple(int(c) for c in rng.integers(40, 220, 3)),
    )


# face name -> (outward normal, 4 corners as signs of the half extents, in order around the face)
_FACES = {
    "front": ((1, 0, 0), [(1, -1, -1), (1, 1, -1), (1, 1, 1), (1, -1, 1)]),
    "rear": ((-1, 0, 0), [(-1, 1, -1), (-1, -1, -1), (-1, -1, 1), (-1, 1, 1)]),
    "left": ((0, 1, 0), [(1, 1, -1), (-1, 1, -1), (-1, 1, 1), (1, 1, 1)]),
    "right": ((0, -1, 0), [(-1, -1, -1), (1, -1, -1), (1, -1, 1), (-1, -1, 1)]),
    "top": ((0, 0, 1), [(1, -1, 1), (1, 1, 1), (-1, 1, 1), (-1, -1, 1)]),
}
# Face cues as (u0, v0, u1, v1, rgb) rectangles in face coordinates (u along corner0->corner1, v corner0->corner3).
_CUES = {
    "front": [(0.08, 0.15, 0.3, 0.4, (250, 240, 150)), (0.7, 0.15, 0.92, 0.4, (250, 240, 150))],
    "rear": [(0.08, 0.2, 0.28, 0.45, (200, 20, 20)), (0.72, 0.2, 0.92, 0.45, (200, 20, 20))],
    "left": [(0.15, 0.55, 0.85, 0.9, (40, 50, 70))],
    "right": [(0.15, 0.55, 0.85, 0.9, (40, 50, 70))],
    "top": [(0.3, 0.15, 0.75, 0.85, (90, 90, 100))],
}
_LIGHT = np.array([0.3, 0.5, 0.8]) / np.linalg.norm([0.3, 0.5, 0.8])


def render_box(
    vehicle: BoxVehicle, azimuth: float, elevation: float, size: int = 128, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Render ``(image uint8 (S, S, 3), labels int64 (S, S))`` with labels indexing ``VIEW_CLASSES_TOYWORLD``."""
    rng = np.random.default_rng(seed)
    az, el = math.radians(azimuth), math.radians(elevation)
    camera = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
    right = np.array([-math.sin(az), math.cos(az), 0.0])
    up = np.cross(camera, right)
    half = np.array(vehicle.half_extent)
    scale = size * rng.uniform(0.26, 0.36) / half[0]
    centre = np.array([size / 2, size / 2]) + rng.uniform(-0.08, 0.08, 2) * size

    # 1. Background: a random gradient with noise (so the box is not found by colour alone).
    yy, xx = np.mgrid[0:size, 0:size] / size
    c0, c1 = rng.integers(0, 255, 3), rng.integers(0, 255, 3)
    background = c0 * (1 - yy[..., None]) + c1 * yy[..., None] + rng.normal(0, 12, (size, size, 3))
    image = Image.fromarray(np.clip(background + 20 * xx[..., None], 0, 255).astype(np.uint8))
    labels = Image.new("L", (size, size), 0)
    draw, ldraw = ImageDraw.Draw(image), ImageDraw.Draw(labels)

    # 2. Faces facing the camera; a convex box's visible faces never overlap, so drawing order does not matter.
    for name, (normal, corners) in _FACES.items():
        if np.dot(normal, camera) <= 1e-3:
            continue
        pts3 = np.array(corners) * half
        pts = np.stack([pts3 @ right, -(pts3 @ up)], axis=1) * scale + centre
        shade = 0.45 + 0.55 * max(0.0, float(np.dot(normal, _LIGHT)))
        colour = tuple(int(min(255, c * shade)) for c in vehicle.colour)
        polygon = [tuple(p) for p in pts]
        draw.polygon(polygon, fill=colour)
        ldraw.polygon(polygon, fill=VIEW_CLASSES_TOYWORLD.index(name))
        origin, du, dv = pts[0], pts[1] - pts[0], pts[3] - pts[0]
        for u0, v0, u1, v1, rgb in _CUES[name]:
            quad = [origin + u * du + v * dv for u, v in ((u0, v0), (u1, v0), (u1, v1), (u0, v1))]
            draw.polygon([tuple(q) for q in quad], fill=tuple(int(c * (0.6 + 0.4 * shade)) for c in rgb))
    return np.asarray(image), np.asarray(labels, dtype=np.int64)


def toyworld_available() -> bool:
    """Whether the project's toy world renderer (``pipeline.toyworld.render``) is importable."""
    try:
        from pipeline.toyworld import render, sample_identity  # noqa: F401
    except ImportError:
        return False
    return True


def write_synthetic_world(
    root: Path,
    identities: int = 4,
    images_per_identity: int = 4,
    size: int = 128,
    seed: int = 0,
    backend: str = "auto",
) -> list[str]:
    """Render a small annotated world under ``root`` (``images/``, ``generations``, ``segments``); returns ids.

    ``backend``: ``toyworld`` (the project's renderer: meshes, scenes, exact labels), ``boxes`` (this module's box
    vehicles, no dependency) or ``auto`` (toyworld when importable).
    """
    if backend == "auto":
        backend = "toyworld" if toyworld_available() else "boxes"
    if backend not in ("toyworld", "boxes"):
        raise ValueError(f"synthetic world backend {backend!r} is not one of auto, toyworld, boxes")
    model_ref = "toyworld:render" if backend == "toyworld" else MODEL_REF
    generations, segments = [], []
    for index in range(identities):
        rng = np.random.default_rng([seed, index, 1])
        if backend == "toyworld":
            from pipeline.toyworld import render, sample_identity

            ident = sample_identity(seed=seed, index=index)
            identity_id = str(ident.identity_id)
        else:
            vehicle = sample_box_vehicle(seed, index)
            identity_id = vehicle.identity_id
        for k in range(images_per_identity):
            azimuth = float(rng.uniform(0, 360))
            elevation = float(rng.uniform(5, 60))
            render_seed = seed * 100003 + index * 101 + k
            if backend == "toyworld":
                result = render(ident, azimuth=azimuth, elevation=elevation, size=size, seed=render_seed)
                image, labels = result.image, result.labels
            else:
                image, labels = render_box(vehicle, azimuth, elevation, size, seed=render_seed)
            view = _intended_view(azimuth)
            iid = image_id(identity_id, view, k, model_ref)
            rel = f"images/{identity_id}/{iid}.png"
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="PNG")
            atomic_write_bytes(root / rel, buffer.getvalue())
            vehicle_mask = labels > 0
            if not vehicle_mask.any():  # fully out of frame; never happens with these framings, but do not crash
                continue
            ys, xs = np.nonzero(vehicle_mask)
            bbox = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
            generations.append(
                {
                    "image_id": iid,
                    "identity_id": identity_id,
                    "intended_view": view,
                    "seed": k,
                    "width": size,
                    "height": size,
                    "path": rel,
                    "sha256": sha256_file(root / rel),
                    "model_ref": model_ref,
                    "status": "ok",
                }
            )
            segments.append(
                make_segment_row(iid, bbox, vehicle_mask, labels, VIEW_CLASSES_TOYWORLD, "groundtruth:" + model_ref)
            )
    upsert(root, "generations", generations)
    upsert(root, "segments", segments)
    return [g["image_id"] for g in generations]


def _intended_view(azimuth: float) -> str:
    """The eight-way view name of a camera azimuth (0 = looking at the front)."""
    names = ["front", "front_left", "left", "rear_left", "rear", "rear_right", "right", "front_right"]
    return names[int(((azimuth % 360) + 22.5) // 45) % 8]
