"""Render a toy vehicle: RGB image plus an exact per-pixel view-part label map.

Steps of :func:`render`: (1) a random camera (roll, distance and framing jitter) around the requested azimuth and
elevation; (2) back-face culling and the numpy z-buffer rasteriser; (3) Lambert shading of flat faces with a
random light; (4) a random background (gradient, smooth noise, texture or a perspective road plane with the
vehicle's shadow); (5) optional occluders, which hide the vehicle (their pixels are labelled background);
(6) mild sensor noise. Everything random comes from named streams ``data_manifests.seeds.rng(seed, purpose, ...)``,
so the same arguments always give the same pixels.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from data_manifests import COLLAPSE_TO_PVEN, VIEW_CLASSES_PVEN, VIEW_CLASSES_TOYWORLD, seeds

from .camera import Camera, direction, look_at, nearest_view
from .identity import ToyIdentity
from .mesh import Mesh, build_mesh
from .raster import rasterize

KEY_COLOR: tuple[int, int, int] = (255, 0, 255)  # plain background of ``background=False``; never a vehicle colour
BACKGROUND_KINDS: tuple[str, ...] = ("gradient", "noise", "texture", "road")
ROLL_JITTER = 5.0  # degrees
DISTANCE_RANGE = (2.5, 6.0)  # camera distance in vehicle radii (sets the perspective strength)
FILL_RANGE = (0.70, 0.92)  # longer side of the vehicle's box as a fraction of the image side
CENTRE_JITTER = 0.04  # fraction of the image side
AMBIENT_RANGE = (0.30, 0.45)
NOISE_STD = 0.015  # sensor noise, in 0..1 intensity units
SPECULAR, SHININESS = 0.25, 24.0  # Blinn-Phong highlight strength and exponent (flat faces: one value per face)
MAX_VEHICLE_INTENSITY = 250.0 / 255.0

# Lookup of VIEW_CLASSES_TOYWORLD index -> VIEW_CLASSES_PVEN index.
_PVEN_LUT = np.array(
    [VIEW_CLASSES_PVEN.index(COLLAPSE_TO_PVEN.get(name, name)) for name in VIEW_CLASSES_TOYWORLD], np.int64
)


@dataclass(frozen=True)
class RenderResult:
    """One rendered image.

    ``image (H, W, 3)`` uint8 RGB; ``labels (H, W)`` int64 indices into ``data_manifests.VIEW_CLASSES_TOYWORLD``
    (0 = background, including pixels hidden by occluders); ``bbox`` ``(x1, y1, x2, y2)`` float pixel box of the
    vehicle's pixels inside the image before occluders (x2, y2 exclusive); camera angles in degrees and the
    nearest named view.
    """

    image: np.ndarray
    labels: np.ndarray
    bbox: tuple[float, float, float, float]
    azimuth: float
    elevation: float
    roll: float
    view: str
    background: str

    @property
    def mask(self) -> np.ndarray:
        """Visible vehicle pixels ``(H, W)`` bool."""
        return self.labels > 0


def collapse_labels(labels: np.ndarray) -> np.ndarray:
    """Map a toy-world label map ``(H, W)`` to ``data_manifests.VIEW_CLASSES_PVEN`` (left and right -> side)."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= len(VIEW_CLASSES_TOYWORLD)):
        raise ValueError(f"labels must be in 0..{len(VIEW_CLASSES_TOYWORLD) - 1} (VIEW_CLASSES_TOYWORLD)")
    return _PVEN_LUT[labels]


@dataclass(frozen=True)
class VehicleLayer:
    """A vehicle rasterised alone: ``color (H, W, 3)`` float32 0..1 (valid where ``labels > 0``), ``labels (H, W)``,
    its ``camera``, the vehicle's ``bbox`` within the image (or None if it falls outside) and ``full_box``, the box
    of the whole projected vehicle, which may extend past the image border (then the vehicle is truncated)."""

    color: np.ndarray
    labels: np.ndarray
    camera: Camera
    bbox: tuple[float, float, float, float] | None
    full_box: tuple[float, float, float, float]


def vehicle_radius(ident: ToyIdentity) -> float:
    return 0.5 * math.sqrt(ident.length**2 + ident.width**2 + ident.height**2)


def render_vehicle(
    ident: ToyIdentity,
    azimuth: float,
    elevation: float,
    size: int,
    rng: np.random.Generator,
    roll: float = 0.0,
    extent: float | None = None,
    centre: tuple[float, float] | None = None,
    light: np.ndarray | None = None,
    ambient: float = 0.38,
) -> VehicleLayer:
    """Rasterise ``ident`` into a ``size x size`` layer. The vehicle's projected box is scaled so that its longer
    side is ``extent`` pixels and centred on ``centre`` (pixels; may lie partly outside the image, which truncates
    the vehicle). The camera distance (perspective strength) is drawn from ``rng``."""
    mesh: Mesh = build_mesh(ident)
    extent = float(extent if extent is not None else 0.8 * size)
    cx, cy = centre if centre is not None else (size / 2, size / 2)
    # 1. Camera pose and projection to normalised coordinates (focal 1), then fit focal and principal point so
    #    the vehicle's projected box has the requested size and centre.
    target = np.array([0.0, 0.0, ident.height / 2])
    distance = vehicle_radius(ident) * float(rng.uniform(*DISTANCE_RANGE))
    rotation = look_at(azimuth, elevation, distance, target, roll)

    position = target + distance * direction(azimuth, elevation)
    unit = Camera(rotation, position, 1.0, 0.0, 0.0)
    cam = unit.to_camera(mesh.vertices)  # (F, 3, 3)
    norm = unit.project(cam)  # (F, 3, 2), v down
    span = norm[: mesh.framed].reshape(-1, 2)  # framed by the body (family-world decal cues excluded)
    mn, mx = span.min(axis=0), span.max(axis=0)
    focal = extent / max(float((mx - mn).max()), 1e-9)
    mid = (mn + mx) / 2
    camera = Camera(rotation, position, focal, cx - focal * mid[0], cy - focal * mid[1])
    screen = norm * focal + np.array([camera.cx, camera.cy])
    # 2. Back-face culling: keep triangles whose outward normal faces the camera.
    facing = np.einsum("fk,fk->f", mesh.normals, position - mesh.vertices[:, 0]) > 1e-9
    tri, _ = rasterize(screen[facing], 1.0 / cam[facing][..., 2], size, size)
    visible = np.flatnonzero(facing)
    # 3. Flat shading per triangle (Lambert plus a Blinn-Phong highlight toward the camera), looked up per pixel.
    #    Capped at 250/255 so that no vehicle pixel can equal the chroma key of plain renders.
    if light is None:
        light = random_light(rng)
    normals = mesh.normals[visible]
    lambert = np.clip(normals @ light, 0.0, None)
    to_cam = position - mesh.vertices[visible].mean(axis=1)
    half = to_cam / np.linalg.norm(to_cam, axis=1, keepdims=True) + light
    half /= np.linalg.norm(half, axis=1, keepdims=True)
    highlight = SPECULAR * np.clip(np.einsum("fk,fk->f", normals, half), 0.0, None) ** SHININESS
    shade = (ambient + (1.0 - ambient) * lambert)[:, None] * mesh.colors[visible] + highlight[:, None]
    shade = np.minimum(shade, MAX_VEHICLE_INTENSITY)
    # Row 0 of the lookup tables is "no triangle" (index -1 + 1).
    shade_table = np.concatenate([np.zeros((1, 3)), shade]).astype(np.float32)
    label_table = np.concatenate([[0], mesh.labels[visible]])
    color = shade_table[tri + 1]
    labels = label_table[tri + 1]
    bbox = mask_bbox(tri >= 0)
    lo = mn * focal + np.array([camera.cx, camera.cy])
    hi = mx * focal + np.array([camera.cx, camera.cy])
    full_box = (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))
    return VehicleLayer(color=color, labels=labels, camera=camera, bbox=bbox, full_box=full_box)


def random_light(rng: np.random.Generator) -> np.ndarray:
    """Unit light direction ``(3,)`` (toward the light), from above the horizon."""
    az = rng.uniform(0, 2 * np.pi)
    el = rng.uniform(math.radians(25), math.radians(80))
    return np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])


def mask_bbox(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    """``(x1, y1, x2, y2)`` of the True pixels of ``mask (H, W)`` (x2, y2 exclusive), or None if empty."""
    cols = np.flatnonzero(mask.any(axis=0))
    if cols.size == 0:
        return None
    rows = np.flatnonzero(mask.any(axis=1))
    return (float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))


# ------------------------------------------------------------------------------------------------------- backgrounds
@functools.lru_cache(maxsize=8)
def _noise_bank(size: int) -> np.ndarray:
    """A fixed ``(2 size, 2 size, 3)`` float32 bank of Gaussian noise (std ``NOISE_STD``); renders take random
    crops of it, which is much cheaper than drawing fresh normals per image and just as deterministic."""
    bank = seeds.rng(20261124, "toyworld.noise_bank").standard_normal((2 * size, 2 * size, 3), dtype=np.float32)
    return bank * NOISE_STD


def sensor_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    """``(size, size, 3)`` float32 zero-mean noise: a random crop of the bank, randomly flipped in sign."""
    ox, oy = rng.integers(0, size, 2)
    crop = _noise_bank(size)[oy : oy + size, ox : ox + size]
    return crop if rng.random() < 0.5 else -crop


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """``(size, size, 3)`` float 0..1 value noise: a random ``cells x cells`` grid upsampled bilinearly."""
    grid = (rng.random((cells, cells, 3)) * 255).astype(np.uint8)
    return np.asarray(Image.fromarray(grid).resize((size, size), Image.BILINEAR), np.float32) / 255.0


def _gradient(rng: np.random.Generator, size: int) -> np.ndarray:
    c0, c1 = rng.random(3).astype(np.float32), rng.random(3).astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    t = np.linspace(-0.5, 0.5, size, dtype=np.float32)
    proj = np.float32(math.cos(ang)) * t[None, :] + np.float32(math.sin(ang)) * t[:, None]
    w = ((proj - proj.min()) / (np.ptp(proj) + 1e-9))[..., None]
    return c0 + (c1 - c0) * w


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """Stripes or a checker board of two random colours at a random angle and scale (brick walls, fences)."""
    c0, c1 = rng.random(3), rng.random(3)
    ang = rng.uniform(0, np.pi)
    period = rng.uniform(6, 24)
    r = np.arange(size, dtype=np.float32)
    ca, sa = np.float32(math.cos(ang) / period), np.float32(math.sin(ang) / period)
    a = np.floor(ca * r[None, :] + sa * r[:, None])
    if rng.random() < 0.5:
        w = a % 2
    else:
        w = (a + np.floor(-sa * r[None, :] + ca * r[:, None])) % 2
    c0, c1 = (c0 * 0.8).astype(np.float32), (c1 * 0.8).astype(np.float32)
    return c0 + (c1 - c0) * w[..., None] + 0.2 * _smooth_noise(rng, size, 6)


def _road(rng: np.random.Generator, size: int, camera: Camera, ident: ToyIdentity, light: np.ndarray) -> np.ndarray:
    """A ground plane (asphalt with lane markings, at a random angle) seen through ``camera``, sky above the
    horizon, and the vehicle's soft shadow cast along ``light``. Ray-cast at half resolution and upsampled
    bilinearly: four times cheaper, and the upsampling anti-aliases the lane lines."""
    half = max(8, size // 2)
    low = dataclasses.replace(
        camera, focal=camera.focal * half / size, cx=camera.cx * half / size, cy=camera.cy * half / size
    )
    out = _road_at(rng, half, low, ident, light)
    if half == size:
        return out
    up = Image.fromarray(np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)).resize((size, size), Image.BILINEAR)
    return np.asarray(up, np.float32) * np.float32(1 / 255.0)


def _road_at(rng: np.random.Generator, size: int, camera: Camera, ident: ToyIdentity, light: np.ndarray) -> np.ndarray:
    rays = camera.rays(size).astype(np.float32)
    origin = camera.position.astype(np.float32)
    sky_top = np.array([0.45, 0.62, 0.85], np.float32)
    sky_bottom = np.array([0.8, 0.85, 0.9], np.float32)
    rz = rays[..., 2]
    out = sky_bottom + (sky_top - sky_bottom) * np.clip(rz, 0, 1)[..., None]
    down = rz < -1e-6
    # 1. Ground coordinates of the rays that hit the plane z = 0 (vehicle frame).
    t = origin[2] / -rz[down]
    gx = origin[0] + t * rays[..., 0][down]
    gy = origin[1] + t * rays[..., 1][down]
    # 2. Road frame: rotated and shifted relative to the vehicle; dashed lane lines and solid edge lines.
    ang = rng.uniform(-0.35, 0.35) + (np.pi / 2 if rng.random() < 0.2 else 0.0)
    ca, sa = np.float32(math.cos(ang)), np.float32(math.sin(ang))
    rx = ca * gx + sa * gy
    ry = -sa * gx + ca * gy + np.float32(rng.uniform(-1.0, 1.0))
    lane = np.float32(rng.uniform(3.2, 4.0))
    shade = np.float32(rng.uniform(0.25, 0.5)) * (0.9 + 0.2 * _smooth_noise(rng, size, 16)[..., 0][down])
    line = (np.abs((ry + lane / 2) % lane - lane / 2) < 0.08) & ((rx % 6.0) < 3.0)
    line |= np.abs(np.abs(ry) - 1.5 * lane) < 0.1
    # 3. Shadow: the footprint shifted away from the light, softened toward its edge.
    shift = -light[:2] / max(light[2], 0.3) * 0.3 * ident.height
    sx, sy = np.abs(gx - np.float32(shift[0])), np.abs(gy - np.float32(shift[1]))
    inside = np.clip(np.minimum(ident.length / 2 + 0.15 - sx, ident.width / 2 + 0.15 - sy) / 0.4, 0, 1)
    dark = 1.0 - 0.55 * inside
    haze = np.clip(t / 120.0, 0, 1)[:, None]
    paint = np.array((0.85, 0.85, 0.8) if rng.random() < 0.7 else (0.85, 0.75, 0.2), np.float32)
    ground = np.where(line[:, None], paint, shade[:, None]) * dark[:, None]
    out[down] = ground * (1 - haze) + sky_bottom * haze
    return out


def random_background(
    rng: np.random.Generator,
    size: int,
    camera: Camera | None = None,
    ident: ToyIdentity | None = None,
    light: np.ndarray | None = None,
    kind: str | None = None,
) -> tuple[np.ndarray, str]:
    """A background ``(size, size, 3)`` float32 0..1 and its kind. ``road`` needs the camera, identity and light."""
    kinds = BACKGROUND_KINDS if camera is not None else BACKGROUND_KINDS[:-1]
    kind = kind or kinds[int(rng.integers(len(kinds)))]
    if kind == "gradient":
        bg = _gradient(rng, size) * 0.85 + 0.15 * _smooth_noise(rng, size, 4)
    elif kind == "noise":
        bg = 0.6 * _smooth_noise(rng, size, int(rng.integers(3, 12))) + 0.4 * _smooth_noise(rng, size, 24)
    elif kind == "texture":
        bg = _texture(rng, size)
    elif kind == "road":
        assert camera is not None and ident is not None and light is not None
        bg = _road(rng, size, camera, ident, light)
    else:
        raise ValueError(f"unknown background kind {kind!r}; valid: {BACKGROUND_KINDS}")
    return bg.astype(np.float32), kind


def add_occluders(
    rng: np.random.Generator, image: np.ndarray, labels: np.ndarray, bbox: tuple[float, float, float, float]
) -> None:
    """Paint 1-2 occluders over the vehicle box, in place: a pole, a low barrier or a bush-like blob. Occluded
    pixels become background (label 0) in ``labels``."""
    size = image.shape[0]
    x1, y1, x2, y2 = bbox
    bw, bh = x2 - x1, y2 - y1
    yy, xx = np.mgrid[0:size, 0:size]
    for _ in range(int(rng.integers(1, 3))):
        kind = ("pole", "barrier", "blob")[int(rng.integers(3))]
        color = rng.uniform(0.1, 0.8, 3)
        if kind == "pole":
            cx, w = rng.uniform(x1, x2), rng.uniform(0.03, 0.09) * size
            occ = np.abs(xx + 0.5 - cx) < w / 2
        elif kind == "barrier":
            top = y2 - rng.uniform(0.15, 0.35) * bh
            occ = (yy + 0.5 > top) & (yy + 0.5 < y2 + 0.1 * bh)
            color = (0.75, 0.75, 0.72) if rng.random() < 0.5 else (0.8, 0.2, 0.15)
        else:
            cx, cy = rng.uniform(x1, x2), rng.uniform(y1 + 0.5 * bh, y2)
            rx, ry = rng.uniform(0.1, 0.25) * bw, rng.uniform(0.15, 0.35) * bh
            occ = ((xx + 0.5 - cx) / rx) ** 2 + ((yy + 0.5 - cy) / ry) ** 2 < 1
            color = (rng.uniform(0.1, 0.3), rng.uniform(0.35, 0.55), rng.uniform(0.1, 0.25))
        image[occ] = color
        labels[occ] = 0


# ----------------------------------------------------------------------------------------------------------- render
def render(
    ident: ToyIdentity,
    azimuth: float,
    elevation: float,
    size: int = 128,
    seed: int = 0,
    background: bool | tuple[int, int, int] = True,
    occluders: bool = False,
) -> RenderResult:
    """Render ``ident`` seen from ``(azimuth, elevation)`` degrees (see :mod:`pipeline.toyworld.camera`).

    ``seed`` drives every jitter (roll, distance, framing, light, background, occluders, noise).
    ``background``: True = a random scene; False = the plain chroma key ``KEY_COLOR``; an RGB tuple = that colour.
    Plain backgrounds get no sensor noise, so ``image != KEY_COLOR`` is exactly the visible vehicle.
    """
    if size < 8:
        raise ValueError(f"render size must be >= 8 pixels, got {size}")
    if not 0.0 <= elevation <= 90.0:
        raise ValueError(f"elevation must be within 0..90 degrees, got {elevation}")
    rng = seeds.rng(seed, "toyworld.render", ident.index, ident.seed & 0xFFFFFFFF)
    # 1. Camera jitter and light.
    roll = float(rng.uniform(-ROLL_JITTER, ROLL_JITTER))
    extent = float(rng.uniform(*FILL_RANGE)) * size
    centre = tuple(size / 2 + rng.uniform(-CENTRE_JITTER, CENTRE_JITTER, 2) * size)
    light = random_light(rng)
    ambient = float(rng.uniform(*AMBIENT_RANGE))
    # 2.-3. The vehicle layer.
    layer = render_vehicle(ident, azimuth, elevation, size, rng, roll, extent, centre, light, ambient)  # type: ignore[arg-type]
    labels = layer.labels
    covered = (labels > 0)[..., None]
    # 4. Background.
    plain = background is not True
    if plain:
        key = KEY_COLOR if background is False else tuple(background)  # type: ignore[arg-type]
        image = np.where(covered, layer.color, np.asarray(key, np.float32) / 255.0)
        kind = "plain"
    else:
        bg, kind = random_background(rng, size, layer.camera, ident, light)
        image = np.where(covered, layer.color, bg)
    bbox = layer.bbox or (0.0, 0.0, 0.0, 0.0)
    # 5. Occluders, 6. sensor noise.
    if occluders and layer.bbox is not None:
        add_occluders(rng, image, labels, layer.bbox)
    if not plain:
        image += sensor_noise(rng, size)
    out = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return RenderResult(
        image=out,
        labels=labels,
        bbox=bbox,
        azimuth=float(azimuth) % 360.0,
        elevation=float(elevation),
        roll=roll,
        view=nearest_view(azimuth, elevation),
        background=kind,
    )
