"""Batched view-SAM inference vs a naive ``SamPredictor`` loop: same model, same images and boxes, same run.

The naive reference is what one writes with the stock API: per image ``set_image`` (one encoder pass), then
``predict(box, multimask_output=False)`` for the vehicle token and ``predict(box, multimask_output=True)`` for the
view tokens. The batched path (``ViewSegmenter.predict_logits``, used by the ``segment`` stage) encodes
``--batch`` images per pass and decodes every token of every prompt in one decoder pass.

    python benchmarks/bench_segment.py [--quick] [--images 64] [--batch 16] [--checkpoint PATH] [--threads 1]

Timings are wall-clock on a shared CPU: the best of ``--repeats`` interleaved runs is reported for each path.
Ends with ``RESULT speedup=... max_abs_diff=...``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from data_manifests.runtime import apply_offline_env  # noqa: E402

apply_offline_env()

from segment_anything import SamPredictor  # noqa: E402

from data_manifests import VIEW_CLASSES_PVEN  # noqa: E402
from pipeline.segment.model import ModelSpec, build_segmenter, load_segmenter  # noqa: E402


def make_inputs(n: int, size: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Toy-world renders from random cameras and their true boxes."""
    from pipeline.toyworld.synthetic import random_renders

    images, boxes = [], []
    for r in random_renders(n, size, seed):
        ys, xs = np.nonzero(r.labels > 0)
        images.append(r.image)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return images, np.asarray(boxes, dtype=np.float64)


@torch.no_grad()
def naive(segmenter, images: list[np.ndarray], boxes: np.ndarray) -> list[torch.Tensor]:
    predictor = SamPredictor(segmenter.sam)
    out = []
    for image, box in zip(images, boxes):
        predictor.set_image(image)
        vehicle, _, _ = predictor.predict(box=box, multimask_output=False, return_logits=True)
        views, _, _ = predictor.predict(box=box, multimask_output=True, return_logits=True)
        out.append(torch.from_numpy(np.concatenate([vehicle, views], axis=0)))
    return out


def timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="16 images, 2 repeats")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--checkpoint", default=None, help="a fine-tuned checkpoint (default: random toy SAM)")
    args = parser.parse_args()
    if args.quick:
        args.images, args.repeats = 16, 2
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.checkpoint:
        segmenter, sha = load_segmenter(args.checkpoint)
        model = f"checkpoint {args.checkpoint} (sam:{sha[:12]})"
    else:
        segmenter = build_segmenter(ModelSpec(), VIEW_CLASSES_PVEN).eval()
        model = "random toy SAM (toy profile architecture)"
    images, boxes = make_inputs(args.images, args.size, seed=0)
    print(f"model: {model}; {args.images} images {args.size}x{args.size}; batch {args.batch}; threads {args.threads}")

    # Warm-up both paths once (allocator, lazy init), then interleave repeats so load changes hit both alike.
    naive(segmenter, images[:2], boxes[:2])
    segmenter.predict_logits(images[:2], boxes[:2], args.batch)
    naive_times, batched_times = [], []
    for _ in range(args.repeats):
        t, ref = timed(naive, segmenter, images, boxes)
        naive_times.append(t)
        t, got = timed(segmenter.predict_logits, images, boxes, args.batch)
        batched_times.append(t)
    max_abs = max(float((a - b).abs().max()) for a, b in zip(ref, got))
    agree = np.mean([float(((a[0] > 0) == (b[0] > 0)).float().mean()) for a, b in zip(ref, got)])
    naive_ips, batched_ips = args.images / min(naive_times), args.images / min(batched_times)
    speedup = batched_ips / naive_ips
    runs = {
        name: ", ".join(f"{t:.2f}s" for t in ts) for name, ts in (("naive", naive_times), ("batched", batched_times))
    }
    print(f"naive SamPredictor loop : {naive_ips:8.1f} images/s  (runs: {runs['naive']})")
    print(f"batched (stage)         : {batched_ips:8.1f} images/s  (runs: {runs['batched']})")
    print(f"speedup {speedup:.2f}x; max |logit difference| {max_abs:.2e}; vehicle-mask pixel agreement {agree:.6f}")
    print(
        f"RESULT speedup={speedup:.2f} max_abs_diff={max_abs:.2e} naive_ips={naive_ips:.1f} "
        f"batched_ips={batched_ips:.1f} images={args.images} batch={args.batch} threads={args.threads}"
    )


if __name__ == "__main__":
    main()
