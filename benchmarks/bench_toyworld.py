"""Toy-world rendering throughput at 128x128, one process, masks included (issue 3 target: >= 200 images/s).

Measures, on the same cameras and seeds:
  * ``plain``   — render on the chroma-key background (mesh, camera, z-buffer, shading, label map);
  * ``full``    — the real thing: random scene background, sensor noise, label map (the figure the target is for);
  * ``export``  — ``full`` plus what ``diffveri toy world`` adds per image: PNG encoding and the RLE masks;
  * ``naive``   — reference: ``full`` with the rasteriser replaced by a per-triangle loop over all pixels (what the
    vectorised scanline rasteriser replaces), on fewer images.

Run: ``python benchmarks/bench_toyworld.py [--quick] [--size 128]``. The machine is shared: figures are noisy.
"""

from __future__ import annotations

import argparse
import io
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import pipeline.toyworld.renderer as render_module  # noqa: E402
from data_manifests import INTENDED_VIEWS, VIEW_CLASSES_TOYWORLD, rle  # noqa: E402
from pipeline.toyworld import render, sample_identity, view_to_camera  # noqa: E402
from pipeline.toyworld.mesh import build_mesh  # noqa: E402


def naive_rasterize(screen: np.ndarray, inv_depth: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference: for each triangle, barycentric weights of every pixel centre of the image."""
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    best = np.full((h, w), -1, np.int64)
    zbest = np.zeros((h, w))
    for f, (a, b, c) in enumerate(screen):
        area = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
        if abs(area) < 1e-12:
            continue
        wa = ((c[0] - b[0]) * (ys - b[1]) - (c[1] - b[1]) * (xs - b[0])) / area
        wb = ((a[0] - c[0]) * (ys - c[1]) - (a[1] - c[1]) * (xs - c[0])) / area
        wc = 1 - wa - wb
        z = wa * inv_depth[f, 0] + wb * inv_depth[f, 1] + wc * inv_depth[f, 2]
        win = (wa >= 0) & (wb >= 0) & (wc >= 0) & (z > zbest)
        best[win], zbest[win] = f, z[win]
    return best, zbest


def workload(n: int, n_identities: int = 20) -> list[tuple]:
    rng = np.random.default_rng(0)
    idents = [sample_identity(0, i) for i in range(n_identities)]
    for ident in idents:
        build_mesh(ident)  # meshes are cached per identity; build them outside the timed loops
    jobs = []
    for k in range(n):
        az, el = view_to_camera(INTENDED_VIEWS[k % len(INTENDED_VIEWS)], rng)
        jobs.append((idents[k % n_identities], az, el, k))
    return jobs


def timed(jobs: list[tuple], size: int, fn) -> tuple[float, float]:
    """``(images per CPU second of this process, images per wall-clock second)``. On a shared machine the wall
    figure counts time other processes held the core; the CPU figure is what one dedicated core would do."""
    wall, cpu = time.perf_counter(), time.process_time()
    for ident, az, el, seed in jobs:
        fn(ident, az, el, size, seed)
    return len(jobs) / (time.process_time() - cpu), len(jobs) / (time.perf_counter() - wall)


def export_one(ident, az, el, size, seed) -> None:
    r = render(ident, az, el, size, seed)
    buffer = io.BytesIO()
    Image.fromarray(r.image).save(buffer, format="PNG", compress_level=1)
    rle.label_map_to_rles(r.labels, VIEW_CLASSES_TOYWORLD)
    rle.encode(r.labels > 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images (about 5 s)")
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    n = 150 if args.quick else 600
    jobs = workload(n)
    render(*jobs[0][:3], args.size)  # warm-up (noise bank, imports)
    plain = timed(jobs, args.size, lambda i, a, e, s, k: render(i, a, e, s, k, background=False))
    full = timed(jobs, args.size, lambda i, a, e, s, k: render(i, a, e, s, k))
    export = timed(jobs, args.size, export_one)
    fast_rasterize = render_module.rasterize
    render_module.rasterize = naive_rasterize  # benchmark-only swap to time the reference path
    try:
        naive_jobs = jobs[: max(10, n // 20)]
        naive = timed(naive_jobs, args.size, lambda i, a, e, s, k: render(i, a, e, s, k))
    finally:
        render_module.rasterize = fast_rasterize
    # Parity of the two rasterisers on the timed images (labels identical).
    render_module.rasterize = naive_rasterize
    try:
        ref_labels = [render(i, a, e, args.size, k).labels for i, a, e, k in jobs[:10]]
    finally:
        render_module.rasterize = fast_rasterize
    fast_labels = [render(i, a, e, args.size, k).labels for i, a, e, k in jobs[:10]]
    agree = float(np.mean([(f == r).mean() for f, r in zip(fast_labels, ref_labels)]))
    load = os.getloadavg()[0]
    print(f"toy-world rendering at {args.size}x{args.size}, one process, {n} images over 20 identities")
    print(f"load average {load:.1f} on {os.cpu_count()} cores (wall figures suffer when it exceeds the core count)")
    print(f"{'':46s}{'per CPU s':>12s}{'per wall s':>12s}")
    rows = [
        ("plain background (raster + shading + labels)", plain),
        ("full scene (the target figure)", full),
        ("full + PNG + RLE masks (export per image)", export),
        ("reference: naive per-triangle rasteriser", naive),
    ]
    for label, (cpu, wall) in rows:
        print(f"  {label:44s}{cpu:12.1f}{wall:12.1f}")
    print(f"  full vs target 200/s: {full[0] / 200:.2f}x (CPU), {full[1] / 200:.2f}x (wall)")
    print(f"  vectorised vs naive rasteriser: {full[0] / naive[0]:.1f}x; label agreement {agree * 100:.3f} %")
    print(
        f"RESULT images_per_s={full[0]:.1f} wall_images_per_s={full[1]:.1f} plain_images_per_s={plain[0]:.1f} "
        f"export_images_per_s={export[0]:.1f} naive_images_per_s={naive[0]:.1f} "
        f"speedup_vs_naive={full[0] / naive[0]:.1f} target=200 meets_target={full[0] >= 200} "
        f"label_agreement={agree:.5f} size={args.size} load={load:.1f}"
    )


if __name__ == "__main__":
    main()
