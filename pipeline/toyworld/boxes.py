"""Box vehicles: a fast stand-in renderer with exact view labels (for the segment tests and ``--backend boxes``).

A box (random length, width, height and colour) seen by an orthographic camera from any azimuth and elevation; each
face carries a cue (headlights on the front, red lights on the rear, windows on the sides, a roof panel on top) so
the faces are distinguishable. Labels index ``VIEW_CLASSES_TOYWORLD`` (background, front, rear, left, right, top).
It draws a few polygons with PIL (milliseconds per image, no meshes), and its pixels do not move when the toy
world's renderer changes: the segment tests' expected numbers rely on both.

    >>> image, labels = render_box(sample_box_vehicle(seed=0, index=3), azimuth=30.0, elevation=20.0, size=64)
    >>> image.shape, labels.shape                           # (64, 64, 3) uint8, (64, 64) int64
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from data_manifests import VIEW_CLASSES_TOYWORLD, seeds


@dataclass(frozen=True)
class BoxVehicle:
    """A box vehicle: its identity, half extents and base colour."""

    identity_id: str
    half_extent: tuple[float, float, float]  # length (x, front is +x), width (y, left is +y), height (z)
    colour: tuple[int, int, int]


def sample_box_vehicle(seed: int, index: int) -> BoxVehicle:
    """The box vehicle ``index`` of a ``seed`` (deterministic)."""
    rng = seeds.rng(seed, "toyworld.boxes.vehicle", index)
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
    rng = seeds.rng(seed, "toyworld.boxes.render")
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
