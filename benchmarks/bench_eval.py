"""``evaluate_rank`` at VeRi-776 size against the straightforward per-query loop, and a 10k x 100k problem in chunks.

Targets (issue 9): identical results and >= 10x faster than the loop on a random 1678 x 11579 problem (the VeRi-776
query/gallery sizes); a 10k x 100k problem whose distances are computed chunk by chunk from features with peak RSS
under 4 GB. Random distances are the worst case for ranking (matches spread over the whole list).
Run: ``python benchmarks/bench_eval.py [--quick]``. The last line is ``RESULT key=value ...``.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from vehiclemae.reid.metrics import FeatureDistances, evaluate_rank, evaluate_rank_loop


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def random_problem(num_q: int, num_g: int, num_ids: int, num_cams: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    return (
        rng.integers(0, num_ids, num_q),
        rng.integers(0, num_ids, num_g),
        rng.integers(0, num_cams, num_q),
        rng.integers(0, num_cams, num_g),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2k x 20k instead of 10k x 100k for the large problem")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the matmul of the large problem)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of the VeRi-size comparison (min)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    # 1. VeRi-776 size: 1678 queries x 11579 gallery, 200 ids, 20 cameras; both implementations on the same matrix.
    q_pids, g_pids, q_cams, g_cams = random_problem(1678, 11579, 200, 20, seed=0)
    dist = np.random.default_rng(1).random((1678, 11579), dtype=np.float32)
    # Interleaved repeats, minimum of each: the machine is shared, and the minimum is the least disturbed run.
    t_fast = t_loop = float("inf")
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        fast = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams)
        t_fast = min(t_fast, time.perf_counter() - t0)
        t0 = time.perf_counter()
        loop = evaluate_rank_loop(dist, q_pids, g_pids, q_cams, g_cams)
        t_loop = min(t_loop, time.perf_counter() - t0)
    identical = (
        fast["num_valid_queries"] == loop["num_valid_queries"]
        and abs(fast["mAP"] - loop["mAP"]) < 1e-12
        and abs(fast["mINP"] - loop["mINP"]) < 1e-12
        and bool(np.array_equal(fast["cmc"], loop["cmc"]))
    )
    speedup = t_loop / t_fast
    print(
        f"VeRi-size 1678x11579 (min of {args.repeats}): evaluate_rank {t_fast:.3f} s, per-query loop {t_loop:.3f} s, "
        f"speedup {speedup:.1f}x"
    )
    print(f"  identical results: {identical} (mAP {fast['mAP']:.6f} vs {loop['mAP']:.6f})")
    del dist

    # 2. Large: distances computed lazily from 64-d features, one chunk of rows at a time.
    num_q, num_g = (2_000, 20_000) if args.quick else (10_000, 100_000)
    q_pids, g_pids, q_cams, g_cams = random_problem(num_q, num_g, max(10, num_g // 50), 20, seed=2)
    gen = torch.Generator().manual_seed(3)
    qf, gf = torch.randn(num_q, 64, generator=gen), torch.randn(num_g, 64, generator=gen)
    t0 = time.perf_counter()
    large = evaluate_rank(FeatureDistances(qf, gf), q_pids, g_pids, q_cams, g_cams, chunk_elements=8_000_000)
    t_large = time.perf_counter() - t0
    rss = peak_rss_mb()
    print(
        f"large {num_q}x{num_g}: {t_large:.1f} s ({num_q * num_g / t_large / 1e6:.1f} M pairs/s), "
        f"mAP {large['mAP']:.4f}, valid queries {large['num_valid_queries']}, peak RSS {rss:.0f} MB (target < 4096)"
    )
    print(
        f"RESULT speedup={speedup:.2f} identical={int(identical)} t_fast_s={t_fast:.3f} t_loop_s={t_loop:.3f} "
        f"large={num_q}x{num_g} t_large_s={t_large:.1f} peak_rss_mb={rss:.0f}"
    )


if __name__ == "__main__":
    main()
