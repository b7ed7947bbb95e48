"""Manifest store at DiffVERI scale: write, read, validate and upsert 10% of a 1.7M-row ``generations`` table.

Targets on a 2-core machine: each step under 15 s, peak RSS under 3 GB.
Run: ``python benchmarks/bench_manifests.py [--rows N]``. The last line is ``RESULT key=value ...``.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401 - pa.compute

import data_manifests as dm


def synthetic_generations(n: int, seed: int = 0) -> pa.Table:
    """A ``generations`` table of ``n`` rows with realistic strings (ids, prompts, paths, hashes)."""
    rng = np.random.default_rng(seed)
    # Python strings go straight into Arrow buffers; numpy fixed-width unicode would cost 4 bytes a character.
    ids = pa.array([f"{(i * 2654435761) % (1 << 62):016x}" for i in range(n)])
    identity = pa.array([f"id{i // 100:06d}" for i in range(n)])
    view_idx = rng.integers(0, len(dm.INTENDED_VIEWS), n)
    views = pa.DictionaryArray.from_arrays(pa.array(view_idx, pa.int32()), pa.array(dm.INTENDED_VIEWS)).cast(
        pa.string()
    )
    prompt = pa.compute.binary_join_element_wise("a photo of sks car, ", views, "")
    paths = pa.compute.binary_join_element_wise("images/", ids, ".png", "")
    sha = pa.array([f"{v:016x}" * 4 for v in rng.integers(0, 1 << 62, n).tolist()])
    return pa.table(
        {
            "image_id": ids,
            "identity_id": identity,
            "intended_view": views,
            "prompt": prompt,
            "negative_prompt": pa.array(["blurry, cropped, deformed"] * n),
            "seed": rng.integers(0, 1 << 31, n),
            "steps": np.full(n, 30, dtype=np.int32),
            "guidance": np.full(n, 7.5, dtype=np.float32),
            "scheduler": pa.array(["DDIMScheduler"] * n),
            "width": np.full(n, 512, dtype=np.int32),
            "height": np.full(n, 512, dtype=np.int32),
            "path": paths,
            "sha256": sha,
            "model_ref": pa.array(["diffusion:sd15@0123abcd"] * n),
            "status": pa.array(["ok"] * n),
        }
    )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_712_703, help="table size (default: DiffVERI's 1,712,703)")
    args = parser.parse_args()
    table = synthetic_generations(args.rows)
    print(f"synthetic generations table: {table.num_rows:,} rows, {table.nbytes / 2**20:.0f} MiB in memory")
    with tempfile.TemporaryDirectory() as root:
        t = time.perf_counter()
        dm.write_table(root, "generations", table)
        write_s = time.perf_counter() - t
        t = time.perf_counter()
        back = dm.read_table(root, "generations")
        read_s = time.perf_counter() - t
        assert back.num_rows == table.num_rows
        del back
        # Files are synthetic, so existence checks are off; every other check runs on every row.
        t = time.perf_counter()
        problems = dm.validate(root, check_files=False)
        validate_s = time.perf_counter() - t
        assert problems == [], problems[:3]
        rng = np.random.default_rng(1)
        chosen = np.sort(rng.choice(table.num_rows, size=table.num_rows // 10, replace=False))
        changed = table.take(chosen).set_column(
            table.schema.get_field_index("status"), "status", pa.array(["rejected"] * len(chosen))
        )
        changed = changed.append_column("reason", pa.array(["too_small"] * len(chosen)))
        t = time.perf_counter()
        result = dm.upsert(root, "generations", changed)
        upsert_s = time.perf_counter() - t
        assert result.updated == len(chosen) and result.inserted == 0
        assert dm.status_counts(root, "generations")["rejected/too_small"] == len(chosen)
    rss = peak_rss_mb()
    print(f"write    {write_s:6.2f} s  (target < 15 s)")
    print(f"read     {read_s:6.2f} s  (target < 15 s)")
    print(f"validate {validate_s:6.2f} s  (target < 15 s; file-existence checks off)")
    print(f"upsert   {upsert_s:6.2f} s  (target < 15 s; {len(chosen):,} rows = 10%)")
    print(f"peak RSS {rss:6.0f} MB (target < 3000 MB)")
    print(
        f"RESULT write_s={write_s:.2f} read_s={read_s:.2f} validate_s={validate_s:.2f} upsert_s={upsert_s:.2f} "
        f"peak_rss_mb={rss:.0f}"
    )


if __name__ == "__main__":
    main()
