"""Detection scenes: images with zero, one or several toy vehicles (some tiny, some truncated by the border) and
their boxes, for testing the YOLO filter stage and training a toy detector. Non-vehicle distractor shapes are
painted into the background so that "vehicle" is not just "any object".

Vehicles are rendered one by one as layers and composited far-to-near (smaller = farther, drawn first); placements
that would overlap an earlier vehicle's box by more than ``MAX_IOU`` are redrawn, so every drawn vehicle stays
mostly visible and is labelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..formats.yolo import label_line
from .identity import ToyIdentity
from .renderer import AMBIENT_RANGE, random_background, random_light, render_vehicle, sensor_noise

VEHICLE_COUNTS = (0, 1, 2, 3, 4)
VEHICLE_COUNT_P = (0.15, 0.4, 0.2, 0.15, 0.1)
TINY_P = 0.15  # share of vehicles drawn tiny (longer side 4-10 % of the image)
TRUNCATED_P = 0.15  # share of vehicles placed across the image border
MAX_IOU = 0.3


@dataclass(frozen=True)
class SceneVehicle:
    """One vehicle in a scene: its identity, box ``(x1, y1, x2, y2)`` in pixels (visible part, inside the image),
    whether it crosses the border (``truncated``) and whether it was drawn ``tiny``."""

    identity_id: str
    class_name: str
    bbox: tuple[float, float, float, float]
    truncated: bool
    tiny: bool
    azimuth: float
    elevation: float


@dataclass(frozen=True)
class Scene:
    """``image (H, W, 3)`` uint8 and the vehicles in it (possibly none)."""

    image: np.ndarray
    vehicles: list[SceneVehicle] = field(default_factory=list)


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def add_distractors(rng: np.random.Generator, image: np.ndarray, count: int) -> None:
    """Paint ``count`` non-vehicle shapes (flat boxes, poles, ellipses) into ``image (H, W, 3)`` float, in place, so
    that a detector trained on the scenes must learn vehicles rather than "any object"."""
    size = image.shape[0]
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    for _ in range(count):
        kind = int(rng.integers(3))
        cx, cy = rng.uniform(0, size, 2)
        w, h = rng.uniform(0.05, 0.35, 2) * size
        if kind == 0:  # box, shaded top half lighter
            shape = (np.abs(xx - cx) < w / 2) & (np.abs(yy - cy) < h / 2)
        elif kind == 1:  # pole
            shape = (np.abs(xx - cx) < max(1.0, 0.04 * w)) & (yy > cy - h)
        else:
            shape = ((xx - cx) / (w / 2)) ** 2 + ((yy - cy) / (h / 2)) ** 2 < 1
        color = rng.uniform(0.05, 0.95, 3).astype(np.float32)
        image[shape] = color * np.where(yy[shape] < cy, 1.0, 0.8)[:, None].astype(np.float32)


def render_scene(identities: list[ToyIdentity], size: int, rng: np.random.Generator) -> Scene:
    """A random scene of ``size x size`` pixels with 0-4 vehicles drawn from ``identities``."""
    n = int(rng.choice(VEHICLE_COUNTS, p=VEHICLE_COUNT_P)) if identities else 0
    # 1. Placements: (extent, centre, tiny, truncated), re-drawn while they overlap earlier ones too much.
    plans: list[tuple[float, tuple[float, float], bool, bool]] = []
    for _ in range(n):
        for _attempt in range(20):
            tiny = rng.random() < TINY_P
            truncated = not tiny and rng.random() < TRUNCATED_P
            if tiny:
                extent = rng.uniform(0.04, 0.10) * size
            elif n == 1:
                extent = rng.uniform(0.4, 0.9) * size
            else:
                extent = rng.uniform(0.2, 0.55) * size
            half = extent / 2
            if truncated:
                # Centre within a third of the extent of a random border, so part of the vehicle is cut off.
                side = int(rng.integers(4))
                along = rng.uniform(half, size - half)
                across = rng.uniform(-half / 3, half / 3) + (0 if side in (0, 2) else size)
                centre = (across, along) if side in (0, 1) else (along, across)
            else:
                centre = (rng.uniform(half, size - half), rng.uniform(half, size - half))
            box = (centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half)
            if all(
                _iou(box, (c[0] - e / 2, c[1] - e / 2, c[0] + e / 2, c[1] + e / 2)) <= MAX_IOU for e, c, _, _ in plans
            ):
                plans.append((float(extent), (float(centre[0]), float(centre[1])), bool(tiny), bool(truncated)))
                break
    plans.sort(key=lambda p: p[0])  # far (small) first
    # 2. Background with 0-3 distractors (boxes, poles, blobs that are not vehicles), then the vehicles far to near.
    light = random_light(rng)
    image, _ = random_background(rng, size)
    add_distractors(rng, image, int(rng.integers(0, 4)))
    vehicles: list[SceneVehicle] = []
    for extent, centre, tiny, _planned_truncation in plans:
        ident = identities[int(rng.integers(len(identities)))]
        azimuth, elevation = float(rng.uniform(0, 360)), float(rng.uniform(0, 50))
        layer = render_vehicle(
            ident,
            azimuth,
            elevation,
            size,
            rng,
            roll=float(rng.uniform(-5, 5)),
            extent=extent,
            centre=centre,
            light=light,
            ambient=float(rng.uniform(*AMBIENT_RANGE)),
        )
        covered = layer.labels > 0
        if layer.bbox is None:
            continue
        image = np.where(covered[..., None], layer.color, image)
        full = layer.full_box
        crosses = full[0] < 0 or full[1] < 0 or full[2] > size or full[3] > size
        vehicles.append(
            SceneVehicle(ident.identity_id, ident.class_name, layer.bbox, bool(crosses), tiny, azimuth, elevation)
        )
    image = image + sensor_noise(rng, size)
    return Scene(image=np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8), vehicles=vehicles)


def yolo_lines(vehicles: list[SceneVehicle], size: int, class_of: dict[str, int] | None = None) -> list[str]:
    """YOLO label lines ``cls cx cy w h`` (normalised) for the vehicles; class 0 unless ``class_of`` maps class
    names to ids."""
    return [label_line(0 if class_of is None else class_of[v.class_name], v.bbox, size, size) for v in vehicles]
