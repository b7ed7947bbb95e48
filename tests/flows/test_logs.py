"""Stage logs and tqdm progress reach the flow-run logs that the Prefect UI shows."""

from __future__ import annotations

import io
import logging
import sys
import time
from pathlib import Path
from uuid import UUID

import pytest
from tqdm import tqdm

from flows.logs import PROGRESS_LOGGER, ProgressLog, progress_line, route_stage_logs, stage_logs_to_prefect


def test_progress_line_is_the_bar_text_without_its_blocks() -> None:
    text = "\rfilter:  40%|████      | 80/200 [00:12<00:18,  6.60img/s]"
    assert progress_line(text) == "filter: 40% 80/200 [00:12<00:18, 6.60img/s]"
    assert progress_line("a plain message\n") is None


def test_bars_become_log_lines_first_update_and_end(caplog: pytest.LogCaptureFixture) -> None:
    stream = io.StringIO()
    tap = ProgressLog(stream, interval=3600.0)
    with caplog.at_level(logging.INFO, logger=PROGRESS_LOGGER):
        for _ in tqdm(range(50), desc="assemble", file=tap, mininterval=0, miniters=1):
            pass
    lines = [r.getMessage() for r in caplog.records if r.name == PROGRESS_LOGGER]
    assert lines[0].startswith("assemble: 0% 0/50")
    assert lines[-1].startswith("assemble: 100% 50/50 [") and len(lines) == 2  # nothing in between: interval
    assert "100%|" in stream.getvalue()  # the bar itself still goes to the stream


def test_each_bar_logs_its_start_and_end_also_when_a_thread_draws_the_same_bar_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tap = ProgressLog(io.StringIO(), interval=3600.0)
    with caplog.at_level(logging.INFO, logger=PROGRESS_LOGGER):
        for shard in (3, 4):  # a thread-pool thread runs one shard after another
            for _ in tqdm(range(shard), desc="filter", file=tap, mininterval=0, miniters=1):
                pass
    lines = [r.getMessage().split(" [")[0] for r in caplog.records if r.name == PROGRESS_LOGGER]
    assert lines == ["filter: 0% 0/3", "filter: 100% 3/3", "filter: 0% 0/4", "filter: 100% 4/4"]


def test_interval_spaces_the_lines(caplog: pytest.LogCaptureFixture) -> None:
    tap = ProgressLog(io.StringIO(), interval=0.05)
    with caplog.at_level(logging.INFO, logger=PROGRESS_LOGGER):
        for _ in tqdm(range(6), desc="hash", file=tap, mininterval=0, miniters=1):
            time.sleep(0.03)
    lines = [r.getMessage() for r in caplog.records if r.name == PROGRESS_LOGGER]
    assert 3 <= len(lines) <= 6 and lines[-1].startswith("hash: 100% 6/6")


def test_routing_is_idempotent_and_undone_after_the_block() -> None:
    from prefect.logging.handlers import APILogHandler

    def api_handlers() -> int:
        return sum(isinstance(h, APILogHandler) for h in logging.getLogger("pipeline").handlers)

    before, original = api_handlers(), sys.stderr
    undo = route_stage_logs() + route_stage_logs()
    assert api_handlers() == 1
    for step in undo:
        step()
    assert api_handlers() == before
    with stage_logs_to_prefect(), stage_logs_to_prefect():
        assert isinstance(sys.stderr, ProgressLog) and sys.stderr.stream is original
        assert api_handlers() == 1 and logging.getLogger("pipeline").getEffectiveLevel() == logging.INFO
    assert sys.stderr is original and api_handlers() == before  # stage code outside a run logs as before


def test_stage_logs_and_progress_reach_the_flow_run_logs(tmp_path: Path, prefect_harness: None) -> None:
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler
    from prefect.runtime import flow_run

    from flows.build import build_diffveri
    from tests.assemble.roots import build_root

    build_root(tmp_path)

    @flow(name="logs-probe")
    def probe() -> str:
        build_diffveri(config="toy", root=str(tmp_path), stages=["assemble"])
        return str(flow_run.id)

    parent = UUID(probe())
    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        runs = [r.id for r in client.read_flow_runs() if r.parent_task_run_id is not None or r.id == parent]
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=runs)))
    messages = [(log.name, log.message) for log in logs]
    assert ("pipeline.assemble", "assembled 34 images of 6 identities") in messages
    progress = [m for name, m in messages if name == PROGRESS_LOGGER]
    assert any(m.startswith("assemble crops: 100% 34/34 [") for m in progress), progress
    assert any(m.startswith("assemble VeRi export: 100% 34/34 [") for m in progress), progress
