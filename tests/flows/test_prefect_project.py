"""The Prefect project files: prefect.yaml's deployments match the flow, prefect.toml matches the runtime's state
folder, and ``flows.server up`` chooses the API the way its docs say."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

import data_manifests.project as project
from data_manifests.project import resolve_config
from flows.build import build_diffveri
from flows.server import POOL, plan_api, toy_root_default

PROJECT = Path(__file__).resolve().parents[2]
SPEC = yaml.safe_load((PROJECT / "prefect.yaml").read_text())


def test_prefect_yaml_declares_toy_and_paper_on_the_process_pool() -> None:
    deployments = {d["name"]: d for d in SPEC["deployments"]}
    assert set(deployments) == {"toy", "paper"}
    for name, d in deployments.items():
        assert d["work_pool"]["name"] == POOL, name
        # The entrypoint names the flow whose name makes `build-diffveri/<name>`.
        path, func = d["entrypoint"].split(":")
        assert (PROJECT / path).is_file() and func == build_diffveri.fn.__name__
        # Every parameter is one of the flow's, and the profile exists.
        inspect.signature(build_diffveri.fn).bind(**d["parameters"])
        assert resolve_config(d["parameters"]["config"], "pipeline").parent == PROJECT / "configs" / "pipeline"
    assert build_diffveri.name == "build-diffveri"
    assert toy_root_default() == deployments["toy"]["parameters"]["root"] == "data/toy"


def test_prefect_yaml_runs_the_flow_from_the_folder_it_was_deployed_from() -> None:
    (build_step,) = SPEC["build"]
    step_id = build_step["prefect.deployments.steps.run_shell_script"]["id"]
    (pull_step,) = SPEC["pull"]
    directory = pull_step["prefect.deployments.steps.set_working_directory"]["directory"]
    assert directory == "{{ " + step_id + ".stdout }}"


def test_the_flow_entrypoint_loads_as_a_worker_loads_it() -> None:
    from prefect.flows import load_flow_from_entrypoint

    flow = load_flow_from_entrypoint(str(PROJECT / SPEC["deployments"][0]["entrypoint"]))
    assert flow.name == "build-diffveri"


def test_prefect_toml_home_is_the_runtime_state_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = tomllib.loads((PROJECT / "prefect.toml").read_text())
    monkeypatch.delenv("DIFFVERI_STATE", raising=False)
    assert PROJECT / settings["home"] == project.state_dir() / "prefect"
    assert PROJECT / settings["profiles_path"] == project.state_dir() / "prefect" / "profiles.toml"


def test_plain_prefect_reads_the_project_settings_from_the_project_root() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "prefect"), "config", "view", "--show-sources"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "PREFECT_HOME='.state/prefect' (from prefect.toml)" in result.stdout
    assert "PREFECT_PROFILES_PATH='.state/prefect/profiles.toml' (from prefect.toml)" in result.stdout


@pytest.mark.parametrize(
    ("url", "healthy", "plan"),
    [
        (None, False, "start"),  # nothing configured: start a local server
        ("http://127.0.0.1:4200/api", True, "use"),  # the local server of an earlier `up`
        ("http://127.0.0.1:4200/api", False, "start"),  # ... gone: start it again on its port
        ("https://api.prefect.cloud/api/accounts/a/workspaces/w", True, "use"),  # Prefect Cloud
        ("http://prefect.internal:4200/api", True, "use"),  # the team's server
        ("http://prefect.internal:4200/api", False, "error"),  # never replaced by a local one
    ],
)
def test_up_uses_a_configured_api_and_starts_a_server_only_when_none_is(
    url: str | None, healthy: bool, plan: str
) -> None:
    assert plan_api(url, healthy) == plan
