"""Pre-training data at paper scale: memory of the ``diffveri`` dataset object and of its DataLoader workers.

    python benchmarks/bench_loader_scale.py [--rows 1712703] [--workers 4] [--root DIR] [--batches 40]

Builds a ``diffveri`` table of ``--rows`` rows (images repeat: ``--unique`` distinct 64 px renders with their view and
vehicle RLEs; ids, identities and paths are distinct per row), written through ``data_manifests`` from pyarrow arrays
(in a child process, so its memory does not count). Then, in this process: RSS before and after building
``DiffVERIDataset`` over it (``rss_mb`` is the process's RSS after the build, imports included), a DataLoader with
``--workers`` worker processes (forkserver, as pre-training uses) reading ``--batches`` batches, and each worker's RSS
minus that of a worker of an empty dataset of the same item shapes (``worker_extra_mb``, the largest over workers).
``loader_ips``: items per second over those batches (the machine is shared; expect noise).

Targets (issue 16): ``rss_mb`` <= 800 and ``worker_extra_mb`` <= 200 per worker at 1.7M rows.
The last line is ``RESULT rss_mb=... worker_extra_mb=... loader_ips=...``.
"""

from __future__ import annotations

import argparse
import gc
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import torch
from torch.utils.data import DataLoader, Dataset

PAPER_ROWS = 1_712_703
VIEWS = ("front", "rear", "left", "right")


def _mb(nbytes: int) -> float:
    return nbytes / 2**20


def rss_mb(pid: int | None = None) -> float:
    return _mb(psutil.Process(pid).memory_info().rss)


def build_table(root: Path, rows: int, unique: int, size: int = 64) -> None:
    """Write ``unique`` box renders and a ``diffveri`` table of ``rows`` rows cycling over them."""
    import pyarrow as pa
    from PIL import Image

    from data_manifests import VIEW_CLASSES_TOYWORLD, rle, write_table
    from data_manifests.schemas import get_spec

    schema = get_spec("diffveri").schema
    (root / "images").mkdir(parents=True, exist_ok=True)
    paths, vehicle, classes, views = [], [], [], []
    rng = np.random.default_rng(0)
    for u in range(unique):
        view = VIEWS[u % len(VIEWS)]
        labels = np.zeros((size, size), np.int64)
        labels[size // 3 : size - size // 6, size // 8 : size - size // 8] = VIEW_CLASSES_TOYWORLD.index(view)
        labels[size // 4 : size // 3, size // 4 : size - size // 4] = VIEW_CLASSES_TOYWORLD.index("top")
        image = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        image[labels > 0] = (40 + 3 * u) % 255
        path = f"images/u{u:05d}.png"
        Image.fromarray(image).save(root / path)
        present = [c for c in range(len(VIEW_CLASSES_TOYWORLD)) if c == 0 or (labels == c).any()]
        paths.append(path)
        vehicle.append(rle.encode(labels > 0))
        classes.append([VIEW_CLASSES_TOYWORLD[c] for c in present])
        views.append([rle.encode(labels == c) for c in present])
    take = pa.array(np.arange(rows) % unique)
    field = {f.name: f.type for f in schema}
    ids = [f"{i:016x}" for i in range(rows)]
    table = pa.table(
        {
            "image_id": pa.array(ids, pa.string()),
            "identity_id": pa.array([f"v{i // 20:07d}" for i in range(rows)], pa.string()),
            "split": pa.array(["train"] * rows, pa.string()),
            "path": pa.array(paths, pa.string()).take(take),
            "width": pa.array(np.full(rows, size, np.int32)),
            "height": pa.array(np.full(rows, size, np.int32)),
            "dominant_view": pa.array(VIEWS, pa.string()).take(pa.array(np.arange(rows) % unique % len(VIEWS))),
            "vehicle_rle": pa.array(vehicle, field["vehicle_rle"]).take(take),
            "view_classes": pa.array(classes, field["view_classes"]).take(take),
            "view_rles": pa.array(views, field["view_rles"]).take(take),
            "status": pa.array(["ok"] * rows, pa.string()),
        }
    )
    write_table(root, "diffveri", table)


class EmptyItems(Dataset):
    """Items of the pre-training shapes made of zeros: the worker baseline (torch only, no data)."""

    def __init__(self, n: int, size: int) -> None:
        self.n, self.size = n, size

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        s = self.size
        return {"image": torch.zeros(3, s, s), "labels": torch.zeros(s, s, dtype=torch.int64), "index": torch.tensor(i)}


def run_loader(dataset: Dataset, workers: int, batches: int, batch_size: int) -> tuple[list[float], float]:
    """Read ``batches`` shuffled batches; returns each worker's RSS at the end and the items per second."""
    order = np.random.default_rng(0).permutation(len(dataset))[: batches * batch_size].tolist()
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=order,
        num_workers=workers,
        persistent_workers=True,
        multiprocessing_context="forkserver",
    )
    it = iter(loader)
    next(it)  # workers started and warm
    t0 = time.perf_counter()
    n = 0
    for batch in it:
        n += len(batch["index"])
    ips = n / max(time.perf_counter() - t0, 1e-9)
    rss = [rss_mb(w.pid) for w in it._workers]  # still alive: persistent workers
    del it, loader
    return rss, ips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=PAPER_ROWS)
    parser.add_argument("--unique", type=int, default=256, help="distinct images the rows cycle over")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--img-size", type=int, default=64)
    parser.add_argument("--root", default=None, help="reuse (or build into) this data root")
    parser.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    root = Path(args.root) if args.root else Path(tempfile.mkdtemp(prefix="bench-loader-scale-"))
    if args.build_only:
        build_table(root, args.rows, args.unique)
        return
    try:
        measure(root, args)
    finally:
        if not args.root:
            shutil.rmtree(root, ignore_errors=True)


def measure(root: Path, args: argparse.Namespace) -> None:
    if not (root / "manifests" / "diffveri").is_dir():
        t0 = time.perf_counter()
        cmd = [sys.executable, __file__, "--build-only", "--root", str(root), "--rows", str(args.rows)]
        subprocess.run([*cmd, "--unique", str(args.unique)], check=True)
        print(f"built {args.rows} rows in {root} in {time.perf_counter() - t0:.1f} s")

    from vehiclemae.data import DiffVERIDataset

    gc.collect()
    before = rss_mb()
    t0 = time.perf_counter()
    dataset = DiffVERIDataset(
        root, img_size=args.img_size, view_classes="toyworld", patch_size=8, mask_ratio=0.75, seed=0
    )
    build_s = time.perf_counter() - t0
    gc.collect()
    after = rss_mb()
    pickled_kb = len(pickle.dumps(dataset)) / 1024
    print(
        f"dataset: {len(dataset)} rows in {build_s:.1f} s; RSS {before:.0f} MB before, {after:.0f} MB after; "
        f"pickle {pickled_kb:.1f} kB"
    )
    base_rss, _ = run_loader(EmptyItems(len(dataset), args.img_size), args.workers, 4, args.batch_size)
    data_rss, ips = run_loader(dataset, args.workers, args.batches, args.batch_size)
    extra = max(d - min(base_rss) for d in data_rss)
    print(f"workers: RSS {[round(r) for r in data_rss]} MB (empty-dataset workers {[round(r) for r in base_rss]} MB)")
    print(
        f"RESULT rss_mb={after:.0f} worker_extra_mb={extra:.0f} loader_ips={ips:.0f} rows={len(dataset)} "
        f"workers={args.workers} build_s={build_s:.1f} dataset_mb={after - before:.0f} pickle_kb={pickled_kb:.1f}"
    )


if __name__ == "__main__":
    main()
