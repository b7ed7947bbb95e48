"""The ``build-diffveri`` flow: every pipeline stage, sharded by identity, on Prefect's own machinery.

Each task is a few lines that call a stage's ``run_stage`` (the same function ``diffveri run STAGE`` calls). What
Prefect adds: per-shard task runs visible in the UI, retries with backoff, caching keyed on the stage's inputs and
code version (a finished build re-runs without doing any work), a progress artifact, the dataset statistics as a
markdown artifact, and a choice of task runner (threads, processes, or a Dask cluster through prefect-dask).

Review (manual mode): the flow exports review batches and ends in a ``Completed`` state named
``AwaitingReview`` whose message says how many images wait and how to import the CSVs; the next run, after
``diffveri review import``, continues with segmentation and assembly. With ``review_mode: auto`` images are
accepted by policy (``reviewer=auto-policy``) and the flow runs to the end unattended.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from prefect.context import TaskRunContext
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from prefect.states import Completed
from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner
from prefect.tasks import exponential_backoff

import data_manifests as dm
from data_manifests.runtime import apply_offline_env
from flows.logs import stage_logs_to_prefect
from pipeline.config import load_config
from pipeline.stages import STAGES, StageResult, get_stage, stage_spec

# Flow runs start from any worker (`prefect worker start`, Dask workers), not only from the project's commands:
# the offline switches and the project state apply before any stage imports a model library.
apply_offline_env()


# ------------------------------------------------------------------------------------------------------------ caching
# Code every stage's output depends on besides its own package: the dataset formats, the splits, and the rows,
# queries, random streams and schemas of data_manifests. Editing one of these re-runs every stage (rare, and a stale
# cache would be worse than a re-run).
SHARED_CODE = ("pipeline/formats/*.py", "pipeline/splits.py", "data_manifests/*.py")


def stage_code_version(stage: str) -> str:
    """sha256 of the source of the stage's package (or module) and of :data:`SHARED_CODE`, so editing a stage or
    what it builds on invalidates its cache."""
    module = inspect.getmodule(get_stage(stage))
    path = Path(inspect.getfile(module))  # type: ignore[arg-type]
    if path.parent.name != "pipeline":
        files = sorted(path.parent.rglob("*.py"))
    else:  # a top-level stage module and its helpers beside it (assemble.py, assemble_crops.py, ...)
        files = [path, *sorted(path.parent.glob(f"{path.stem}_*.py"))]
    project = Path(inspect.getfile(dm)).parents[1]
    files += [file for pattern in SHARED_CODE for file in sorted(project.glob(pattern))]
    digest = hashlib.sha256(str(dm.SCHEMA_VERSION).encode())
    for file in files:
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def stage_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Key = stage + its config + root + shard + stage code version + version of the tables it reads (the stage
    registry's ``inputs``)."""
    stage, root = parameters["stage"], Path(parameters["root"]).absolute()
    payload = {
        "stage": stage,
        "config": parameters["config"],
        "root": str(root),
        "identities": parameters["identities"],
        "code": stage_code_version(stage),
        "inputs": {t: dm.table_version(root, t) for t in stage_spec(stage).inputs},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


# -------------------------------------------------------------------------------------------------------------- tasks
def is_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only what may pass on a second try. Bad input and bad config (ValueError, KeyError, missing files
    or modules) fail at once with their message instead of three times."""
    try:
        state.result()
    except (ValueError, KeyError, FileNotFoundError, TypeError, ImportError):
        return False
    except Exception:  # noqa: BLE001 - anything else (OOM, I/O hiccup, lost worker) is worth a retry
        return True
    return True


@task(
    task_run_name="{stage}[{shard}]",
    cache_key_fn=stage_cache_key,
    persist_result=True,
    retries=2,
    retry_delay_seconds=exponential_backoff(backoff_factor=5),
    retry_condition_fn=is_transient,
)
def run_stage_task(
    stage: str, config: dict[str, Any], root: str, identities: list[str] | None, shard: str = "all"
) -> StageResult:
    """Run one stage on one shard of identities (``None`` = every identity)."""
    with stage_logs_to_prefect():  # also in task-runner processes (processes, Dask), which import this module anew
        result = get_stage(stage)(config, Path(root), identities)
    get_run_logger().info("%s", result)
    return result


def list_identities(root: str, subset: list[str] | None) -> list[str]:
    """Identities of the ``subjects`` table, optionally restricted to ``subset`` (unknown ids are an error)."""
    known = sorted(r["identity_id"] for r in dm.read_rows(root, "subjects", columns=["identity_id"]))
    if subset is None:
        return known
    unknown = sorted(set(subset) - set(known))
    if unknown:
        raise ValueError(f"identities {unknown} are not in {root}/manifests/subjects (known: {known[:10]} ...)")
    return sorted(subset)


def review_pending(root: str) -> int:
    """Images exported for review that still have no decision."""
    from pipeline.review import review_status

    return sum(batch.pending for batch in review_status(Path(root)))


# ------------------------------------------------------------------------------------------------------ task runners
def make_task_runner(runtime: dict[str, Any]) -> TaskRunner:
    """The task runner named by the config's ``runtime`` section.

    ``task_runner``: ``threads`` (default), ``processes``, or ``dask``; ``max_workers``; for Dask either
    ``dask_address`` (an existing scheduler, e.g. ``tcp://10.0.0.5:8786``, so shards run across machines) or a
    local cluster of ``dask_workers`` processes.
    """
    kind = runtime.get("task_runner", "threads")
    workers = runtime.get("max_workers")
    if kind == "threads":
        return ThreadPoolTaskRunner(max_workers=workers)
    if kind == "processes":
        return ProcessPoolTaskRunner(max_workers=workers)
    if kind == "dask":
        from prefect_dask import DaskTaskRunner

        if runtime.get("dask_address"):
            return DaskTaskRunner(address=runtime["dask_address"])
        n = int(runtime.get("dask_workers", 2))
        return DaskTaskRunner(cluster_kwargs={"n_workers": n, "threads_per_worker": 1, "processes": True})
    raise ValueError(f"runtime.task_runner must be threads, processes or dask, got {kind!r}")


def shards_of(identities: Sequence[str], shard_size: int) -> list[list[str]]:
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    return [list(identities[i : i + shard_size]) for i in range(0, len(identities), shard_size)]


# -------------------------------------------------------------------------------------------------------------- flows
@flow(name="build-diffveri-stages")
def run_stages(
    config: dict[str, Any], root: str, stages: list[str], identities: list[str] | None, shard_size: int
) -> dict[str, Any]:
    """Run ``stages`` in order; sharded stages fan out over the flow's task runner, one task run per shard."""
    logger = get_run_logger()
    summary: dict[str, Any] = {}
    progress = create_progress_artifact(progress=0.0, description="build-diffveri: share of stages done")
    for done, stage in enumerate(stages):
        # A missing output table means the data root was deleted or replaced at the same path: run the stage even if
        # its cache key matches, since a cached result would stand for rows that no longer exist.
        outputs_missing = not all(dm.table_exists(root, t) for t in stage_spec(stage).outputs)
        stage_task = run_stage_task.with_options(refresh_cache=True) if outputs_missing else run_stage_task
        if stage == "subjects":
            results = [stage_task(stage, config, root, identities)]
        elif stage_spec(stage).by_identity:
            ids = list_identities(root, identities)
            futures = [
                stage_task.submit(stage, config, root, shard, shard=f"{shard[0]}..{shard[-1]}")
                for shard in shards_of(ids, shard_size)
            ]
            results = [f.result() for f in futures]
        else:
            results = [stage_task(stage, config, root, list_identities(root, identities) if identities else None)]
        counts: dict[str, int] = {}
        for result in results:
            for key, value in result.counts.items():
                counts[key] = counts.get(key, 0) + value
        summary[stage] = counts
        logger.info("stage %s done: %s", stage, counts)
        update_progress_artifact(progress, progress=100.0 * (done + 1) / len(stages))
        if stage == "review" and config.get("review", {}).get("mode", "auto") == "manual":
            pending = review_pending(root)
            if pending:
                summary["awaiting_review"] = pending
                return summary
    return summary


@flow(name="build-diffveri", log_prints=True)
def build_diffveri(
    config: str = "toy",
    root: str = "data/toy",
    identities: list[str] | None = None,
    stages: list[str] | None = None,
    shard_size: int = 4,
    review_mode: str | None = None,
    overrides: list[str] | None = None,
) -> Any:
    """Build (or continue building) DiffVERI under ``root``.

    Args:
        config: profile: a short name (``toy``, ``paper``) or a YAML path.
        root: data root; manifests go to ``root/manifests``.
        identities: restrict to these identity ids (default: all subjects).
        stages: stages to run, in pipeline order (default: all registered stages).
        shard_size: identities per task run for the sharded stages.
        review_mode: ``auto`` or ``manual``; overrides the profile's ``review.mode``.
        overrides: ``key=value`` config overrides, as ``diffveri run --set``.
    """
    cfg = load_config(config, overrides or [])
    if review_mode is not None:
        if review_mode not in ("auto", "manual"):
            raise ValueError(f"review_mode must be auto or manual, got {review_mode!r}")
        cfg.setdefault("review", {})["mode"] = review_mode
    available = list(STAGES)  # in pipeline order
    chosen = available if stages is None else [s for s in available if s in stages]
    unknown = sorted(set(stages or []) - set(available))
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; available: {available}")
    Path(root).mkdir(parents=True, exist_ok=True)
    runner = make_task_runner(cfg.get("runtime") or {})
    # The stages subflow exists only to take its task runner from the config. It sends no heartbeats of its own:
    # this flow's heartbeats cover the run, and joining a flow's heartbeat thread at exit costs up to a second
    # (it sleeps in 1 s steps), a fixed toll that was most of the flow's overhead on a small build.
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}), stage_logs_to_prefect():
        summary = run_stages.with_options(task_runner=runner)(cfg, str(root), chosen, identities, shard_size)
    if "awaiting_review" in summary:
        n = summary["awaiting_review"]
        message = (
            f"Awaiting review: {n} image(s) under {root}. Fill the CSVs written by the review stage, run "
            f"`diffveri review import FILE.csv --root {root}` for each, then run this deployment again."
        )
        create_markdown_artifact(key="awaiting-review", markdown=f"# Awaiting review\n\n{message}\n")
        publish_pictures(root, cfg, charts=False)  # the filter report helps choose the band before reviewing
        return Completed(name="AwaitingReview", message=message, data=summary)
    stats_md = Path(root) / "stats.md"
    charts = publish_pictures(root, cfg, charts="assemble" in chosen and stats_md.is_file())
    if "assemble" in chosen and stats_md.is_file():
        markdown = "# DiffVERI statistics\n\n" + stats_md.read_text() + "\n" + charts
        create_markdown_artifact(key="diffveri-stats", markdown=markdown)
        print(stats_md.read_text())
    return summary


def publish_pictures(root: str, cfg: dict[str, Any], charts: bool) -> str:
    """Identity grids and the filter report as markdown artifacts (PNGs embedded, pipeline/reports); returns the
    dataset charts as markdown for the statistics artifact (empty unless ``charts``). A picture that cannot be
    drawn is a warning, not a failed build."""
    from pipeline.reports import filter_report, markdown_gallery, report_bands, stats_charts

    try:
        grids = sorted((Path(root) / "reports" / "identities").glob("*.png"))
        if grids:
            markdown = markdown_gallery("Synthesized images per identity", grids, max_images=6)
            create_markdown_artifact(key="diffveri-identity-grids", markdown=markdown)
        if dm.table_exists(root, "detections"):
            path = filter_report(root, **report_bands(cfg)).path
            create_markdown_artifact(key="diffveri-filter-report", markdown=markdown_gallery("Filter report", [path]))
        paths = list(stats_charts(root).paths.values()) if charts else []
        return markdown_gallery("Charts", paths, level=2) if paths else ""
    except (ValueError, OSError) as exc:
        get_run_logger().warning("report pictures not drawn: %s", exc)
        return ""


if __name__ == "__main__":
    build_diffveri()
