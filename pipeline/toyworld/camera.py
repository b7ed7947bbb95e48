"""Cameras around a toy vehicle, and the mapping between camera angles and named viewpoints.

Convention (vehicle frame: x forward, y left, z up): ``azimuth`` 0 puts the camera in front of the vehicle looking
at its FRONT, 90 at its LEFT side, 180 at its REAR, 270 at its RIGHT side; ``elevation`` 0 is horizontal and 90
looks straight down. Angles are in degrees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from data_manifests import INTENDED_VIEWS

# Canonical camera direction of each named view: (azimuth, elevation) in degrees.
VIEW_ANGLES: dict[str, tuple[float, float]] = {
    "front": (0.0, 20.0),
    "front_left": (45.0, 20.0),
    "left": (90.0, 20.0),
    "rear_left": (135.0, 20.0),
    "rear": (180.0, 20.0),
    "rear_right": (225.0, 20.0),
    "right": (270.0, 20.0),
    "front_right": (315.0, 20.0),
    "top": (0.0, 90.0),
}
assert set(VIEW_ANGLES) == set(INTENDED_VIEWS), "VIEW_ANGLES must name every data_manifests.INTENDED_VIEWS entry"

AZIMUTH_JITTER = 15.0  # < 22.5, so a jittered camera stays nearest to the view it was drawn for
SIDE_ELEVATION = (0.0, 40.0)
TOP_ELEVATION = (70.0, 90.0)


def direction(azimuth: float, elevation: float) -> np.ndarray:
    """Unit vector ``(3,)`` from the vehicle centre toward the camera."""
    az, el = math.radians(azimuth), math.radians(elevation)
    return np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])


_VIEW_DIRECTIONS = np.stack([direction(*VIEW_ANGLES[name]) for name in INTENDED_VIEWS])  # (9, 3)


def nearest_view(azimuth: float, elevation: float) -> str:
    """The name in ``INTENDED_VIEWS`` whose canonical direction is closest (great-circle angle) to the camera."""
    return INTENDED_VIEWS[int(np.argmax(_VIEW_DIRECTIONS @ direction(azimuth, elevation)))]


def view_to_camera(view: str, rng: np.random.Generator) -> tuple[float, float]:
    """A jittered ``(azimuth, elevation)`` for a named view; :func:`nearest_view` of the result is ``view``.

    Horizontal views: azimuth within +-15 degrees of the canonical one, elevation uniform in 0..40;
    ``top``: any azimuth, elevation uniform in 70..90.
    """
    if view not in VIEW_ANGLES:
        raise KeyError(f"unknown view {view!r}; valid views: {', '.join(INTENDED_VIEWS)}")
    if view == "top":
        return float(rng.uniform(0.0, 360.0)), float(rng.uniform(*TOP_ELEVATION))
    az0, _ = VIEW_ANGLES[view]
    azimuth = (az0 + float(rng.uniform(-AZIMUTH_JITTER, AZIMUTH_JITTER))) % 360.0
    return azimuth, float(rng.uniform(*SIDE_ELEVATION))


@dataclass(frozen=True)
class Camera:
    """A pinhole camera. ``rotation (3, 3)`` rows are the camera's right, up and forward axes in the vehicle frame;
    ``position (3,)``; ``focal`` and ``cx, cy`` in pixels (image y grows downward)."""

    rotation: np.ndarray
    position: np.ndarray
    focal: float
    cx: float
    cy: float

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """``points (..., 3)`` in the vehicle frame -> camera coordinates ``(..., 3)`` (x right, y up, z depth)."""
        return (points - self.position) @ self.rotation.T

    def project(self, cam: np.ndarray) -> np.ndarray:
        """Camera coordinates ``(..., 3)`` -> pixel coordinates ``(..., 2)`` (u right, v down)."""
        z = cam[..., 2]
        return np.stack([self.cx + self.focal * cam[..., 0] / z, self.cy - self.focal * cam[..., 1] / z], axis=-1)

    def rays(self, size: int) -> np.ndarray:
        """Unit ray directions ``(size, size, 3)`` float32 in the vehicle frame through every pixel centre."""
        rot = self.rotation.astype(np.float32)
        u = ((np.arange(size, dtype=np.float32) + 0.5 - self.cx) / self.focal).astype(np.float32)
        v = (-(np.arange(size, dtype=np.float32) + 0.5 - self.cy) / self.focal).astype(np.float32)
        d = u[None, :, None] * rot[0] + v[:, None, None] * rot[1] + rot[2]
        return d / np.linalg.norm(d, axis=-1, keepdims=True)


def look_at(azimuth: float, elevation: float, distance: float, target: np.ndarray, roll: float = 0.0) -> np.ndarray:
    """Rotation ``(3, 3)`` (rows right, up, forward) of a camera at ``target + distance * direction`` looking at
    ``target``, rolled by ``roll`` degrees about its forward axis. Well defined at elevation 90 too: "right" is
    taken from the azimuth, never from a cross product with the world up axis."""
    az = math.radians(azimuth)
    forward = -direction(azimuth, elevation)
    right = np.array([-math.sin(az), math.cos(az), 0.0])
    up = np.cross(right, forward)
    if roll:
        r = math.radians(roll)
        right, up = math.cos(r) * right + math.sin(r) * up, -math.sin(r) * right + math.cos(r) * up
    return np.stack([right, up, forward])
