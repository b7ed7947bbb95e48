"""Stage logs and progress bars in the flow-run logs (what the Prefect UI shows for each run).

Stage code knows nothing of Prefect: it logs to its module loggers (``pipeline.*``, ``data_manifests.*``) and draws
plain tqdm bars on stderr. Inside a flow or task run, :func:`stage_logs_to_prefect`

1. gives the stage loggers Prefect's API log handler (as ``PREFECT_LOGGING_EXTRA_LOGGERS`` would, but independent
   of how the worker was started), so their records appear in the run's logs, attributed to the task run;
2. turns every tqdm bar written to stderr into a log line (logger ``pipeline.progress``) at most every
   ``interval`` seconds per bar, plus one when the bar reaches its total: ``filter: 40% 80/200 [00:12<00:18,
   6.6img/s]`` — the bar's own text, ETA included, without the block characters. The bar itself still goes to
   stderr (the worker's log).
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import TextIO

STAGE_LOGGERS: tuple[str, ...] = ("pipeline", "data_manifests")
PROGRESS_LOGGER = "pipeline.progress"
PROGRESS_INTERVAL = 30.0  # seconds between two log lines of one bar

# tqdm's status line: "<desc>: <pct>%|<bar>| n/total [elapsed<eta, rate]" or, without a total, "<desc>: n<unit> [...]".
_BAR = re.compile(r"\|[^|]*\|")
_COUNTS = re.compile(r"(\d+)/(\d+)")
_DESC = re.compile(r"^(.*?):\s")
_NEW = object()


def route_stage_logs(names: tuple[str, ...] = STAGE_LOGGERS, level: int = logging.INFO) -> list[Callable[[], None]]:
    """Attach Prefect's API log handler to the stage loggers (unless one is there) and let INFO records through.

    Returns the undo steps (:func:`stage_logs_to_prefect` runs them when its outermost block ends, so stage code
    called outside a run afterwards does not warn about logging without a run)."""
    from prefect.logging.handlers import APILogHandler

    undo: list[Callable[[], None]] = []
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(h, APILogHandler) for h in logger.handlers):
            handler = APILogHandler()
            logger.addHandler(handler)
            undo.append(partial(logger.removeHandler, handler))
        if logger.level == logging.NOTSET or logger.level > level:
            undo.append(partial(logger.setLevel, logger.level))
            logger.setLevel(level)
    return undo


def progress_line(text: str) -> str | None:
    """The last tqdm status in ``text`` without the bar's block characters, or ``None`` if it holds none."""
    if "\r" not in text:
        return None
    status = text.rsplit("\r", 1)[1].strip()
    if not status or "[" not in status:
        return None
    return re.sub(r"\s+", " ", _BAR.sub(" ", status)).strip()


class ProgressLog(io.TextIOBase):
    """A stderr stand-in: passes everything through and logs tqdm status lines every ``interval`` seconds per bar."""

    def __init__(self, stream: TextIO, interval: float = PROGRESS_INTERVAL) -> None:
        self.stream = stream
        self.interval = interval
        self.logger = logging.getLogger(PROGRESS_LOGGER)
        self._last: dict[tuple[int, str], float | None] = {}  # time of the last line; None once the end is logged
        self._lock = threading.Lock()
        self._busy = threading.local()  # a handler writing to stderr while we log must not log again

    def write(self, text: str) -> int:
        written = self.stream.write(text)
        line = progress_line(text)
        if line is not None and not getattr(self._busy, "on", False):
            self._maybe_log(line)
        return written if written is not None else len(text)

    def _maybe_log(self, line: str) -> None:
        desc = _DESC.match(line)
        # One clock per bar: shards of a stage draw bars of the same description at once, each in its own thread.
        key = (threading.get_ident(), desc.group(1) if desc else "")
        counts = _COUNTS.search(line)
        fresh = (counts is not None and counts.group(1) == "0") or line.split(" [", 1)[0].endswith(" 0it")
        finished = counts is not None and counts.group(1) == counts.group(2)
        now = time.monotonic()
        with self._lock:
            state = self._last.get(key, _NEW)
            if fresh or state is _NEW:
                due = True  # a new bar: its first update
            elif state is None:
                due = False  # this bar's end is logged already (tqdm repeats it on close)
            else:
                due = finished or now - state >= self.interval
            if not due:
                return
            self._last[key] = None if finished else now
        self._busy.on = True
        try:
            self.logger.info("%s", line)
        finally:
            self._busy.on = False

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return False  # tqdm then draws plain updates, which is what a worker log wants

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", "utf-8")

    def fileno(self) -> int:
        return self.stream.fileno()

    def __getattr__(self, name: str) -> object:  # buffer, errors, ...: whatever else callers expect of stderr
        return getattr(self.stream, name)


_installed = 0
_undo: list[Callable[[], None]] = []
_install_lock = threading.Lock()


@contextlib.contextmanager
def stage_logs_to_prefect(interval: float = PROGRESS_INTERVAL) -> Iterator[None]:
    """Within this block, stage logs and tqdm progress reach the current Prefect run's logs (re-entrant: the
    outermost block installs and removes)."""
    global _installed
    with _install_lock:
        if _installed == 0:
            _undo.extend(route_stage_logs())
            if not isinstance(sys.stderr, ProgressLog):
                sys.stderr = ProgressLog(sys.stderr, interval)
        _installed += 1
    try:
        yield
    finally:
        with _install_lock:
            _installed -= 1
            if _installed == 0:
                if isinstance(sys.stderr, ProgressLog):
                    sys.stderr = sys.stderr.stream
                while _undo:
                    _undo.pop()()
