"""End-to-end flow tests on real stages: Dask vs threads, and a worker killed mid-run (slow)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

import data_manifests as dm
from flows.build import build_diffveri

# Long enough (about 1000 rendered images) to be killed in the middle; rows are flushed every 64 images.
LONG_RENDER = [
    "synthesize.plan=[{backend: toyworld, images_per_view: 14}]",
    "synthesize.width=64",
    "synthesize.height=64",
]
CONFIG = Path(__file__).resolve().parents[2] / "configs" / "pipeline" / "toy.yaml"
PROJECT = CONFIG.parents[2]
# Only rendered images (no diffusion model needed) and a random YOLO built from its yaml.
RENDER_ONLY = [
    "synthesize.plan=[{backend: toyworld, images_per_view: 1}]",
    "synthesize.views=[front, rear, left, right]",
    "filter.weights=yolo11n.yaml",
]


def make_world(root: Path, identities: int = 4) -> None:
    from pipeline.toyworld.export import ToyworldSettings, build_toyworld

    settings = ToyworldSettings(identities=identities, images_per_identity=4, size=64, detection_images=4)
    build_toyworld(root / "world", settings, progress=False)


def table_rows(root: Path, table: str) -> list[str]:
    return sorted(str(sorted(r.items())) for r in dm.read_rows(root, table))


@pytest.mark.slow
def test_dask_cluster_builds_the_same_manifests_as_threads(tmp_path: Path, prefect_harness: None) -> None:
    roots = {kind: tmp_path / kind for kind in ("threads", "dask")}
    for kind, root in roots.items():
        make_world(root)
        build_diffveri(
            config=str(CONFIG),
            root=str(root),
            stages=["subjects", "synthesize", "filter"],
            shard_size=1,
            overrides=[*RENDER_ONLY, f"runtime.task_runner={kind}", "runtime.dask_workers=2"],
        )
    for table in ("subjects", "generations", "segments_gt"):
        a, b = table_rows(roots["threads"], table), table_rows(roots["dask"], table)
        assert a and len(a) == len(b)
        if table != "subjects":  # subjects differ only in the absolute source paths they record
            assert a == b, table
    detections = [
        [
            {k: v for k, v in r.items() if k != "crop_path"}
            for r in sorted(dm.read_rows(root, "detections"), key=lambda r: r["image_id"])
        ]
        for root in roots.values()
    ]
    assert detections[0] == detections[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_worker_killed_mid_run_then_rerun_completes(tmp_path: Path) -> None:
    """Real local server + process worker; SIGKILL the worker while the deployment runs; run again."""
    root = tmp_path / "data"
    make_world(root, identities=8)
    env = dict(os.environ, PREFECT_HOME=str(tmp_path / "prefect"), DIFFVERI_STATE=str(tmp_path / "state"))
    env.pop("PREFECT_API_URL", None)
    port = _free_port()
    run = lambda *args, **kw: subprocess.run(
        [sys.executable, *args],
        env=env,
        cwd=PROJECT,
        text=True,  # noqa: E731
        capture_output=True,
        timeout=600,
        **kw,
    )
    up = run("-m", "flows.server", "up", "--data", str(root), "--port", str(port))
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        env["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
        params = [
            "--param",
            'stages=["subjects", "synthesize"]',
            "--param",
            "shard_size=1",
            "--param",
            "overrides=" + str(LONG_RENDER).replace("'", '"'),
        ]
        prefect = str(Path(sys.executable).parent / "prefect")
        subprocess.run(
            [prefect, "deployment", "run", "build-diffveri/toy", *params],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        # 1. Wait until the run has written some, but not all, images; then kill the worker's process group.
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if dm.table_exists(root, "generations") and dm.read_table(root, "generations").num_rows >= 64:
                break
            time.sleep(0.5)
        else:
            pytest.fail("the deployment never started writing images")
        # The worker starts each flow run in a process of its own session: kill the whole tree, as a crash would.
        worker = psutil.Process(int((tmp_path / "prefect" / "worker.pid").read_text()))
        victims = [worker, *worker.children(recursive=True)]
        assert len(victims) > 1, "the flow-run process was not found under the worker"
        for proc in victims:
            proc.send_signal(signal.SIGKILL)
        psutil.wait_procs(victims, timeout=30)
        written = dm.read_table(root, "generations").num_rows
        assert written < 8 * 9 * 14, "the run finished before the kill; make it longer"
        # 2. Run again (in-process, against the same server): it completes, valid, without duplicates.
        result = run(
            "-c",
            "from flows.build import build_diffveri; import sys; "
            f"build_diffveri(config={str(CONFIG)!r}, root={str(root)!r}, stages=['subjects', 'synthesize'],"
            f" shard_size=1, overrides={LONG_RENDER!r})",
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    finally:
        run("-m", "flows.server", "down")
    ids = dm.read_table(root, "generations").column("image_id").to_pylist()
    assert len(ids) == len(set(ids)) == 8 * 9 * 14
    assert dm.validate(root) == []
