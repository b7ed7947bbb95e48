"""The synthesize stage draws the identity grids of the identities it ran (synthesize.report_grids)."""

from __future__ import annotations

from pathlib import Path

import data_manifests as dm
from pipeline.generate.synthesize import run_stage


def _config(**synthesize) -> dict:
    plan = [{"backend": "toyworld", "images_per_view": 2, "views": ["front", "rear"]}]
    return {"synthesize": {"plan": plan, "width": 32, "height": 32, "toyworld_background": False, **synthesize}}


def test_stage_writes_grids_of_its_identities_only(toy_root: Path) -> None:
    first, second = sorted(r["identity_id"] for r in dm.read_rows(toy_root, "subjects"))
    result = run_stage(_config(), toy_root, [first])
    folder = toy_root / "reports" / "identities"
    assert sorted(p.name for p in folder.iterdir()) == [f"{first}.png"]  # the shard's identities, not every one
    assert f"1 identity grid(s) in {folder}" in result.message
    result = run_stage(_config(), toy_root, [first])  # nothing new: the grid is not drawn again
    assert result.counts["processed"] == 0 and "grid" not in result.message
    run_stage(_config(), toy_root, None)
    assert sorted(p.name for p in folder.iterdir()) == sorted([f"{first}.png", f"{second}.png"])


def test_grids_can_be_switched_off(toy_root: Path) -> None:
    result = run_stage(_config(report_grids=False), toy_root, None)
    assert result.counts["processed"] == 8 and not (toy_root / "reports").exists()
