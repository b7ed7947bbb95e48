"""Local Prefect set-up: server (127.0.0.1, SQLite under the project-local ``PREFECT_HOME``), work pool,
deployments and a process worker.

``python -m flows.server up [--data DIR] [--port 4200]`` starts the server and the worker in the background
(pids and logs under ``$PREFECT_HOME``), points the project-local Prefect profile at the server and registers the
deployments ``build-diffveri/toy`` and ``build-diffveri/paper``. ``down`` stops both and unsets the API URL;
``status`` says what runs. Run it through ``python -m data_manifests.runtime --`` (as the Makefile does) so the
offline and telemetry settings apply.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from data_manifests.runtime import apply_offline_env

PROJECT_DIR = Path(__file__).resolve().parent.parent
POOL = "diffveri-process"
FLOW_ENTRYPOINT = "flows/build.py:build_diffveri"


def _home() -> Path:
    return Path(os.environ["PREFECT_HOME"])


def _prefect() -> str:
    return str(Path(sys.executable).parent / "prefect")


def _pid_alive(pid_file: Path) -> int | None:
    if not pid_file.is_file():
        return None
    pid = int(pid_file.read_text().strip() or 0)
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return None
    return pid


def _spawn(name: str, argv: list[str], env: dict[str, str]) -> int:
    """Start a detached process group with its log under PREFECT_HOME; record its pid."""
    log = open(_home() / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=PROJECT_DIR
    )
    (_home() / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def wait_healthy(api_url: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{api_url}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1.0)
    raise TimeoutError(
        f"Prefect server at {api_url} did not become healthy in {timeout:.0f} s; see {_home() / 'server.log'}"
    )


def deploy(data_root: str) -> None:
    """Create the process work pool if needed and register both deployments (no image build, local source)."""
    from prefect import flow as prefect_flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(POOL)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=POOL, type="process"))
    source = prefect_flow.from_source(source=str(PROJECT_DIR), entrypoint=FLOW_ENTRYPOINT)
    profiles = {
        "toy": {"config": str(PROJECT_DIR / "configs/pipeline/toy.yaml"), "root": str(Path(data_root).absolute())},
        "paper": {"config": str(PROJECT_DIR / "configs/pipeline/paper.yaml"), "root": "/data/diffveri"},
    }
    for name, parameters in profiles.items():
        source.deploy(
            name=name,
            work_pool_name=POOL,
            parameters=parameters,
            build=False,
            push=False,
            print_next_steps=False,
            ignore_warnings=True,
        )


def up(data_root: str, port: int) -> None:
    env = dict(os.environ)
    api_url = f"http://127.0.0.1:{port}/api"
    # 1. Server (SQLite database in PREFECT_HOME), unless one is already running.
    if not _pid_alive(_home() / "server.pid"):
        _spawn("server", [_prefect(), "server", "start", "--host", "127.0.0.1", "--port", str(port)], env)
    wait_healthy(api_url)
    # 2. The project-local profile points every later client at it.
    subprocess.run([_prefect(), "config", "set", f"PREFECT_API_URL={api_url}"], check=True, capture_output=True)
    os.environ["PREFECT_API_URL"] = api_url
    # 3. Work pool + deployments, then one process worker.
    deploy(data_root)
    if not _pid_alive(_home() / "worker.pid"):
        env["PREFECT_API_URL"] = api_url
        _spawn("worker", [_prefect(), "worker", "start", "--pool", POOL, "--type", "process"], env)
    print(
        f"Prefect server at {api_url.removesuffix('/api')} (UI), worker on pool {POOL!r}; "
        f"deployments build-diffveri/toy (root {data_root}) and build-diffveri/paper"
    )


def down() -> None:
    for name in ("worker", "server"):
        pid = _pid_alive(_home() / f"{name}.pid")
        if pid:
            os.killpg(pid, signal.SIGTERM)
            for _ in range(50):
                if not _pid_alive(_home() / f"{name}.pid"):
                    break
                time.sleep(0.2)
            else:
                os.killpg(pid, signal.SIGKILL)
            print(f"stopped {name} (pid {pid})")
        (_home() / f"{name}.pid").unlink(missing_ok=True)
    subprocess.run([_prefect(), "config", "unset", "PREFECT_API_URL", "-y"], capture_output=True)


def status() -> int:
    running = 0
    for name in ("server", "worker"):
        pid = _pid_alive(_home() / f"{name}.pid")
        print(f"{name}: {f'running (pid {pid})' if pid else 'stopped'}")
        running += bool(pid)
    return 0 if running == 2 else 1


def main(argv: list[str] | None = None) -> int:
    apply_offline_env()
    parser = argparse.ArgumentParser(prog="python -m flows.server", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("up", help="start server + worker and register deployments")
    p.add_argument("--data", default="data/toy", help="data root of the toy deployment (default data/toy)")
    p.add_argument("--port", type=int, default=int(os.environ.get("PREFECT_PORT", 4200)))
    sub.add_parser("down", help="stop worker and server")
    sub.add_parser("status", help="is the server/worker running")
    args = parser.parse_args(argv)
    _home().mkdir(parents=True, exist_ok=True)
    if args.action == "up":
        up(args.data, args.port)
    elif args.action == "down":
        down()
    else:
        return status()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
