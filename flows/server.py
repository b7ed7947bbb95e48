"""``make prefect-up`` / ``prefect-down``: a Prefect API to deploy to, the deployments of ``prefect.yaml``, a worker.

``python -m flows.server up [--data DIR] [--port 4200]``, run from the project root:

1. **API.** If a Prefect API is configured — ``PREFECT_API_URL`` in the environment (your own server, Prefect
   Cloud with ``PREFECT_API_KEY``) or in the project profile (``prefect.toml`` keeps it under ``.state/prefect``)
   — and it answers, it is used as is. Only when none is configured does ``up`` start a local server (127.0.0.1,
   SQLite under ``PREFECT_HOME``) and store its URL in the project profile, so the plain ``prefect deployment run
   build-diffveri/toy --watch`` reaches it. A configured local URL that does not answer (a server from an earlier
   ``up`` that is gone) is started again on its port; a remote one that does not answer is an error.
2. **Deployments.** Creates the process work pool ``diffveri-process`` if missing and runs ``prefect deploy --all``
   (``prefect.yaml``: ``build-diffveri/toy`` and ``build-diffveri/paper``); ``--data`` sets the toy root.
3. **Worker.** Starts one process worker on the pool (pid and log under ``PREFECT_HOME``).

``down`` stops what ``up`` started and forgets the URL of the server it started (an API you configured stays);
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
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Literal

import yaml

from data_manifests.runtime import apply_offline_env

PROJECT_DIR = Path(__file__).resolve().parent.parent
PREFECT_YAML = PROJECT_DIR / "prefect.yaml"
POOL = "diffveri-process"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})

Plan = Literal["use", "start", "error"]


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


def toy_root_default() -> str:
    """The ``root`` parameter ``prefect.yaml`` gives the toy deployment."""
    spec = yaml.safe_load(PREFECT_YAML.read_text())
    return next(d["parameters"]["root"] for d in spec["deployments"] if d["name"] == "toy")


def configured_api_url() -> str | None:
    """The API URL Prefect would use here (environment, then ``prefect.toml``, then the project profile)."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    return str(url).rstrip("/") if url else None


def api_healthy(url: str, timeout: float = 10.0) -> bool:
    """Does the Prefect API at ``url`` answer (a server's ``/health``, or Cloud's through the client)?"""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: url}):
        with get_client(sync_client=True, httpx_settings={"timeout": timeout}) as client:
            return client.api_healthcheck() is None


def plan_api(url: str | None, healthy: bool) -> Plan:
    """``use`` a configured API that answers; ``start`` a local server when none is configured or a configured
    local one is down; ``error`` for a configured remote API that does not answer."""
    if url is None:
        return "start"
    if healthy:
        return "use"
    return "start" if urllib.parse.urlparse(url).hostname in LOOPBACK else "error"


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


def start_local_server(api_url: str) -> None:
    """Start ``prefect server start`` on the URL's port unless ours runs; wait until it answers."""
    port = urllib.parse.urlparse(api_url).port or 4200
    if not _pid_alive(_home() / "server.pid"):
        _spawn("server", [_prefect(), "server", "start", "--host", "127.0.0.1", "--port", str(port)], dict(os.environ))
    wait_healthy(api_url)


def ensure_pool(api_url: str) -> None:
    """Create the process work pool on the API unless it exists."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL, temporary_settings

    # Settings were read when prefect was imported, before this process chose (or started) the API.
    with temporary_settings(updates={PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        try:
            client.read_work_pool(POOL)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=POOL, type="process"))


def deploy(data_root: str) -> None:
    """``prefect deploy --all`` from the project root; then the toy deployment again with ``root=data_root`` if it
    differs from ``prefect.yaml``'s."""
    commands = [[_prefect(), "deploy", "--all", "--no-prompt"]]
    if data_root != toy_root_default():
        commands.append([_prefect(), "deploy", "--name", "toy", "--param", f"root={data_root}", "--no-prompt"])
    for argv in commands:
        result = subprocess.run(argv, cwd=PROJECT_DIR, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[1:])} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")


def up(data_root: str, port: int) -> None:
    local_url = f"http://127.0.0.1:{port}/api"
    configured = configured_api_url()
    healthy = configured is not None and api_healthy(configured)
    plan = plan_api(configured, healthy)
    # 1. The API: a configured one that answers, else a local server.
    if plan == "error":
        raise SystemExit(
            f"the Prefect API {configured} (PREFECT_API_URL or the project profile) does not answer; fix it, or "
            "unset it (`prefect config unset PREFECT_API_URL` from the project root) to use a local server"
        )
    api_url = configured if plan == "use" else (configured or local_url)
    if plan == "start":
        start_local_server(api_url)  # type: ignore[arg-type]
        if configured is None:  # remember it in the project profile, for plain `prefect` commands
            subprocess.run([_prefect(), "config", "set", f"PREFECT_API_URL={api_url}"], check=True, capture_output=True)
        (_home() / "server.url").write_text(api_url)  # type: ignore[arg-type]  # `down` may forget it
    os.environ["PREFECT_API_URL"] = api_url  # type: ignore[assignment]
    # 2. Work pool + the deployments of prefect.yaml, then one process worker.
    ensure_pool(api_url)  # type: ignore[arg-type]
    deploy(data_root)
    if not _pid_alive(_home() / "worker.pid"):
        _spawn("worker", [_prefect(), "worker", "start", "--pool", POOL, "--type", "process"], dict(os.environ))
    where = "local server started here" if plan == "start" else "configured API"
    print(
        f"Prefect API {api_url} ({where}); worker on pool {POOL!r}; deployments build-diffveri/toy "
        f"(root {data_root}) and build-diffveri/paper. Try: prefect deployment run build-diffveri/toy --watch"
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
    # Forget the URL only if it is the local server `up` started; an API the user configured stays.
    ours = _home() / "server.url"
    if ours.is_file():
        if configured_api_url() == ours.read_text().strip():
            subprocess.run([_prefect(), "config", "unset", "PREFECT_API_URL", "-y"], capture_output=True)
        ours.unlink()


def status() -> int:
    running = 0
    for name in ("server", "worker"):
        pid = _pid_alive(_home() / f"{name}.pid")
        print(f"{name}: {f'running (pid {pid})' if pid else 'stopped'}")
        running += bool(pid)
    print(f"API: {configured_api_url() or 'none configured'}")
    return 0 if _pid_alive(_home() / "worker.pid") else 1


def main(argv: list[str] | None = None) -> int:
    apply_offline_env()
    parser = argparse.ArgumentParser(prog="python -m flows.server", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("up", help="use the configured API or start a local server; deploy prefect.yaml; a worker")
    p.add_argument("--data", default=None, help="data root of the toy deployment (default: prefect.yaml's, data/toy)")
    p.add_argument("--port", type=int, default=int(os.environ.get("PREFECT_PORT", 4200)), help="local server port")
    sub.add_parser("down", help="stop the worker and the server that up started")
    sub.add_parser("status", help="is the server/worker running, which API is configured")
    args = parser.parse_args(argv)
    _home().mkdir(parents=True, exist_ok=True)
    if args.action == "up":
        up(args.data or toy_root_default(), args.port)
    elif args.action == "down":
        down()
    else:
        return status()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
