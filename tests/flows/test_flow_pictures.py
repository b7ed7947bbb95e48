"""The build flow publishes the report pictures as Prefect artifacts: identity grids and the filter report, the dataset
charts inside the statistics artifact, the PNGs embedded (the UI cannot reach the data root's files)."""

from __future__ import annotations

import base64
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from flows.build import build_diffveri
from pipeline.reports import identity_grids, stats_charts
from tests.assemble.roots import build_root

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "pipeline" / "toy.yaml"


def _artifact(key: str) -> str:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    assert found, f"no artifact {key}"
    return str(max(found, key=lambda a: a.created).data)


def test_flow_publishes_filter_report_and_stats_charts(tmp_path: Path, prefect_harness: None) -> None:
    build_root(tmp_path)
    grids = identity_grids(tmp_path)  # as the synthesize stage draws them
    build_diffveri(config=str(CONFIG), root=str(tmp_path), stages=["assemble"])
    stats = _artifact("diffveri-stats")
    assert stats.startswith("# DiffVERI statistics") and "## Charts" in stats
    assert stats.count("](data:image/png;base64,") == 4
    views = (tmp_path / "reports" / "stats" / "views.png").read_bytes()
    assert base64.b64encode(views).decode() in stats  # the chart written beside stats.md, embedded as is
    assert stats_charts(tmp_path).views  # the data root's table has views to chart
    gallery = _artifact("diffveri-identity-grids")
    assert gallery.count("](data:image/png;base64,") == 6 and len(grids) == 6
    report = _artifact("diffveri-filter-report")
    assert report.count("](data:image/png;base64,") == 1 and str(tmp_path / "reports" / "filter.png") in report
