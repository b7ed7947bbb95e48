"""Low-poly triangle meshes of toy vehicles, built from convex planar polygons (boxes, prisms, decals).

Vehicle frame: x forward (the front is at ``+x``), y to the vehicle's left, z up, ground at ``z = 0``, the
vehicle centred on the origin in x and y. Every polygon carries an outward normal, a colour and a view label:

* by default the label follows the normal: ``top`` for surfaces facing up, i.e. within ``TOP_MAX_TILT`` (30)
  degrees of horizontal (roof, bonnet, boot lid, roof boxes); otherwise the dominant horizontal axis of the normal
  decides ``front``/``rear`` (+x/-x) or ``left``/``right`` (+y/-y), so windscreens and rear windows belong to the
  front and rear, as in PVEN's part annotation;
* wheels are labelled by the side they are on, whatever their face normals.

Downward faces are never emitted (cameras are at or above the vehicle's centre height, so they are never seen).
Decals (windows, lights, stripes, stickers, panels) are polygons lifted ``DECAL_EPS`` metres off their face, so
the z-buffer always shows them in front of the face they sit on.

Family-world vehicles (:mod:`pipeline.toyworld.family`) carry one individual cue per face, drawn on that face's
:class:`CuePanel` (:func:`cue_panels`): a free rectangle of the body (lower front, lower rear, lower side, roof).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from .identity import Cue, ToyIdentity

# Indices into data_manifests.VIEW_CLASSES_TOYWORLD.
BACKGROUND, FRONT, REAR, LEFT, RIGHT, TOP = range(6)
TOP_MAX_TILT = 30.0  # degrees: steeper upward faces are front/rear/side
_TOP_COS = math.cos(math.radians(TOP_MAX_TILT))
DECAL_EPS = 0.012

GLASS = (38, 48, 60)
TYRE = (28, 28, 30)
CHASSIS = (55, 55, 58)
HEADLIGHT = (235, 232, 210)
TAILLIGHT = (190, 25, 25)
PLATE = (225, 225, 215)
GRILLE = (25, 25, 28)
CARGO = (215, 215, 210)


@dataclass(frozen=True)
class Mesh:
    """Triangles of one vehicle. ``vertices (F, 3, 3)`` float64 metres; ``normals (F, 3)`` unit outward normals;
    ``colors (F, 3)`` float32 linear 0..1; ``labels (F,)`` int64 indices into VIEW_CLASSES_TOYWORLD.
    ``framed``: the renderer frames the vehicle by its first ``framed`` triangles (None: all), so that the decal
    cues of the family world, lifted off the body, do not shift the framing between siblings."""

    vertices: np.ndarray
    normals: np.ndarray
    colors: np.ndarray
    labels: np.ndarray
    framed: int | None = None

    @property
    def n_triangles(self) -> int:
        return int(self.vertices.shape[0])


def label_for_normal(normal: np.ndarray) -> int:
    """View label of a face with outward ``normal (3,)`` (see the module docstring)."""
    n = np.asarray(normal, float)
    nx, ny, nz = (float(v) for v in n / np.linalg.norm(n))
    if nz >= _TOP_COS:
        return TOP
    if abs(nx) >= abs(ny):
        return FRONT if nx > 0 else REAR
    return LEFT if ny > 0 else RIGHT


class MeshBuilder:
    """Collects convex polygons and fan-triangulates them into a :class:`Mesh`."""

    def __init__(self) -> None:
        self._tris: list[np.ndarray] = []  # (k, 3, 3) blocks, one per polygon
        self._normals: list[np.ndarray] = []
        self._colors: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []

    def polygon(
        self,
        points: np.ndarray | list,
        normal: np.ndarray | list,
        color: tuple[int, int, int],
        label: int | None = None,
        offset: float = 0.0,
    ) -> None:
        """Add a convex planar polygon ``points (K, 3)`` (any winding) with outward ``normal``; ``offset`` lifts it
        along the normal (decals). Downward-facing polygons are dropped."""
        pts = np.asarray(points, float)
        n = np.asarray(normal, float)
        n = n / np.linalg.norm(n)
        if n[2] < -0.5:
            return
        pts = pts + offset * n
        lab = label_for_normal(n) if label is None else label
        # Fan triangulation (valid for convex polygons), all triangles at once.
        count = len(pts) - 2
        tris = np.stack([np.broadcast_to(pts[0], (count, 3)), pts[1:-1], pts[2:]], axis=1)
        # Orient every triangle counter-clockwise around its outward normal.
        flip = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0]) @ n < 0
        tris[flip] = tris[flip][:, [0, 2, 1]]
        self._tris.append(tris)
        self._normals.append(np.broadcast_to(n, (count, 3)))
        self._colors.append(np.broadcast_to(np.asarray(color, np.float32), (count, 3)))
        self._labels.append(np.full(count, lab, np.int64))

    def prism(
        self,
        profile: list[tuple[float, float]],
        y0: float,
        y1: float,
        color: tuple[int, int, int],
        face_colors: dict[int, tuple[int, int, int]] | None = None,
        label: int | None = None,
    ) -> None:
        """Extrude a convex polygon ``profile`` in the x-z plane (counter-clockwise, x right, z up) between
        ``y0 < y1``. ``face_colors[i]`` recolours the strip from profile vertex ``i`` to ``i + 1``."""
        prof = np.asarray(profile, float)
        k = len(prof)
        left = np.column_stack([prof[:, 0], np.full(k, y1), prof[:, 1]])
        right = np.column_stack([prof[:, 0], np.full(k, y0), prof[:, 1]])
        self.polygon(left, (0, 1, 0), color, label)
        self.polygon(right, (0, -1, 0), color, label)
        for i in range(k):
            j = (i + 1) % k
            dx, dz = prof[j] - prof[i]
            normal = (dz, 0.0, -dx)  # outward for a counter-clockwise profile
            quad = [right[i], right[j], left[j], left[i]]
            self.polygon(quad, normal, (face_colors or {}).get(i, color), label)

    def box(
        self, x0: float, x1: float, y0: float, y1: float, z0: float, z1: float, color: tuple[int, int, int]
    ) -> None:
        self.prism([(x0, z0), (x1, z0), (x1, z1), (x0, z1)], y0, y1, color)

    def side_decal(self, y: float, x0: float, x1: float, z0: float, z1: float, color, depth: int = 1) -> None:
        """Rectangle on the side plane ``y`` (left if ``y > 0``), lifted ``depth`` decal layers."""
        sign = 1.0 if y > 0 else -1.0
        pts = [(x0, y, z0), (x1, y, z0), (x1, y, z1), (x0, y, z1)]
        self.polygon(pts, (0, sign, 0), color, offset=DECAL_EPS * depth)

    def end_decal(self, x: float, y0: float, y1: float, z0: float, z1: float, color, depth: int = 1) -> None:
        """Rectangle on the front (``x > 0``) or rear end plane ``x``."""
        sign = 1.0 if x > 0 else -1.0
        pts = [(x, y0, z0), (x, y1, z0), (x, y1, z1), (x, y0, z1)]
        self.polygon(pts, (sign, 0, 0), color, offset=DECAL_EPS * depth)

    @property
    def n_triangles(self) -> int:
        return sum(len(t) for t in self._tris)

    def build(self, framed: int | None = None) -> Mesh:
        return Mesh(
            vertices=np.concatenate(self._tris).astype(np.float64),
            normals=np.concatenate(self._normals).astype(np.float64),
            colors=np.concatenate(self._colors) / np.float32(255.0),
            labels=np.concatenate(self._labels),
            framed=framed,
        )


def _shrink(points: np.ndarray, factor: float) -> np.ndarray:
    centre = points.mean(axis=0)
    return centre + (points - centre) * factor


def _sloped_decal(b: MeshBuilder, p0, p1, p2, p3, normal, color, inset: float) -> None:
    b.polygon(_shrink(np.array([p0, p1, p2, p3], float), inset), normal, color, offset=DECAL_EPS)


def _wheel(b: MeshBuilder, x: float, y_in: float, y_out: float, radius: float, rim, label: int, n: int = 8) -> None:
    """An ``n``-sided tyre prism with axis along y, centred at height ``radius``, plus a rim decal outside."""
    ang = np.linspace(0, 2 * np.pi, n, endpoint=False) + np.pi / n
    profile = [(x + radius * np.cos(a), radius + radius * np.sin(a)) for a in ang]
    y0, y1 = min(y_in, y_out), max(y_in, y_out)
    b.prism(profile, y0, y1, TYRE, label=label)
    sign = 1.0 if y_out > y_in else -1.0
    rim_pts = [(x + 0.6 * radius * np.cos(a), y_out, radius + 0.6 * radius * np.sin(a)) for a in ang]
    b.polygon(rim_pts, (0, sign, 0), rim, label=label, offset=DECAL_EPS)


def _body_profiles(ident: ToyIdentity) -> dict[str, float]:
    """Key heights and stations of the body for each class (metres)."""
    L, H = ident.length, ident.height
    c = {"sedan": 0.18, "suv": 0.25, "van": 0.2, "truck": 0.35, "bus": 0.3}[ident.class_name]
    r = {"sedan": 0.32, "suv": 0.37, "van": 0.35, "truck": 0.5, "bus": 0.52}[ident.class_name]
    belt = {"sedan": 0.56, "suv": 0.55, "van": 0.5, "truck": 0.36, "bus": 0.42}[ident.class_name] * H
    return {"clearance": c, "wheel_r": r, "belt": belt, "front_axle": L / 2 - max(0.85, 0.17 * L), "L": L, "H": H}


def _cabin_stations(ident: ToyIdentity) -> tuple[float, float, float, float, float]:
    """Glasshouse of a sedan, SUV or van: x of its rear and front foot (``xr0``, ``xf0``) and roof ends (``xr1``,
    ``xf1``), and its half width ``cw``."""
    L, hw = ident.length, ident.width / 2
    if ident.class_name == "sedan":
        xr0, xf0, xr1, xf1 = -0.33 * L, 0.2 * L, -0.22 * L, 0.0 * L
    elif ident.class_name == "suv":
        xr0, xf0, xr1, xf1 = -L / 2 + 0.05, 0.18 * L, -L / 2 + 0.12, 0.03 * L
    else:  # van
        xr0, xf0, xr1, xf1 = -L / 2 + 0.02, L / 2 - 0.75, -L / 2 + 0.04, L / 2 - 1.35
    return xr0, xf0, xr1, xf1, hw - (0.1 if ident.class_name == "sedan" else 0.05)


def _car_body(b: MeshBuilder, ident: ToyIdentity, p: dict[str, float]) -> dict[str, float]:
    """Sedan, SUV and van: a chamfered lower body plus a glasshouse. Returns stations used by the marks."""
    L, W, H = ident.dims
    c, belt = p["clearance"], p["belt"]
    hw = W / 2
    body = ident.body_color
    lower = [
        (-L / 2, c),
        (L / 2, c),
        (L / 2, belt - 0.12),
        (L / 2 - 0.2, belt),
        (-L / 2 + 0.12, belt),
        (-L / 2, belt - 0.08),
    ]
    b.prism(lower, -hw, hw, body)
    xr0, xf0, xr1, xf1, cw = _cabin_stations(ident)
    cabin = [(xr0, belt), (xf0, belt), (xf1, H), (xr1, H)]
    roof_color = ident.roof_color or body
    b.prism(cabin, -cw, cw, body, face_colors={2: roof_color})
    # Glass: windscreen, rear window and side windows as decals inset into the cabin faces.
    wf = [(xf0, -cw, belt), (xf0, cw, belt), (xf1, cw, H), (xf1, -cw, H)]
    _sloped_decal(b, *wf, normal=(H - belt, 0, xf0 - xf1), color=GLASS, inset=0.86)
    wr = [(xr0, -cw, belt), (xr0, cw, belt), (xr1, cw, H), (xr1, -cw, H)]
    _sloped_decal(b, *wr, normal=(-(H - belt), 0, xr1 - xr0), color=GLASS, inset=0.82)
    for sign in (1.0, -1.0):
        y = sign * cw
        side = np.array([(xr0, y, belt), (xf0, y, belt), (xf1, y, H), (xr1, y, H)])
        b.polygon(_shrink(side, 0.86), (0, sign, 0), GLASS, offset=DECAL_EPS)
        mid = 0.5 * (xr1 + xf1)  # B-pillar: a body-coloured strip splitting the side glass
        b.side_decal(y, mid - 0.05, mid + 0.05, belt, H - 0.03, body, depth=2)
    return {"roof_x0": xr1, "roof_x1": xf1, "roof_w": cw, "front_top": belt - 0.12, "rear_top": belt - 0.08}


def _truck_body(b: MeshBuilder, ident: ToyIdentity, p: dict[str, float]) -> dict[str, float]:
    """Box truck: chassis, a cab at the front and a cargo box behind it."""
    L, W, H = ident.dims
    c = p["clearance"]
    hw = W / 2
    cab_x0, cab_h = L / 2 - 1.9, min(0.8 * H, 2.6)
    b.box(-L / 2, cab_x0, -hw + 0.1, hw - 0.1, c, 0.95, CHASSIS)
    cab = [(cab_x0, c), (L / 2, c), (L / 2, 0.55 * cab_h), (L / 2 - 0.35, cab_h), (cab_x0, cab_h)]
    b.prism(cab, -hw + 0.05, hw - 0.05, ident.body_color, face_colors={3: ident.roof_color or ident.body_color})
    ws = [(L / 2, -hw + 0.05, 0.55 * cab_h), (L / 2, hw - 0.05, 0.55 * cab_h), (L / 2 - 0.35, hw - 0.05, cab_h)]
    ws.append((L / 2 - 0.35, -hw + 0.05, cab_h))
    _sloped_decal(b, *ws, normal=(0.45 * cab_h, 0, 0.35), color=GLASS, inset=0.85)
    for sign in (1.0, -1.0):
        b.side_decal(sign * (hw - 0.05), L / 2 - 1.0, L / 2 - 0.3, 0.6 * cab_h, 0.92 * cab_h, GLASS)
    b.box(-L / 2, cab_x0 - 0.15, -hw, hw, 0.95, H, CARGO)
    return {
        "roof_x0": -L / 2 + 0.1,
        "roof_x1": cab_x0 - 0.25,
        "roof_w": hw,
        "front_top": 0.55 * cab_h,
        "rear_top": H,
        "panel_x0": -L / 2 + 0.3,
        "panel_x1": cab_x0 - 0.45,
        "panel_z0": 1.2,
        "panel_z1": H - 0.25,
    }


def _bus_body(b: MeshBuilder, ident: ToyIdentity, p: dict[str, float]) -> dict[str, float]:
    L, W, H = ident.dims
    c = p["clearance"]
    hw = W / 2
    profile = [(-L / 2, c), (L / 2, c), (L / 2, 0.9 * H), (L / 2 - 0.15, H), (-L / 2, H)]
    b.prism(profile, -hw, hw, ident.body_color, face_colors={3: ident.roof_color or ident.body_color})
    b.end_decal(L / 2, -hw + 0.12, hw - 0.12, 0.42 * H, 0.86 * H, GLASS)  # windscreen
    b.end_decal(-L / 2, -hw + 0.25, hw - 0.25, 0.6 * H, 0.85 * H, GLASS)
    for sign in (1.0, -1.0):
        b.side_decal(sign * hw, -L / 2 + 0.4, L / 2 - 0.5, 0.55 * H, 0.86 * H, GLASS)
    # A glazed front door on the right (kerb) side: tells the bus's two sides apart.
    b.side_decal(-hw, L / 2 - 1.6, L / 2 - 0.6, c + 0.1, 0.86 * H, GLASS, depth=2)
    return {
        "roof_x0": -L / 2 + 0.5,
        "roof_x1": L / 2 - 0.6,
        "roof_w": hw,
        "front_top": 0.4 * H,
        "rear_top": 0.55 * H,
        "panel_x0": -L / 2 + 1.0,
        "panel_x1": L / 2 - 2.0,
        "panel_z0": c + 0.35,
        "panel_z1": 0.5 * H,
    }


def _ends(b: MeshBuilder, ident: ToyIdentity, p: dict[str, float], s: dict[str, float]) -> None:
    """Lights, grille, plates and bumpers: they make front and rear look different (non-identity detail)."""
    L, W, _ = ident.dims
    hw = W / 2 - (0.05 if ident.class_name == "truck" else 0.0)
    c = p["clearance"]
    ft, rt = s["front_top"], s["rear_top"]
    fl_z0, fl_z1 = ft - 0.2, ft - 0.06
    for sign in (1.0, -1.0):
        b.end_decal(L / 2, sign * (hw - 0.08), sign * (hw - 0.38), fl_z0, fl_z1, HEADLIGHT)
        rz = min(rt, 1.1) if ident.class_name in ("truck", "bus") else rt
        b.end_decal(-L / 2, sign * (hw - 0.06), sign * (hw - 0.3), rz - 0.22, rz - 0.06, TAILLIGHT)
    b.end_decal(L / 2, -hw + 0.45, hw - 0.45, fl_z0, fl_z1, GRILLE)
    b.end_decal(L / 2, -0.26, 0.26, c + 0.22, c + 0.34, PLATE, depth=2)
    b.end_decal(-L / 2, -0.26, 0.26, c + 0.25, c + 0.37, PLATE, depth=2)
    b.end_decal(L / 2, -hw, hw, c, c + 0.18, ident.bumper_color)
    b.end_decal(-L / 2, -hw, hw, c, c + 0.16, (40, 40, 42))


def _marks(b: MeshBuilder, ident: ToyIdentity, p: dict[str, float], s: dict[str, float]) -> None:
    L, W, H = ident.dims
    hw = W / 2
    c, belt = p["clearance"], p["belt"]
    x0, x1, rw = s["roof_x0"], s["roof_x1"], s["roof_w"]
    # Roof rack (two rails) or roof box: seen from above and, at low elevation, from the sides.
    if ident.roof == "rack":
        for sign in (1.0, -1.0):
            y = sign * (rw - 0.12)
            b.box(x0 + 0.1, x1 - 0.1, y - 0.04, y + 0.04, H, H + 0.07, CHASSIS)
    elif ident.roof == "box":
        bx0, bx1 = x0 + 0.15 * (x1 - x0), x1 - 0.15 * (x1 - x0)
        b.box(bx0, bx1, -0.4 * rw, 0.4 * rw, H, H + 0.3, (20, 20, 24))
    # Side stripe on both sides (cars: along the lower body; trucks/buses: along the skirt).
    if ident.stripe_color is not None:
        z0 = c + 0.45 * (belt - c) if ident.class_name in ("sedan", "suv", "van") else c + 0.25
        for sign in (1.0, -1.0):
            b.side_decal(sign * hw, -L / 2 + 0.25, L / 2 - 0.35, z0, z0 + 0.09, ident.stripe_color)
    # Text panel on one side only.
    if ident.panel_side is not None and ident.panel_color is not None:
        sign = 1.0 if ident.panel_side == "left" else -1.0
        px0 = s.get("panel_x0", -0.3 * L)
        px1 = s.get("panel_x1", 0.15 * L)
        pz0 = s.get("panel_z0", c + 0.2 * (belt - c))
        pz1 = s.get("panel_z1", belt - 0.08)
        b.side_decal(sign * hw, px0, px1, pz0, pz1, ident.panel_color, depth=2)
        dark = tuple(int(v * 0.25) for v in ident.panel_color)
        for k in range(3):  # "text": three bars of different length
            tz = pz0 + (pz1 - pz0) * (0.2 + 0.25 * k)
            tx1 = px0 + (px1 - px0) * (0.9 - 0.2 * k)
            b.side_decal(sign * hw, px0 + 0.1 * (px1 - px0), tx1, tz, tz + 0.1 * (pz1 - pz0), dark, depth=3)
    # Rear spoiler on the boot lid.
    if ident.spoiler:
        top = belt
        b.box(-L / 2 + 0.02, -L / 2 + 0.28, -hw + 0.1, hw - 0.1, top + 0.1, top + 0.15, CHASSIS)
        for sign in (1.0, -1.0):
            b.box(
                -L / 2 + 0.1, -L / 2 + 0.16, sign * (hw - 0.3) - 0.03, sign * (hw - 0.3) + 0.03, top, top + 0.1, CHASSIS
            )
    # Stickers at fixed positions on one face.
    ft = s["front_top"]
    for st in ident.stickers:
        half = st.size / 2
        if st.face in ("left", "right"):
            sign = 1.0 if st.face == "left" else -1.0
            x = L / 2 - st.u * L  # u = 0 at the front end
            z = c + st.v * (max(belt, 1.0) - c)
            b.side_decal(sign * hw, x - half, x + half, z - half * 0.7, z + half * 0.7, st.color, depth=4)
        else:
            x = L / 2 if st.face == "front" else -L / 2
            y = (0.5 - st.u) * W * 0.8
            z = c + 0.2 + st.v * 0.5 * (min(ft, 1.2) - c)
            b.end_decal(x, y - half * 0.6, y + half * 0.6, z - half * 0.4, z + half * 0.4, st.color, depth=4)


# ------------------------------------------------------------------------------------------- family-world cues
ROOF_ITEMS: tuple[str, ...] = ("rack", "box", "light_bar")  # top cues built as boxes; the others are decals


@dataclass(frozen=True)
class CuePanel:
    """A rectangle on one face where that face's cue is drawn: ``point(a, b) = origin + a * eu + b * ev`` for
    ``a`` in ``[0, width]`` along the face and ``b`` in ``[0, height]`` (metres). Slotted patterns sit at one of
    three slots spread over ``[slot_lo, slot_hi]`` along ``a`` (between the wheels on car and bus sides)."""

    origin: tuple[float, float, float]
    eu: tuple[float, float, float]
    ev: tuple[float, float, float]
    normal: tuple[float, float, float]
    width: float
    height: float
    slot_lo: float
    slot_hi: float

    def points(self, ab: np.ndarray) -> np.ndarray:
        """Panel coordinates ``(K, 2)`` -> vehicle-frame points ``(K, 3)``."""
        ab = np.asarray(ab, float)
        return np.asarray(self.origin) + ab[:, :1] * np.asarray(self.eu) + ab[:, 1:] * np.asarray(self.ev)


def _end_panel(x: float, half: float, z0: float, z1: float) -> CuePanel:
    """Front (``x > 0``) or rear panel on the end plane ``x``, across ``-half..half``."""
    sign = 1.0 if x > 0 else -1.0
    return CuePanel((x, -half, z0), (0, 1, 0), (0, 0, 1), (sign, 0, 0), 2 * half, z1 - z0, 0.0, 2 * half)


def _side_panels(y: float, x0: float, x1: float, z0: float, z1: float, s0: float, s1: float) -> dict[str, CuePanel]:
    """Left and right panels on the planes ``+-y`` over ``x0..x1``; slots over ``s0..s1`` (vehicle x)."""
    return {
        face: CuePanel((x0, sign * y, z0), (1, 0, 0), (0, 0, 1), (0, sign, 0), x1 - x0, z1 - z0, s0 - x0, s1 - x0)
        for face, sign in (("left", 1.0), ("right", -1.0))
    }


def cue_panels(ident: ToyIdentity) -> dict[str, CuePanel]:
    """The panel of each face (front, rear, left, right, top) where a family-world cue is drawn: the lower front
    and rear below the lights' top, the lower side (cars, bus) or cargo box side (truck), and the roof. On the roof
    ``a`` runs along its longer side (the width of a sedan's short roof)."""
    L, W, H = ident.dims
    hw = W / 2
    p = _body_profiles(ident)
    c, r, fa = p["clearance"], p["wheel_r"], p["front_axle"]
    if ident.class_name in ("sedan", "suv", "van"):
        belt = p["belt"]  # the lower body's front end rises to belt - 0.12, its rear end to belt - 0.08
        _, _, xr1, xf1, cw = _cabin_stations(ident)
        panels = {
            "front": _end_panel(L / 2, hw - 0.06, c + 0.02, belt - 0.14),
            "rear": _end_panel(-L / 2, hw - 0.06, c + 0.02, belt - 0.1),
            **_side_panels(hw, -L / 2 + 0.15, L / 2 - 0.25, c + 0.04, belt - 0.05, -fa + 0.6 * r, fa - 0.6 * r),
        }
        roof = (xr1 + 0.05, xf1 - 0.05, cw - 0.06)
    elif ident.class_name == "truck":
        cab_x0, cab_h = L / 2 - 1.9, min(0.8 * H, 2.6)
        panels = {
            "front": _end_panel(L / 2, hw - 0.1, c + 0.02, 0.55 * cab_h - 0.02),
            # The cargo box's rear and sides: a band about a metre tall, so cues stay a minor share of its area.
            "rear": _end_panel(-L / 2, hw - 0.08, 1.2, min(H - 0.1, 2.3)),
            **_side_panels(hw, -L / 2 + 0.2, cab_x0 - 0.3, 1.25, min(H - 0.15, 2.3), -L / 2 + 0.2, cab_x0 - 0.3),
        }
        roof = (-L / 2 + 0.1, cab_x0 - 0.25, hw - 0.08)
    elif ident.class_name == "bus":
        rear_axle = -fa + 0.1 * L
        panels = {
            "front": _end_panel(L / 2, hw - 0.15, c + 0.02, 0.4 * H - 0.02),
            "rear": _end_panel(-L / 2, hw - 0.1, c + 0.02, 0.58 * H),
            **_side_panels(hw, -L / 2 + 0.3, L / 2 - 0.3, c + 0.15, 0.52 * H, rear_axle + r + 0.05, fa - r - 0.05),
        }
        roof = (-L / 2 + 0.5, L / 2 - 0.6, hw - 0.1)
    else:
        raise ValueError(f"unknown toy vehicle class {ident.class_name!r}")
    x0, x1, half = roof
    if x1 - x0 >= 2 * half:
        top = CuePanel((x0, -half, H), (1, 0, 0), (0, 1, 0), (0, 0, 1), x1 - x0, 2 * half, 0.0, x1 - x0)
    else:
        top = CuePanel((x1, -half, H), (0, 1, 0), (-1, 0, 0), (0, 0, 1), 2 * half, x1 - x0, 0.0, 2 * half)
    return {**panels, "top": top}


def _octagon(ca: float, cb: float, radius: float) -> np.ndarray:
    ang = np.linspace(0, 2 * np.pi, 8, endpoint=False) + np.pi / 8
    return np.column_stack([ca + radius * np.cos(ang), cb + radius * np.sin(ang)])


def cue_polygons(pattern: str, slot: int, panel: CuePanel) -> list[np.ndarray]:
    """The convex polygons ``(K, 2)`` of a decal pattern in the panel's ``(a, b)`` coordinates (metres)."""
    A, B = panel.width, panel.height
    w = (panel.slot_hi - panel.slot_lo) / 3  # slot width
    a = panel.slot_lo + (slot + 0.5) * w  # slot centre
    if pattern == "band":
        b0 = (0.1 if slot == 0 else 0.58) * B
        return [np.array([(0, b0), (A, b0), (A, b0 + 0.32 * B), (0, b0 + 0.32 * B)])]
    if pattern == "bars":
        t = 0.07 * A
        return [np.array([(x, 0.05 * B), (x + t, 0.05 * B), (x + t, 0.95 * B), (x, 0.95 * B)])
                for x in A * (0.1 + 0.24 * np.arange(4))]  # fmt: skip
    if pattern == "block":
        return [np.array([(a - 0.4 * w, 0.12 * B), (a + 0.4 * w, 0.12 * B), (a + 0.4 * w, 0.88 * B),
                          (a - 0.4 * w, 0.88 * B)])]  # fmt: skip
    if pattern == "disc":
        return [_octagon(a, 0.5 * B, min(0.45 * B, 0.45 * w))]
    if pattern == "slash":  # two parallel slanted bars, "//"
        t, lean = 0.24 * w, 0.3 * w
        return [np.array([(x, 0.06 * B), (x + t, 0.06 * B), (x + t + lean, 0.94 * B), (x + lean, 0.94 * B)])
                for x in (a - 0.5 * w, a - 0.02 * w)]  # fmt: skip
    if pattern == "triangle":
        return [np.array([(a - 0.46 * w, 0.06 * B), (a + 0.46 * w, 0.06 * B), (a, 0.94 * B)])]
    raise ValueError(f"unknown cue pattern {pattern!r}")


def _roof_item(b: MeshBuilder, cue: Cue, panel: CuePanel) -> None:
    """A roof rack (two cross bars), a roof box or a light bar across the front of the roof, in the cue's tone."""
    x0, y0, z = panel.origin
    if panel.eu[0] > 0:  # a runs along x
        x1, y1 = x0 + panel.width, y0 + panel.height
    else:
        x0, x1, y1 = x0 - panel.height, x0, y0 + panel.width
    length, half = x1 - x0, (y1 - y0) / 2
    if cue.pattern == "rack":
        for t in (0.22, 0.7):
            xc = x0 + t * length
            b.box(xc - 0.07, xc + 0.07, -half, half, z, z + 0.08, cue.color)
    elif cue.pattern == "box":
        b.box(x0 + 0.15 * length, x1 - 0.15 * length, -0.55 * half, 0.55 * half, z, z + 0.2, cue.color)
    elif cue.pattern == "light_bar":
        b.box(x1 - 0.3, x1 - 0.08, -0.75 * half, 0.75 * half, z, z + 0.1, cue.color)
    else:
        raise ValueError(f"unknown roof item {cue.pattern!r}")


def add_cues(b: MeshBuilder, ident: ToyIdentity, roof_items: bool) -> None:
    """Add the roof items (``roof_items``) or else the decal cues of a family-world identity, each on its face's
    panel (nothing for classic identities). Side decals sit one layer deep, behind the tyres; front and rear ones
    three layers, over lights and plates; a face's further cues (``cues_per_face`` > 1) a third of a layer above the
    one before, so overlapping patterns stack in order and side cues stay behind the tyres (0.02 m out)."""
    panels = cue_panels(ident) if ident.cues else {}
    layer: dict[str, int] = {}
    for cue in ident.cues:
        panel = panels[cue.face]
        nth = layer[cue.face] = layer.get(cue.face, -1) + 1
        if (cue.pattern in ROOF_ITEMS) != roof_items:
            continue
        if roof_items:
            _roof_item(b, cue, panel)
            continue
        depth = (3 if cue.face in ("front", "rear") else 1) + nth / 3
        for poly in cue_polygons(cue.pattern, cue.slot, panel):
            b.polygon(panel.points(poly), panel.normal, cue.color, offset=DECAL_EPS * depth)


@functools.lru_cache(maxsize=512)
def build_mesh(ident: ToyIdentity) -> Mesh:
    """The triangle mesh of ``ident`` (cached: identities are frozen and hashable)."""
    b = MeshBuilder()
    p = _body_profiles(ident)
    if ident.class_name in ("sedan", "suv", "van"):
        s = _car_body(b, ident, p)
    elif ident.class_name == "truck":
        s = _truck_body(b, ident, p)
    elif ident.class_name == "bus":
        s = _bus_body(b, ident, p)
    else:
        raise ValueError(f"unknown toy vehicle class {ident.class_name!r}")
    _ends(b, ident, p, s)
    _marks(b, ident, p, s)
    add_cues(b, ident, roof_items=True)  # roof items are part of the silhouette: they count for the framing
    L, W, _ = ident.dims
    r = p["wheel_r"]
    axles = [p["front_axle"], -p["front_axle"] + (0.1 * L if ident.class_name == "bus" else 0.0)]
    if ident.class_name == "truck":
        axles.append(axles[1] + 2.2 * r)
    for x in axles:
        b_y = W / 2
        _wheel(b, x, b_y - 0.25, b_y + 0.02, r, ident.wheel_color, LEFT)
        _wheel(b, x, -b_y + 0.25, -b_y - 0.02, r, ident.wheel_color, RIGHT)
    if not ident.cues:
        return b.build()
    framed = b.n_triangles
    add_cues(b, ident, roof_items=False)
    return b.build(framed=framed)
