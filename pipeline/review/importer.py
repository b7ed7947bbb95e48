"""Import an annotated review CSV: validate the whole file first, then write, or write nothing.

The delimiter (comma, semicolon or tab) is detected from the header row and named in the report. Image ids are
accepted in the exported form (``i`` + id) and bare (files exported before the prefix). An id that a spreadsheet
turned into a number (``8.12346E+15``) is recovered only when that is exact: the row's ``image`` cell names exactly
one image of the batch and that image's id, read as a number, rounds to the cell's value; the report lists each
recovered row. Otherwise it is a problem naming the row.

Problems found (each with its CSV line number): not UTF-8, missing or renamed columns, unknown batch or image ids,
rows from another batch, duplicate rows, invalid decision / view / identity_ok values, edited read-only columns,
an image whose bytes changed since export, paths outside the data root, a decision without a reviewer.
Re-importing the same file changes nothing; a corrected file supersedes row by row and each superseded decision is
appended to the row's ``history`` (JSON list). A file the csv reader cannot parse, or a stray quote that made a
cell swallow the rows after it, is a problem with its line number. Two imports of one batch at the same time
cannot lose a decision: the write is a compare-and-swap on the table, and the import that loses the race checks
again against the new rows (the other decision moves to ``history``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import operator
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.compute as pc

import data_manifests as dm
from data_manifests import INTENDED_VIEWS, Decision

from .batch_files import batch_rows
from .csvio import (
    COLUMNS,
    DELIMITERS,
    READ_ONLY,
    CsvSyntaxError,
    detect_delimiter,
    export_id,
    gc_paused,
    read_csv_lines,
)
from .hashing import hash_files
from .idfix import looks_numeric, mangled_message, resolve_ids
from .queries import batch_reviews, image_info, status_of

log = logging.getLogger(__name__)

DECISIONS = (Decision.ACCEPT.value, Decision.REJECT.value, Decision.UNSURE.value)
YES, NO = frozenset({"yes", "y", "true", "1"}), frozenset({"no", "n", "false", "0"})
_FILE_BATCH = re.compile(r"^batch_(.+)\.csv$", re.IGNORECASE)


@dataclass(frozen=True)
class ImportProblem:
    line: int  # CSV line number (1 = header); 0 for the file as a whole
    column: str | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "file"
        return f"{where}" + (f", column {self.column}" if self.column else "") + f": {self.message}"


@dataclass
class ImportReport:
    path: str
    batch_id: str | None = None
    rows: int = 0  # data rows in the file
    updated: int = 0  # rows whose decision was written (new or superseding)
    unchanged: int = 0  # rows equal to what the table already holds
    blank: int = 0  # rows without a decision (left pending)
    missing: int = 0  # batch images absent from the file (left as they are)
    delimiter: str = ","  # detected from the header row
    recovered: list[str] = field(default_factory=list)  # rows whose spreadsheet-mangled id was recovered exactly
    problems: list[ImportProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def delimiter_name(self) -> str:
        return DELIMITERS.get(self.delimiter, repr(self.delimiter))

    def __str__(self) -> str:
        if self.problems:
            lines = [
                f"{self.path} ({self.delimiter_name}-delimited): {len(self.problems)} problem(s); nothing was "
                "imported. Fix them and import again:"
            ]
            lines += [f"  {p}" for p in self.problems]
            return "\n".join(lines)
        lines = [
            f"{self.path} ({self.delimiter_name}-delimited): batch {self.batch_id}: {self.rows} rows, {self.updated} "
            f"written, {self.unchanged} unchanged, {self.blank} without decision, {self.missing} batch image(s) not "
            "in the file"
        ]
        lines += [f"  {note}" for note in self.recovered]
        return "\n".join(lines)


def _inside(rel: str) -> bool:
    """Is the relative path ``rel`` inside the data root? (Lexical: "a/../b" is inside, "../x" and "/x" are not.)"""
    if not rel:
        return True
    if os.path.isabs(rel) or re.match(r"^[A-Za-z]:[\\/]", rel):
        return False
    norm = os.path.normpath(rel.replace("\\", "/"))
    return norm != ".." and not norm.startswith("../")


def _same_conf(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        # spreadsheets rewrite 0.9000 as 0.9, and as 0,9 in locales with a decimal comma
        return math.isclose(float(a.replace(",", ".")), float(b), abs_tol=5e-5)
    except ValueError:
        return False


def import_review_csv(path: str | Path, root: str | Path, *, default_reviewer: str | None = None) -> ImportReport:
    """Validate ``path`` completely, then upsert its decisions into ``reviews`` — or, on any problem, write nothing.

    The decisions are compared with the table and written as one compare-and-swap (``upsert(..., if_version=)``):
    if another import committed in between, this one reads the table again and re-checks, so the other import's
    decisions end up in ``history`` instead of being overwritten.

    Args:
        path: the annotated ``batch_<id>.csv``.
        root: the data root.
        default_reviewer: recorded for rows whose ``reviewer`` cell is empty (else such rows are a problem).
    Returns:
        the report; ``report.ok`` is False when problems were found (then the manifests are unchanged).
    """
    with gc_paused():
        for _attempt in range(MAX_ATTEMPTS):
            try:
                return _import(Path(path), Path(root), default_reviewer)
            except dm.ConflictError:
                log.info("review import %s: the reviews table changed meanwhile; checking again", path)
    raise dm.ConflictError(
        f"{path}: the reviews table kept changing while this file was imported ({MAX_ATTEMPTS} attempts); nothing "
        "was written from it, import it again"
    )


MAX_ATTEMPTS = 5


def _import(path: Path, root: Path, default_reviewer: str | None) -> ImportReport:
    report = ImportReport(str(path))
    # The table's version before anything is read from it: the write below only happens if it is unchanged.
    version = dm.table_version(root, "reviews")
    # 1. Decode, parse, check the header and the cell count of every row.
    records = _parse(path, report)
    if records is None:
        return report
    report.rows = len(records)
    # 2. Which batch is this file?
    batch = _batch_of(path, root, records, report)
    if batch is None:
        return report
    # 3. Row by row: every problem is collected, none stops the check.
    ctx = _context(root, batch, records, report)
    _check_rows(root, ctx, records, default_reviewer, report.problems)
    report.missing = len(set(ctx.expected) - {r["image_id"] for _, r in records})
    if report.problems:
        return report
    # 4. Nothing wrong: write the rows that say something new, keeping what they supersede.
    changed = _changes(ctx, records, default_reviewer, report)
    if changed:
        dm.upsert(root, "reviews", changed, if_version=version)
    report.updated = len(changed)
    log.debug("%s", report)
    return report


def _parse(path: Path, report: ImportReport) -> list[tuple[int, dict[str, str]]] | None:
    """The data rows as ``(line, {column: stripped cell})``; None when the file as a whole cannot be read."""
    problems = report.problems
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        problems.append(ImportProblem(0, None, f"not UTF-8 ({exc}); save it as 'CSV UTF-8'"))
        return None
    report.delimiter = detect_delimiter(text.split("\n", 1)[0])
    try:
        lines = list(read_csv_lines(text, report.delimiter))
    except CsvSyntaxError as exc:
        problems.append(ImportProblem(exc.line, None, exc.reason))
        return None
    if not lines:
        problems.append(ImportProblem(0, None, "empty file; expected a header row"))
        return None
    header = [h.strip() for h in lines[0][1]]
    message = _header_problem(header)
    if message:
        problems.append(ImportProblem(1, None, message))
        return None
    pick = operator.itemgetter(*(header.index(name) for name in COLUMNS))
    records: list[tuple[int, dict[str, str]]] = []
    for line, cells in lines[1:]:
        if not "".join(cells).strip():
            continue  # spreadsheets append empty lines
        if len(cells) != len(header):
            spans = sum(c.count("\n") for c in cells)
            hint = f"; its cells run over {spans + 1} lines: a quote is probably not closed" if spans else ""
            problems.append(ImportProblem(line, None, f"{len(cells)} cells but the header has {len(header)}{hint}"))
            continue
        records.append((line, dict(zip(COLUMNS, map(str.strip, pick(cells)), strict=True))))
    return records


def _header_problem(header: list[str]) -> str | None:
    missing = [c for c in COLUMNS if c not in header]
    unknown = [h for h in header if h not in COLUMNS]
    dup_cols = [h for h, n in Counter(header).items() if n > 1]
    if not (missing or unknown or dup_cols):
        return None
    msg = []
    if missing:
        msg.append(f"missing column(s) {missing}")
    if unknown:
        msg.append(f"unknown column(s) {unknown} (renamed? an index column written by pandas?)")
    if dup_cols:
        msg.append(f"duplicate column(s) {dup_cols}")
    return "; ".join(msg) + f". The header must be exactly: {','.join(COLUMNS)}"


def _batch_of(path: Path, root: Path, records: list[tuple[int, dict[str, str]]], report: ImportReport) -> str | None:
    """The file's batch: its name says so; otherwise the most common batch_id in it. None (and problems) if unknown."""
    batch_col = dm.read_table(root, "reviews", columns=["batch_id"], missing_ok=True)["batch_id"]
    known_batches = set(pc.unique(batch_col).to_pylist())
    m = _FILE_BATCH.match(path.name)
    file_batch = m.group(1) if m else None
    if file_batch is None or file_batch not in known_batches:
        common = Counter(r["batch_id"] for _, r in records).most_common(1)
        file_batch = common[0][0] if common else file_batch
    report.batch_id = file_batch
    if file_batch in known_batches:
        return file_batch
    report.problems.append(
        ImportProblem(0, "batch_id", f"unknown batch {file_batch!r}; `diffveri review status` lists the batches")
    )
    for line, r in records:
        report.problems.append(ImportProblem(line, "batch_id", f"unknown batch {r['batch_id']!r}"))
    return None


@dataclass
class _Context:
    """What a batch's rows are checked against: the table's current rows and the exported values."""

    batch: str
    known_batches: set[str]
    current: dict[str, dict[str, Any]]
    info: dict[str, dict[str, Any]]
    expected: dict[str, dict[str, str]]
    hashes: dict[str, str | None]


def _context(root: Path, batch: str, records: list[tuple[int, dict[str, str]]], report: ImportReport) -> _Context:
    batch_col = dm.read_table(root, "reviews", columns=["batch_id"], missing_ok=True)["batch_id"]
    current_rows = batch_reviews(root, batch)
    current = {r["image_id"]: r for r in current_rows}
    info = image_info(root, list(current))
    expected = {r["image_id"]: r for r in batch_rows(root, batch, current_rows, info)}
    # Exported ids carry a prefix; older files do not; a spreadsheet may have made a number of one.
    resolve_ids(records, expected, report.recovered)
    # The source images of the rows that name a batch image, hashed up front (threads overlap the file reads).
    to_hash = sorted({r["image_id"] for _, r in records if r["image_id"] in info and info[r["image_id"]]["path"]})
    base = str(root)
    paths = [os.path.join(base, info[i]["path"]) if _inside(info[i]["path"]) else "" for i in to_hash]
    hashes = dict(zip(to_hash, hash_files(paths, desc=f"review import {batch}: hashing"), strict=True))
    return _Context(batch, set(pc.unique(batch_col).to_pylist()), current, info, expected, hashes)


def _check_rows(
    root: Path,
    ctx: _Context,
    records: list[tuple[int, dict[str, str]]],
    default_reviewer: str | None,
    problems: list[ImportProblem],
) -> None:
    seen: dict[str, int] = {}
    generation_ids: set[str] | None = None
    for line, r in records:
        bid, iid = r["batch_id"], r["image_id"]
        merged = _merged_rows(line, r, ctx)
        if merged:
            problems.append(merged)
            continue
        if bid != ctx.batch:
            where = "another batch" if bid in ctx.known_batches else "an unknown batch"
            problems.append(
                ImportProblem(line, "batch_id", f"row is from {where} ({bid!r}); this file is batch {ctx.batch!r}")
            )
            continue
        if iid not in ctx.expected:
            if looks_numeric(iid):
                problems.append(ImportProblem(line, "image_id", mangled_message(iid, ctx.batch)))
                continue
            if generation_ids is None:  # read once, only when a file names an image outside its batch
                generation_ids = dm.existing_keys(root, "generations")
            known = iid in generation_ids
            message = f"image {iid!r} is not in batch {ctx.batch}" if known else f"unknown image id {iid!r}"
            problems.append(ImportProblem(line, "image_id", message))
            continue
        if iid in seen:
            problems.append(
                ImportProblem(line, "image_id", f"duplicate row: image {iid} is already on line {seen[iid]}")
            )
            continue
        seen[iid] = line
        problems.extend(_row_problems(root, ctx, line, r, default_reviewer))


def _merged_rows(line: int, r: dict[str, str], ctx: _Context) -> ImportProblem | None:
    """A cell that holds other rows of the batch: a stray quote made the csv reader swallow the lines after it."""
    for column, value in r.items():
        if "\n" not in value and "\r" not in value:
            continue
        # Built only for a cell that spans lines (rare): every row of a 100k-row file passes through here.
        ids = set(ctx.expected) | {export_id(i) for i in ctx.expected} | {ctx.batch}
        inner = value.splitlines()[1:]
        swallowed = [t for t in inner if ids & set(re.split(r"[,\"\s]+", t))]
        if swallowed:
            return ImportProblem(
                line,
                column,
                f"this cell runs over lines {line}-{line + len(inner)} and holds {len(swallowed)} other row(s) of "
                "the batch: a quote in it is not closed. Remove the stray quote (or quote the whole cell and double "
                "the quotes inside it)",
            )
    return None


def _row_problems(
    root: Path, ctx: _Context, line: int, r: dict[str, str], default_reviewer: str | None
) -> list[ImportProblem]:
    problems = []
    iid = r["image_id"]
    exp = ctx.expected[iid]
    for name in READ_ONLY[2:]:
        value = r[name]
        if value == exp[name]:
            continue
        if name in ("image", "reference") and not _inside(value):
            problems.append(ImportProblem(line, name, f"path {value!r} is outside the data root {root}"))
        elif name == "detector_conf" and _same_conf(value, exp[name]):
            continue
        elif value != exp[name]:
            problems.append(ImportProblem(line, name, f"read-only column edited: {value!r}, exported as {exp[name]!r}"))
    decision = r["decision"].lower()
    if decision and decision not in DECISIONS:
        problems.append(
            ImportProblem(line, "decision", f"{r['decision']!r} is not one of {list(DECISIONS)} (or empty)")
        )
    view = r["view_label"]
    if view and view not in INTENDED_VIEWS:
        problems.append(ImportProblem(line, "view_label", f"{view!r} is not one of {list(INTENDED_VIEWS)}"))
    elif decision == Decision.ACCEPT.value and not view:
        problems.append(ImportProblem(line, "view_label", "an accepted image needs a view label"))
    ok = r["identity_ok"].lower()
    if ok and ok not in YES | NO:
        problems.append(ImportProblem(line, "identity_ok", f"{r['identity_ok']!r} is not yes, no or empty"))
    if decision and not r["reviewer"] and not default_reviewer:
        problems.append(ImportProblem(line, "reviewer", "a decision needs a reviewer (your name or initials)"))
    # The image the decision is about must be the one that was exported.
    rel = ctx.info.get(iid, {}).get("path")
    if ctx.hashes.get(iid) is None:
        problems.append(ImportProblem(line, "image", f"the image file of {iid} ({rel}) no longer exists"))
    elif ctx.hashes[iid] != ctx.current[iid]["source_sha256"]:
        problems.append(
            ImportProblem(line, "image", f"the bytes of {rel} changed since export; re-export and review it again")
        )
    return problems


def _changes(
    ctx: _Context, records: list[tuple[int, dict[str, str]]], default_reviewer: str | None, report: ImportReport
) -> list[dict[str, Any]]:
    """The rows that say something new, each with the decision it supersedes appended to its history."""
    now = dt.datetime.now(dt.UTC)
    changed = []
    for _line, r in records:
        decision = r["decision"].lower()
        if not decision:
            report.blank += 1
            continue
        ok_text = r["identity_ok"].lower()
        identity_ok = True if ok_text in YES else False if ok_text in NO else None
        new = {
            "decision": decision,
            "view_label": r["view_label"] or None,
            "identity_ok": identity_ok,
            "notes": r["notes"] or None,
            "reviewer": r["reviewer"] or default_reviewer,
        }
        old = ctx.current[r["image_id"]]
        if all(_norm(old.get(k)) == _norm(v) for k, v in new.items()):
            report.unchanged += 1
            continue
        history = json.loads(old["history"]) if _norm(old.get("history")) else []
        if old["decision"] != Decision.PENDING.value:
            history.append(_history_entry(old))
        status, reason = status_of(decision, identity_ok)
        changed.append(
            {
                "image_id": r["image_id"],
                "batch_id": ctx.batch,
                **new,
                "reviewed_at": now,
                "source_sha256": old["source_sha256"],
                "history": json.dumps(history) if history else None,
                "status": status,
                "reason": reason,
            }
        )
    return changed


def _norm(value: Any) -> Any:
    """NaN/NaT/None -> None; numpy bools -> bool (so stored and parsed values compare equal)."""
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if hasattr(value, "item") and not isinstance(value, pd.Timestamp):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value


def _history_entry(old: dict[str, Any]) -> dict[str, Any]:
    """The superseded decision as a JSON-ready dict."""
    entry = {
        k: _norm(old.get(k)) for k in ("decision", "view_label", "identity_ok", "notes", "reviewer", "reviewed_at")
    }
    if entry["reviewed_at"] is not None:
        entry["reviewed_at"] = entry["reviewed_at"].isoformat()
    return entry
