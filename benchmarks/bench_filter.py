"""Filter and review throughput.

1. Filter: images/s of the filter stage with batched streaming prediction vs a per-image predict loop, same YOLO11n
   model (random weights saved to a local .pt; the network cost does not depend on the weights), same images, same
   run. Also the prediction-only ratio (images already decoded).
2. Review: export and import of one 100k-row batch CSV (every row decided), and the no-op re-import.

    python benchmarks/bench_filter.py [--quick] [--images N] [--rows N] [--imgsz PX] [--batch B]

Ends with ``RESULT speedup=... predict_speedup=... import_100k_s=... import_cpu_s=...``. Figures on a shared
2-core CPU are noisy: wall times include waiting for other processes; ``import_cpu_s`` is the import's own CPU time.
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from pathlib import Path

from data_manifests.runtime import apply_offline_env  # noqa: E402

apply_offline_env()

import numpy as np  # noqa: E402

import data_manifests as dm  # noqa: E402


def toy_images(n: int, size: int) -> list[np.ndarray]:
    """Toy-world renders, one vehicle each (16 identities from random azimuths at elevation 15)."""
    from pipeline.toyworld.synthetic import random_renders

    return [r.image for r in random_renders(n, size, seed=0, identities=16, elevation=15.0)]


def make_root(root: Path, images: list[np.ndarray]) -> None:
    from pipeline.generate.common import write_png

    gens = []
    for k, img in enumerate(images):
        iid = dm.image_id("bench", "front", k, "bench")
        path = f"generations/{iid}.png"
        write_png(root / path, img)
        gens.append({"image_id": iid, "identity_id": "bench", "intended_view": "front", "path": path, "status": "ok"})
    dm.upsert(root, "generations", gens)


class PerImage:
    """The same detector, one ``predict`` call per image (the reference)."""

    def __init__(self, det):
        self.det = det
        self.ref, self.names = det.ref, det.names

    def predict(self, images):
        return [self.det.predict([im])[0] for im in images]


def bench_filter(n: int, imgsz: int, batch: int, tmp: Path) -> tuple[float, float, dict]:
    import torch
    from ultralytics import YOLO

    from pipeline.filter import FilterRules, UltralyticsDetector, filter_images

    weights = tmp / "yolo11n-random.pt"
    YOLO("yolo11n.yaml").save(str(weights))
    det = UltralyticsDetector(weights, imgsz=imgsz, conf=0.25)
    images = toy_images(n, 128)
    det.predict(images[:batch])  # warm-up (predictor set-up, first-call allocations)
    det.predict(images[:1])

    # Prediction only, images in memory.
    t = time.perf_counter()
    for im in images:
        det.predict([im])
    t_single = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(0, n, batch):
        det.predict(images[i : i + batch])
    t_batched = time.perf_counter() - t

    # The whole stage: decode, predict, rules, crops, manifest writes.
    rules = FilterRules(min_area=0.0, vehicle_classes=None)
    stage = {}
    for name, detector, bs in (("per_image", PerImage(det), 1), ("batched", det, batch)):
        root = tmp / f"root_{name}"
        make_root(root, images)
        t = time.perf_counter()
        counts = filter_images(root=root, detector=detector, rules=rules, batch_size=bs, progress=False)
        stage[name] = time.perf_counter() - t
        assert counts["processed"] == n, counts
    print(
        f"filter, {n} toy images 128 px, imgsz {imgsz}, batch {batch}, "
        f"torch threads {torch.get_num_threads()} (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')})"
    )
    print(
        f"  predict only : per-image {n / t_single:7.1f} img/s | batched {n / t_batched:7.1f} img/s"
        f" | x{t_single / t_batched:.2f}"
    )
    print(
        f"  whole stage  : per-image {n / stage['per_image']:7.1f} img/s | batched {n / stage['batched']:7.1f} img/s"
        f" | x{stage['per_image'] / stage['batched']:.2f}"
    )
    return stage["per_image"] / stage["batched"], t_single / t_batched, stage


def bench_import(rows: int, tmp: Path) -> dict[str, float]:
    from pipeline.review import export_batches, import_review_csv

    root = tmp / "review_root"
    # 1. Manifests for `rows` kept images (placeholder image bytes: import hashes them, never decodes them).
    t = time.perf_counter()
    gens, dets = [], []
    for k in range(rows):
        iid = f"{k:016x}"
        ident = f"id{k // 50:05d}"
        path = f"g/{k % 1000:03d}/{iid}.png"
        p = root / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"image %d" % k)
        gens.append({"image_id": iid, "identity_id": ident, "intended_view": "front", "path": path, "status": "ok"})
        dets.append({"image_id": iid, "status": "ok", "conf": 0.5 + (k % 50) / 100, "crop_path": path})
    dm.upsert(root, "generations", gens)
    dm.upsert(root, "detections", dets)
    setup = time.perf_counter() - t
    # 2. Export one batch of every row.
    t = time.perf_counter()
    [bid] = export_batches(root, tmp / "out", "all", rows)
    t_export = time.perf_counter() - t
    path = tmp / "out" / f"batch_{bid}.csv"
    with open(path, newline="", encoding="utf-8") as f:
        data = list(csv.DictReader(f))
    for i, r in enumerate(data):
        r["decision"] = ("accept", "reject", "unsure")[i % 3]
        r["reviewer"] = "bench"
        r["identity_ok"] = "yes"
    with open(path, "w", newline="", encoding="utf-8-sig") as f:  # as a spreadsheet saves it: BOM + CRLF
        w = csv.DictWriter(f, fieldnames=list(data[0]), lineterminator="\r\n")
        w.writeheader()
        w.writerows(data)
    # 3. Import (validate everything incl. sha256 of every image, then upsert), then the no-op re-import.
    t, c = time.perf_counter(), time.process_time()
    report = import_review_csv(path, root)
    t_import, c_import = time.perf_counter() - t, time.process_time() - c
    assert report.ok and report.updated == rows, str(report)[:2000]
    t = time.perf_counter()
    again = import_review_csv(path, root)
    t_again = time.perf_counter() - t
    assert again.ok and again.updated == 0
    print(f"review, {rows} rows (set-up {setup:.1f} s)")
    print(
        f"  export {t_export:6.2f} s | import {t_import:6.2f} s wall, {c_import:.2f} s CPU (all threads; target < 20 s)"
        f" | no-op re-import {t_again:6.2f} s"
    )
    return {"export": t_export, "import": t_import, "import_cpu": c_import, "reimport": t_again}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="96 images, 10k rows")
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--imgsz", type=int, default=128, help="detector input size (the toy profile uses 128)")
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    if args.quick:
        args.images, args.rows = 96, 10_000
    import logging

    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench_filter_") as d:
        tmp = Path(d)
        speedup, predict_speedup, _ = bench_filter(args.images, args.imgsz, args.batch, tmp)
        review = bench_import(args.rows, tmp)
    key = "import_100k_s" if args.rows == 100_000 else f"import_{args.rows}_s"
    print(
        f"RESULT speedup={speedup:.2f} predict_speedup={predict_speedup:.2f} {key}={review['import']:.2f} "
        f"import_cpu_s={review['import_cpu']:.2f} export_s={review['export']:.2f} reimport_s={review['reimport']:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
