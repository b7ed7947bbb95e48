"""The health of a table's files (pointer, parts, checksums) and ``diffveri manifests repair``.

A table is healthy when its ``_current.json`` is readable, names only part files beside it that exist and read, and
records a sha256 for each. :func:`inspect_table` reports what is wrong; :func:`plan_repair` says what a repair would
do and :func:`apply_repair` does it under the table lock:

- a pointer that is missing, empty, unreadable, names paths outside the folder or parts that are gone is rebuilt
  from the part files in the folder (parts that do not read are set aside as ``damaged-<name>``, never deleted; a
  key found in several parts keeps the row of the newest part, as the interrupted write would have);
- a healthy pointer that lacks checksums (written before they were recorded) gets them.

A part whose bytes no longer match its recorded sha256 is not "repaired": its rows are wrong, and only a backup or
re-running the stage restores them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .ids import sha256_file
from .schemas import TableSpec, get_spec
from .store import (
    POINTER,
    ManifestError,
    _check_part_metadata,
    _commit,
    _locked,
    _read_checked,
    _read_pointer,
    _split,
    _write_part,
    key_array,
    lost_pointer,
    part_files,
    table_dir,
)


@dataclass
class TableHealth:
    """What :func:`inspect_table` found in one table folder."""

    table: str
    directory: Path
    pointer_error: str | None = None  # the pointer is lost or unreadable (then the other lists are about the folder)
    listed: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)  # part files the pointer does not list
    missing: list[str] = field(default_factory=list)  # listed parts that are not there
    no_checksum: list[str] = field(default_factory=list)  # listed parts without a recorded sha256
    mismatched: list[str] = field(default_factory=list)  # listed parts whose bytes differ from their sha256


def _rows(path: Path) -> int | None:
    try:
        return pq.read_metadata(path).num_rows
    except (OSError, pa.ArrowException):
        return None


def rows_note(directory: Path, names: list[str]) -> str:
    counts = [_rows(directory / n) for n in names]
    known = sum(c for c in counts if c is not None)
    unreadable = sum(c is None for c in counts)
    return f"{known} row(s)" + (f", {unreadable} unreadable part(s)" if unreadable else "")


def inspect_table(root: str | os.PathLike, table: str, check_sums: bool = True) -> TableHealth:
    """The pointer and part files of ``table`` (``check_sums`` hashes every listed part)."""
    directory = table_dir(root, table)
    health = TableHealth(table, directory)
    on_disk = [p.name for p in part_files(directory)]
    if lost_pointer(directory):
        health.pointer_error = f"{directory / POINTER} is missing or lists no parts"
        health.orphans = on_disk
        return health
    try:
        pointer = _read_pointer(directory)
    except ManifestError as exc:
        health.pointer_error = str(exc)
        health.orphans = on_disk
        return health
    health.listed = pointer["parts"]
    health.orphans = sorted(set(on_disk) - set(health.listed))
    for name in health.listed:
        path = directory / name
        recorded = pointer["sha256"].get(name)
        if not path.is_file():
            health.missing.append(name)
        elif recorded is None:
            health.no_checksum.append(name)
        elif check_sums and sha256_file(path) != recorded:
            health.mismatched.append(name)
    return health


# ----------------------------------------------------------------------------------------------------------- repair
@dataclass
class RepairPlan:
    table: str
    directory: Path
    action: str  # "none", "record_checksums" or "rebuild"
    reason: str
    parts: list[str] = field(default_factory=list)  # what the new pointer lists (rebuild: before de-duplication)
    damaged: list[str] = field(default_factory=list)  # parts that do not read; set aside, not deleted
    duplicates: int = 0  # keys in more than one part (the newest part's row is kept)
    rows: int = 0
    snapshot: tuple[str, ...] = ()  # the part files seen, so that apply can refuse if the folder changed

    def describe(self) -> str:
        if self.action == "none":
            return f"{self.table}: {self.reason}"
        if self.action == "record_checksums":
            return f"{self.table}: {self.reason}; record the sha256 of {len(self.parts)} part(s) as they are now"
        text = (
            f"{self.table}: {self.reason}; rebuild the pointer from {len(self.parts)} part(s) with {self.rows} row(s)"
        )
        if self.duplicates:
            text += f", {self.duplicates} key(s) in several parts (the newest part's row is kept)"
        if self.damaged:
            text += f"; set aside {len(self.damaged)} unreadable part(s) as damaged-<name>: {self.damaged}"
        return text


def _readable(path: Path, spec: TableSpec) -> pa.Table | None:
    try:
        _check_part_metadata(path, spec)
        return _read_checked(path, spec)
    except (ManifestError, OSError, pa.ArrowException):
        return None


def _by_age(directory: Path) -> list[Path]:
    return sorted(part_files(directory), key=lambda p: (p.stat().st_mtime_ns, p.name))


def _duplicates(spec: TableSpec, tables: list[pa.Table]) -> int:
    if not tables:
        return 0
    keys = key_array(spec, pa.concat_tables(tables))
    return len(keys) - len(pc.unique(keys))


def plan_repair(root: str | os.PathLike, table: str) -> RepairPlan:
    """What :func:`apply_repair` would do to ``table`` (nothing is changed)."""
    spec = get_spec(table)
    health = inspect_table(root, table)
    directory = health.directory
    snapshot = tuple(p.name for p in part_files(directory))
    plan = RepairPlan(table, directory, "none", "healthy", snapshot=snapshot)
    if health.mismatched:
        raise ManifestError(
            f"{directory}: part(s) {health.mismatched} differ from the sha256 recorded when they were written (bit "
            "rot or an edit); repair cannot restore their rows: restore them from a backup or re-run the stage"
        )
    if health.pointer_error is None and not health.missing:
        if health.no_checksum:
            plan.action, plan.parts = "record_checksums", list(health.no_checksum)
            plan.reason = f"{len(health.no_checksum)} part(s) have no recorded sha256"
        elif health.orphans:
            plan.reason = f"healthy; {len(health.orphans)} unlisted part(s) left by an interrupted write"
        return plan
    plan.action = "rebuild"
    plan.reason = health.pointer_error or f"the pointer lists {len(health.missing)} part(s) that are gone"
    tables = []
    for path in _by_age(directory):
        arrow = _readable(path, spec)
        if arrow is None:
            plan.damaged.append(path.name)
        else:
            plan.parts.append(path.name)
            tables.append(arrow)
    plan.duplicates = _duplicates(spec, tables)
    plan.rows = sum(t.num_rows for t in tables) - plan.duplicates
    return plan


def _newest_rows(spec: TableSpec, tables: list[pa.Table]) -> pa.Table:
    """One row per key: the one from the latest table in ``tables`` (oldest first)."""
    arrow = pa.concat_tables(tables)
    order = pa.array(range(arrow.num_rows), pa.int64())
    keyed = pa.table({"key": key_array(spec, arrow), "order": order})
    last = keyed.group_by("key").aggregate([("order", "max")]).column("order_max")
    return arrow.take(pc.take(last, pc.sort_indices(last)))  # in the original order


def apply_repair(root: str | os.PathLike, plan: RepairPlan) -> None:
    """Carry out ``plan`` under the table lock; refused if the folder changed since the plan was made."""
    spec = get_spec(plan.table)
    directory = plan.directory
    if plan.action == "none":
        return
    with _locked(directory):
        if tuple(p.name for p in part_files(directory)) != plan.snapshot:
            raise ManifestError(f"{directory} changed since the repair was planned; nothing was done, run it again")
        if plan.action == "record_checksums":
            pointer = _read_pointer(directory)
            sums = {**pointer["sha256"], **{n: sha256_file(directory / n) for n in plan.parts}}
            _commit(directory, pointer["parts"], sums, pointer["parts"])
            return
        pointer_path = directory / POINTER
        if pointer_path.is_file():  # keep the old pointer for the record
            shutil.copyfile(pointer_path, directory / f"{POINTER}.before-repair")
        for name in plan.damaged:
            with contextlib.suppress(FileNotFoundError):
                os.replace(directory / name, directory / f"damaged-{name}")
        sums: dict[str, str] = {}
        if plan.duplicates:
            tables = [_read_checked(directory / n, spec) for n in plan.parts]
            parts = [_write_part(directory, spec, chunk, sums) for chunk in _split(_newest_rows(spec, tables))]
        else:
            parts = list(plan.parts) or [_write_part(directory, spec, spec.schema.empty_table(), sums)]
            sums.update({n: sha256_file(directory / n) for n in plan.parts})
        _commit(directory, parts, sums, [])
