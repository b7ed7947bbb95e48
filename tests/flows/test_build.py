from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

from flows.build import build_diffveri, make_task_runner, shards_of, stage_cache_key, stage_code_version
from tests.assemble.roots import build_root
from tests.data_manifests.rows import example_row

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "pipeline" / "toy.yaml"


def test_shards_cover_identities_in_order() -> None:
    ids = [f"id{i}" for i in range(7)]
    assert shards_of(ids, 3) == [["id0", "id1", "id2"], ["id3", "id4", "id5"], ["id6"]]
    with pytest.raises(ValueError, match="shard_size"):
        shards_of(ids, 0)


def test_task_runner_choice() -> None:
    assert isinstance(make_task_runner({}), ThreadPoolTaskRunner)
    assert isinstance(make_task_runner({"task_runner": "processes", "max_workers": 2}), ProcessPoolTaskRunner)
    from prefect_dask import DaskTaskRunner

    runner = make_task_runner({"task_runner": "dask", "dask_address": "tcp://127.0.0.1:8786"})
    assert isinstance(runner, DaskTaskRunner) and runner.address == "tcp://127.0.0.1:8786"
    with pytest.raises(ValueError, match="threads, processes or dask"):
        make_task_runner({"task_runner": "gpu"})


def test_cache_key_follows_inputs_config_and_code(tmp_path: Path) -> None:
    build_root(tmp_path, n_ids=2, per_id=2)
    params = {"stage": "assemble", "config": {"assemble": {"seed": 0}}, "root": str(tmp_path), "identities": None}
    key = stage_cache_key(None, params)
    assert stage_cache_key(None, dict(params)) == key
    assert stage_cache_key(None, dict(params, config={"assemble": {"seed": 1}})) != key
    assert stage_cache_key(None, dict(params, identities=["id00"])) != key
    import data_manifests as dm

    dm.upsert(tmp_path, "subjects", [example_row("subjects", 99)])  # not an input of assemble
    assert stage_cache_key(None, params) == key
    dm.upsert(tmp_path, "segments", [dm.read_rows(tmp_path, "segments")[0]])  # an input table changes
    assert stage_cache_key(None, params) != key
    assert len(stage_code_version("assemble")) == 16


def _pointer(root: Path, table: str) -> str:
    return (root / "manifests" / table / "_current.json").read_text()


def test_flow_runs_stage_and_second_run_does_no_work(tmp_path: Path, prefect_harness: None) -> None:
    build_root(tmp_path)
    summary = build_diffveri(config=str(CONFIG), root=str(tmp_path), stages=["assemble"])
    assert summary["assemble"] == {"images": 34, "identities": 6}
    first = _pointer(tmp_path, "diffveri")
    again = build_diffveri(config=str(CONFIG), root=str(tmp_path), stages=["assemble"])
    assert again == summary
    assert _pointer(tmp_path, "diffveri") == first  # cached: the table was not rewritten


def test_flow_rejects_unknown_stage_and_bad_review_mode(tmp_path: Path, prefect_harness: None) -> None:
    with pytest.raises(ValueError, match="unknown stage"):
        build_diffveri(config=str(CONFIG), root=str(tmp_path), stages=["paint"])
    with pytest.raises(ValueError, match="review_mode"):
        build_diffveri(config=str(CONFIG), root=str(tmp_path), review_mode="later")


def test_profiles_parse() -> None:
    for name in ("toy", "paper"):
        cfg = yaml.safe_load((CONFIG.parent / f"{name}.yaml").read_text())
        assert cfg["profile"] == name and "runtime" in cfg


def test_stage_code_version_covers_a_stage_modules_helpers(monkeypatch) -> None:
    """Editing assemble_crops.py (a helper module beside pipeline/assemble.py) invalidates assemble's cache."""
    import pipeline.assemble_crops as crops

    before = stage_code_version("assemble")
    helper, real = Path(crops.__file__), Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: real(self) + (b"# edited" if self == helper else b""))
    assert stage_code_version("assemble") != before


def test_stage_code_version_covers_the_shared_code(monkeypatch) -> None:
    """Editing the VeRi writer (pipeline/formats) or a row builder (data_manifests/rows.py) invalidates the cache of
    the stages that use them."""
    import data_manifests.rows as rows
    import pipeline.formats.veri as veri

    real = Path.read_bytes
    for shared in (Path(veri.__file__), Path(rows.__file__)):
        before = stage_code_version("assemble")
        with monkeypatch.context() as patch:
            patch.setattr(Path, "read_bytes", lambda self, f=shared: real(self) + (b"# edited" if self == f else b""))
            assert stage_code_version("assemble") != before
