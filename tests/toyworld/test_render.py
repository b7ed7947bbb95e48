"""The renderer: determinism, exact masks, the camera convention, occluders, the rasteriser against a reference."""

from __future__ import annotations

import numpy as np
import pytest

from data_manifests import INTENDED_VIEWS, VIEW_CLASSES_PVEN, VIEW_CLASSES_TOYWORLD
from pipeline.toyworld import (
    KEY_COLOR,
    collapse_labels,
    nearest_view,
    render,
    sample_identity,
    view_to_camera,
)
from pipeline.toyworld.identity import CLASSES
from pipeline.toyworld.raster import rasterize

FRONT, REAR, LEFT, RIGHT, TOP = (VIEW_CLASSES_TOYWORLD.index(n) for n in ("front", "rear", "left", "right", "top"))


def one_per_class(seed: int = 0) -> list:
    found = {}
    index = 0
    while len(found) < len(CLASSES):
        ident = sample_identity(seed, index)
        found.setdefault(ident.class_name, ident)
        index += 1
    return [found[c] for c in CLASSES]


def dominant(labels: np.ndarray) -> int:
    counts = np.bincount(labels.ravel(), minlength=len(VIEW_CLASSES_TOYWORLD))
    return 1 + int(np.argmax(counts[1:]))


def test_render_types_and_determinism() -> None:
    ident = sample_identity(0, 3)
    a = render(ident, 30.0, 12.0, size=64, seed=5)
    b = render(ident, 30.0, 12.0, size=64, seed=5)
    assert a.image.dtype == np.uint8 and a.image.shape == (64, 64, 3)
    assert a.labels.dtype == np.int64 and a.labels.shape == (64, 64)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.labels, b.labels) and a.bbox == b.bbox
    c = render(ident, 30.0, 12.0, size=64, seed=6)
    assert not np.array_equal(a.image, c.image)
    assert set(np.unique(a.labels)) <= set(range(len(VIEW_CLASSES_TOYWORLD)))


@pytest.mark.parametrize("ident", one_per_class(), ids=lambda i: i.class_name)
def test_foreground_exactly_labelled(ident) -> None:
    """On the chroma-key background, the non-key pixels are exactly the labelled ones."""
    rng = np.random.default_rng(0)
    for k in range(12):
        az, el = float(rng.uniform(0, 360)), float(rng.uniform(0, 90))
        r = render(ident, az, el, size=80, seed=k, background=False)
        vehicle = (r.image != np.array(KEY_COLOR, np.uint8)).any(axis=-1)
        assert np.array_equal(vehicle, r.labels > 0), (az, el)
        x1, y1, x2, y2 = r.bbox
        ys, xs = np.nonzero(vehicle)
        assert (x1, y1, x2, y2) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


@pytest.mark.parametrize("ident", one_per_class(1), ids=lambda i: i.class_name)
def test_dominant_part_follows_the_camera(ident) -> None:
    cases = [(0, 0, FRONT), (0, 15, FRONT), (180, 5, REAR), (180, 15, REAR), (90, 10, LEFT), (270, 10, RIGHT)]
    for az, el, expected in cases:
        r = render(ident, az, el, size=96, seed=1, background=False)
        assert dominant(r.labels) == expected, (ident.class_name, az, el)
    # Seen from the left, nothing of the right side shows, and vice versa.
    assert not (render(ident, 90, 10, size=96, background=False).labels == RIGHT).any()
    assert not (render(ident, 270, 10, size=96, background=False).labels == LEFT).any()
    # From above the top is the largest part and neither end shows much.
    top = render(ident, 0, 90, size=96, background=False).labels
    assert dominant(top) == TOP
    assert (top == TOP).sum() > 0.5 * (top > 0).sum()


def test_occluders_only_remove_vehicle_pixels() -> None:
    ident = sample_identity(0, 2)
    for seed in range(6):
        clean = render(ident, 60, 20, size=96, seed=seed)
        occluded = render(ident, 60, 20, size=96, seed=seed, occluders=True)
        kept = occluded.labels > 0
        assert kept.sum() < (clean.labels > 0).sum()
        assert np.array_equal(occluded.labels[kept], clean.labels[kept])
        assert occluded.bbox == clean.bbox  # the box is the vehicle's, before occluders


def test_view_to_camera_stays_nearest_to_its_view() -> None:
    rng = np.random.default_rng(0)
    for view in INTENDED_VIEWS:
        for _ in range(100):
            az, el = view_to_camera(view, rng)
            assert 0 <= az < 360 and 0 <= el <= 90
            assert nearest_view(az, el) == view
    with pytest.raises(KeyError, match="valid views"):
        view_to_camera("underneath", rng)


def test_collapse_labels_to_pven() -> None:
    labels = np.arange(len(VIEW_CLASSES_TOYWORLD)).reshape(2, 3)
    collapsed = collapse_labels(labels)
    names = [VIEW_CLASSES_PVEN[i] for i in collapsed.ravel()]
    assert names == ["background", "front", "rear", "side", "side", "top"]
    with pytest.raises(ValueError):
        collapse_labels(np.array([[7]]))


def test_render_rejects_bad_arguments() -> None:
    ident = sample_identity(0, 0)
    with pytest.raises(ValueError, match="elevation"):
        render(ident, 0, 95)
    with pytest.raises(ValueError, match="size"):
        render(ident, 0, 10, size=4)


def reference_rasterize(screen: np.ndarray, inv_depth: np.ndarray, h: int, w: int) -> np.ndarray:
    """Brute force: barycentric weights of every pixel centre for every triangle, nearest inverse depth wins."""
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    best = np.full((h, w), -1)
    zbest = np.zeros((h, w))
    for f, (a, b, c) in enumerate(screen):
        area = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
        if abs(area) < 1e-12:
            continue
        wa = ((c[0] - b[0]) * (ys - b[1]) - (c[1] - b[1]) * (xs - b[0])) / area
        wb = ((a[0] - c[0]) * (ys - c[1]) - (a[1] - c[1]) * (xs - c[0])) / area
        wc = 1 - wa - wb
        inside = (wa >= 0) & (wb >= 0) & (wc >= 0)
        z = wa * inv_depth[f, 0] + wb * inv_depth[f, 1] + wc * inv_depth[f, 2]
        win = inside & (z > zbest)
        best[win], zbest[win] = f, z[win]
    return best


def test_rasterizer_matches_brute_force_reference() -> None:
    rng = np.random.default_rng(0)
    h, w = 40, 50
    screen = rng.uniform(-10, 60, (60, 3, 2))
    inv_depth = rng.uniform(0.1, 1.0, (60, 3))
    tri, depth = rasterize(screen, inv_depth, h, w)
    ref = reference_rasterize(screen, inv_depth, h, w)
    assert np.array_equal(tri >= 0, ref >= 0)
    assert (tri == ref).mean() > 0.999  # only exact depth ties near intersections may differ
    assert tri.shape == (h, w) and (depth[tri < 0] == 0).all()


def test_contact_sheet_shows_each_identity_and_view() -> None:
    from pipeline.toyworld.contact_sheet import MASK_COLORS, contact_sheet, pick_identities

    idents = pick_identities(0)
    assert {i.class_name for i in idents} == set(CLASSES) and sum(i.twin_of is not None for i in idents) == 2
    sheet = contact_sheet(idents[:2], views=("front", "top"), size=32)
    pixels = np.asarray(sheet)
    assert sheet.height > 4 * 32 and sheet.width > 2 * 32
    # The mask colours of front and top appear (front view / top view rows).
    for name in ("front", "top"):
        color = MASK_COLORS[VIEW_CLASSES_TOYWORLD.index(name)]
        assert (pixels == color).all(axis=-1).any(), name
