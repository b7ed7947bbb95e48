"""Overhead of the Prefect flow over calling the stage functions directly, on the same toy build in one run.

Both sides build a fresh data root from the same toy world: subjects -> synthesize (toy-world renders) -> filter
(YOLO11n) -> review (auto). The flow side runs ``build_diffveri`` with one shard per stage (the same work as the
direct calls) against a Prefect server started before timing. Target: overhead_ratio <= 1.2.
Run: ``python benchmarks/bench_flow.py [--identities N] [--images-per-view K]``. Last line: ``RESULT ...``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from data_manifests.runtime import apply_offline_env

apply_offline_env()

import data_manifests as dm  # noqa: E402
from pipeline.config import load_config  # noqa: E402
from pipeline.stages import get_stage  # noqa: E402

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "pipeline" / "toy.yaml"
STAGES = ["subjects", "synthesize", "filter", "review"]


def overrides(images_per_view: int) -> list[str]:
    return [
        f"synthesize.plan=[{{backend: toyworld, images_per_view: {images_per_view}}}]",
        "filter.weights=yolo11n.yaml",  # random weights, built offline: the same model on both sides
    ]


def fresh_root(world: Path, parent: Path, name: str) -> Path:
    root = parent / name
    shutil.copytree(world, root / "world")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=12)
    parser.add_argument("--images-per-view", type=int, default=6)
    args = parser.parse_args()
    from prefect.testing.utilities import prefect_test_harness

    from flows.build import build_diffveri
    from pipeline.toyworld.export import ToyworldSettings, build_toyworld

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        build_toyworld(
            tmp / "world", ToyworldSettings(identities=args.identities, images_per_identity=2), progress=False
        )
        cfg = load_config(CONFIG, overrides(args.images_per_view))
        # Warm imports and model caches on a throwaway root, so neither side pays first-use costs.
        warm = fresh_root(tmp / "world", tmp, "warm")
        for stage in STAGES:
            get_stage(stage)(cfg, warm, None)

        direct = fresh_root(tmp / "world", tmp, "direct")
        t = time.perf_counter()
        for stage in STAGES:
            get_stage(stage)(cfg, direct, None)
        direct_s = time.perf_counter() - t

        with prefect_test_harness(server_startup_timeout=180):
            # Warm the flow side the same way (first flow run of a process sets up clients and the database).
            build_diffveri(
                config=str(CONFIG),
                root=str(fresh_root(tmp / "world", tmp, "warm-flow")),
                stages=STAGES,
                shard_size=args.identities,
                overrides=overrides(args.images_per_view),
            )
            flowed = fresh_root(tmp / "world", tmp, "flow")
            t = time.perf_counter()
            build_diffveri(
                config=str(CONFIG),
                root=str(flowed),
                stages=STAGES,
                shard_size=args.identities,
                overrides=overrides(args.images_per_view),
            )
            flow_s = time.perf_counter() - t
        same = all(
            sorted(dm.existing_keys(direct, table)) == sorted(dm.existing_keys(flowed, table))
            for table in ("subjects", "generations", "detections")
        )
        n_images = dm.read_table(direct, "generations").num_rows
    ratio = flow_s / direct_s
    print(f"toy build: {args.identities} identities, {n_images} images, stages {' -> '.join(STAGES)}")
    print(f"direct stage calls {direct_s:7.2f} s")
    print(f"prefect flow       {flow_s:7.2f} s   (server already up; target ratio <= 1.2)")
    print(f"same manifests: {same}")
    print(
        f"RESULT overhead_ratio={ratio:.3f} flow_s={flow_s:.2f} direct_s={direct_s:.2f} images={n_images} "
        f"same_keys={int(same)}"
    )


if __name__ == "__main__":
    main()
