"""End-to-end flow tests on real stages: Dask vs threads, and a worker killed mid-run (slow)."""

from __future__ import annotations

import json
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


def _isolated_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a user whose project state is ``tmp_path`` (the real project's .state stays untouched)."""
    home = tmp_path / "prefect"
    env = dict(os.environ, PREFECT_HOME=str(home), PREFECT_PROFILES_PATH=str(home / "profiles.toml"))
    env["DIFFVERI_STATE"] = str(tmp_path / "state")
    env.pop("PREFECT_API_URL", None)
    return env


@pytest.mark.slow
def test_plain_prefect_commands_after_up(tmp_path: Path) -> None:
    """`flows.server up` (make prefect-up), then the plain `prefect deployment run build-diffveri/toy --watch` with
    no PREFECT_API_URL in the environment: the profile up wrote names the server; stage logs and progress lines
    are in the flow-run logs; `down` forgets the server."""
    root = tmp_path / "data"
    make_world(root)
    env = _isolated_env(tmp_path)
    port = _free_port()
    prefect = str(Path(sys.executable).parent / "prefect")
    run = lambda argv: subprocess.run(argv, env=env, cwd=PROJECT, text=True, capture_output=True, timeout=600)  # noqa: E731
    up = run([sys.executable, "-m", "flows.server", "up", "--data", str(root), "--port", str(port)])
    assert up.returncode == 0, up.stdout + up.stderr
    api_url = f"http://127.0.0.1:{port}/api"
    try:
        assert f'PREFECT_API_URL = "{api_url}"' in (tmp_path / "prefect" / "profiles.toml").read_text()
        params = {"stages": ["subjects", "synthesize", "filter"], "shard_size": 2, "overrides": RENDER_ONLY}
        result = run([prefect, "deployment", "run", "build-diffveri/toy", "--watch", "--params", json.dumps(params)])
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "Completed" in result.stdout
        messages = _all_flow_run_logs(api_url)
    finally:
        down = run([sys.executable, "-m", "flows.server", "down"])
    assert down.returncode == 0, down.stderr
    assert "PREFECT_API_URL" not in (tmp_path / "prefect" / "profiles.toml").read_text()
    assert "imported 4 subject(s) into " + str(root) in messages  # a pipeline logger, in the UI's logs
    assert any(m.startswith("synthesize: 100% 8/8 [") for m in messages), messages  # a progress line, ETA included
    assert dm.read_table(root, "detections").num_rows == 16


def _all_flow_run_logs(api_url: str) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        return [log.message for log in client.read_logs()]


@pytest.mark.slow
def test_worker_killed_mid_run_then_rerun_completes(tmp_path: Path) -> None:
    """Real local server + process worker; SIGKILL the worker while the deployment runs; run again."""
    root = tmp_path / "data"
    make_world(root, identities=8)
    env = _isolated_env(tmp_path)
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
