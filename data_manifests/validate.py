"""Whole-dataset validation: every problem found, each with table, key, column and a hint.

Errors mean the data is wrong or at risk (a lost pointer, a part whose bytes changed, a swapped photo, an id or
path that would leave the data root); warnings mean it cannot be fully checked or holds leftovers (parts written
before checksums were recorded, parts left by an interrupted write).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from .ids import sha256_file
from .paths import ID_RULE, bad_ids, is_inside
from .repair import inspect_table, rows_note
from .schemas import TABLES, TableSpec
from .store import _KEY_SEP, ManifestError, enum_violations, key_array, list_tables, part_paths, read_table


@dataclass(frozen=True)
class Problem:
    table: str
    key: str | None  # the row's key ("a / b" for composite keys); None for table-level problems
    column: str | None
    # short code: schema, duplicate_key, enum, null, foreign_key, missing_file, shape, pointer, orphan_part,
    # checksum, no_checksum, bad_id, path_outside_root, file_changed, no_file_hash
    kind: str
    message: str
    hint: str
    severity: str = "error"  # or "warning" (see the module docstring)

    def __str__(self) -> str:
        where = (
            self.table + (f"[{self.key}]" if self.key is not None else "") + (f".{self.column}" if self.column else "")
        )
        label = "warning: " if self.severity == "warning" else ""
        return f"{label}{where}: {self.message} (hint: {self.hint})"


def _key_str(keys: pa.Array, index: int) -> str:
    return keys[index].as_py().replace(_KEY_SEP, " / ")


def _checked_columns(spec: TableSpec, check_files: bool) -> list[str]:
    """Only the columns validation looks at, so that a large table is not read whole."""
    wanted = set(spec.key) | {f.name for f in spec.schema if not f.nullable} | set(spec.enums) | set(spec.list_enums)
    wanted |= {c for c in ("view_classes", "view_rles", "view_fractions") if c in spec.schema.names}
    wanted |= {c for fk in spec.foreign_keys for c in fk.columns}
    wanted |= set(spec.path_columns) | {c for c in ("identity_id", "image_id") if c in spec.schema.names}
    if check_files:
        wanted |= {c for pair in spec.file_hashes for c in pair}
    return [name for name in spec.schema.names if name in wanted]


def _repair_hint(root: Path, table: str) -> str:
    return f"run `diffveri manifests repair --root {root} --table {table}`"


def _file_problems(root: Path, spec: TableSpec) -> tuple[list[Problem], bool]:
    """The pointer and part files: lost pointer, orphaned parts, checksums. Returns (problems, readable)."""
    health = inspect_table(root, spec.name)
    name, directory = spec.name, health.directory
    problems = []
    if health.pointer_error is not None:
        note = rows_note(directory, health.orphans)
        message = f"{health.pointer_error}; {len(health.orphans)} part file(s) ({note}) are not part of the table"
        hint = _repair_hint(root, name) + " to rebuild the pointer from them (writes to the table are refused)"
        return [Problem(name, None, None, "pointer", message, hint)], False
    for part in health.orphans:
        problems.append(
            Problem(
                name,
                None,
                part,
                "orphan_part",
                f"part file {part} ({rows_note(directory, [part])}) is not listed in _current.json",
                "left by an interrupted write (the next write to the table deletes it); if rows are missing from "
                "the table, " + _repair_hint(root, name) + " before writing",
                "warning",
            )
        )
    for part in health.mismatched:
        problems.append(
            Problem(
                name,
                None,
                part,
                "checksum",
                f"the bytes of part file {part} differ from the sha256 recorded when it was written",
                "restore the part from a backup or re-run the stage that wrote the table",
            )
        )
    if health.no_checksum:
        problems.append(
            Problem(
                name,
                None,
                None,
                "no_checksum",
                f"{len(health.no_checksum)} part file(s) have no recorded sha256 (written before checksums were "
                "recorded), so damage to them cannot be detected",
                _repair_hint(root, name) + " to record them",
                "warning",
            )
        )
    return problems, True


def _table_problems(
    root: Path, spec: TableSpec, check_files: bool, progress: bool = False
) -> tuple[list[Problem], pa.Table | None]:
    problems, readable = _file_problems(root, spec)
    if not readable:
        return problems, None
    try:
        part_paths(root, spec.name)
        arrow = read_table(root, spec.name, columns=_checked_columns(spec, check_files), check_ids=False)
    except (ManifestError, OSError, pa.ArrowInvalid, json.JSONDecodeError) as exc:
        problems.append(Problem(spec.name, None, None, "schema", str(exc), "rewrite the table with the current stage"))
        return problems, None
    problems += _row_problems(root, spec, arrow, check_files, progress)
    return problems, arrow


def _row_problems(
    root: Path, spec: TableSpec, arrow: pa.Table, check_files: bool, progress: bool = False
) -> list[Problem]:
    problems: list[Problem] = []
    keys = key_array(spec, arrow)

    # 1. Keys unique across all parts.
    counts = pc.value_counts(keys)
    for item in counts.filter(pc.greater(counts.field("counts"), 1)).to_pylist():
        problems.append(
            Problem(
                spec.name,
                item["values"].replace(_KEY_SEP, " / "),
                ",".join(spec.key),
                "duplicate_key",
                f"key appears {item['counts']} times",
                "write through data_manifests.upsert",
            )
        )
    # 2. Required columns.
    for f in spec.schema:
        if not f.nullable and arrow.column(f.name).null_count:
            for index in pc.indices_nonzero(pc.is_null(arrow.column(f.name))).to_pylist():
                problems.append(
                    Problem(
                        spec.name,
                        _key_str(keys, index),
                        f.name,
                        "null",
                        "required value is missing",
                        "re-run the stage that writes this table",
                    )
                )
    # 3. Enumerations.
    for index, column, value in enum_violations(spec, arrow):
        allowed = sorted(spec.enums.get(column) or spec.list_enums[column])
        problems.append(
            Problem(
                spec.name, _key_str(keys, index), column, "enum", f"{value!r} is not allowed", f"use one of {allowed}"
            )
        )
    # 4. Aligned view lists.
    if "view_classes" in arrow.column_names:
        lengths = [
            pc.list_value_length(arrow.column(c))
            for c in ("view_classes", "view_rles", "view_fractions")
            if c in arrow.column_names
        ]
        for other in lengths[1:]:
            mismatch = pc.fill_null(pc.not_equal(lengths[0], other), False)
            for index in pc.indices_nonzero(mismatch).to_pylist():
                problems.append(
                    Problem(
                        spec.name,
                        _key_str(keys, index),
                        "view_rles",
                        "shape",
                        "view_classes and the per-view lists differ in length",
                        "write one RLE and one fraction per view class",
                    )
                )
    # 5. Ids are single safe path components; paths stay inside the root, the files exist and keep their bytes.
    problems += _id_problems(spec, arrow, keys)
    problems += _path_problems(root, spec, arrow, keys, check_files, progress)
    if check_files:
        problems += _hash_problems(root, spec, arrow, keys, progress)
    return problems


def _id_problems(spec: TableSpec, arrow: pa.Table, keys: pa.Array) -> list[Problem]:
    return [
        Problem(spec.name, _key_str(keys, i), column, "bad_id", f"{value!r} is not a valid id", ID_RULE)
        for i, column, value in bad_ids(arrow)
    ]


def _flat(arrow: pa.Table, column: str) -> tuple[list, list[int]]:
    """The values of a column and the row of each (list columns are flattened)."""
    col = arrow.column(column)
    if pa.types.is_list(col.type):
        return pc.list_flatten(col).to_pylist(), pc.list_parent_indices(col).to_pylist()
    return col.to_pylist(), list(range(arrow.num_rows))


def _path_problems(
    root: Path, spec: TableSpec, arrow: pa.Table, keys: pa.Array, check_files: bool, progress: bool = False
) -> list[Problem]:
    problems = []
    for column in spec.path_columns:
        values, rows = _flat(arrow, column)
        # Checking that every file exists takes minutes on a whole dataset: a bar with ETA (only then).
        bar = tqdm(
            zip(values, rows),
            total=len(values),
            desc=f"validate {spec.name}.{column}",
            unit="file",
            disable=not (progress and check_files),
        )
        for value, index in bar:
            if value is None:
                continue
            if not is_inside(value):
                message, kind = f"path {value!r} leaves the data root {root}", "path_outside_root"
                hint = "manifest paths are relative paths inside the data root: fix or delete the row"
            elif check_files and not os.path.exists(root / value):
                message, kind = f"file {value!r} does not exist under {root}", "missing_file"
                hint = "restore the file or re-run the stage that wrote it"
            else:
                continue
            problems.append(Problem(spec.name, _key_str(keys, index), column, kind, message, hint))
    return problems


def _hash_problems(
    root: Path, spec: TableSpec, arrow: pa.Table, keys: pa.Array, progress: bool = False
) -> list[Problem]:
    """Files whose bytes differ from the sha256 recorded with them (a swapped or edited photo)."""
    problems, unhashed = [], 0
    for path_column, hash_column in spec.file_hashes:
        paths, hashes = arrow.column(path_column).to_pylist(), arrow.column(hash_column).to_pylist()
        bar = tqdm(
            zip(paths, hashes), total=len(paths), desc=f"validate {spec.name} sha256", unit="row", disable=not progress
        )
        for index, (row_paths, row_hashes) in enumerate(bar):
            if row_hashes is None:
                unhashed += 1
                continue
            for value, recorded in zip(row_paths or [], row_hashes):
                path = root / value
                if is_inside(value) and path.is_file() and sha256_file(path) != recorded:
                    problems.append(
                        Problem(
                            spec.name,
                            _key_str(keys, index),
                            path_column,
                            "file_changed",
                            f"the bytes of {value!r} differ from the sha256 recorded when it was imported",
                            "restore the original file, or import the identity again with --replace",
                        )
                    )
    if unhashed:
        message = f"{unhashed} row(s) have no recorded sha256 of their files, so a swapped file is not noticed"
        problems.append(
            Problem(spec.name, None, None, "no_file_hash", message, "import them again to record it", "warning")
        )
    return problems


def validate(
    root: str | os.PathLike, check_files: bool = True, warnings: bool = False, progress: bool = False
) -> list[Problem]:
    """Check every table under ``root``: the pointer and part checksums, schema version, key uniqueness, required
    values, enumerations, aligned per-view lists, ids and paths, foreign keys between tables, and (``check_files``)
    that referenced files exist and keep their recorded sha256.

    Returns the errors found (an empty list means valid), and with ``warnings`` the warnings too. ``progress``
    draws a bar with ETA (stderr) over the file checks of each table."""
    root = Path(root)
    present = list_tables(root)
    problems: list[Problem] = []
    keysets: dict[str, set[str]] = {}
    tables: dict[str, pa.Table] = {}
    for name in present:
        found, arrow = _table_problems(root, TABLES[name], check_files, progress)
        problems.extend(found)
        if arrow is not None:
            tables[name] = arrow
    # 6. Foreign keys, where both tables are present.
    for name, arrow in tables.items():
        spec = TABLES[name]
        for fk in spec.foreign_keys:
            if fk.table not in tables:
                continue
            if fk.table not in keysets:
                keysets[fk.table] = set(key_array(TABLES[fk.table], tables[fk.table]).to_pylist())
            target = pa.array(sorted(keysets[fk.table]), pa.string())
            cols = [pc.cast(arrow.column(c), pa.string()) for c in fk.columns]
            values = cols[0] if len(cols) == 1 else pc.binary_join_element_wise(*cols, _KEY_SEP)
            missing = pc.invert(pc.is_in(values, value_set=target))
            keys = key_array(spec, arrow)
            for index in pc.indices_nonzero(missing).to_pylist():
                problems.append(
                    Problem(
                        name,
                        _key_str(keys, index),
                        ",".join(fk.columns),
                        "foreign_key",
                        f"{values[index].as_py()!r} has no row in {fk.table!r}",
                        f"run the {fk.table} stage first or remove the orphan row",
                    )
                )
    return problems if warnings else [p for p in problems if p.severity == "error"]


def summarize(problems: list[Problem], per_kind: int = 20) -> str:
    """Human-readable report: every problem up to ``per_kind`` per (table, kind), then counts."""
    errors = [p for p in problems if p.severity == "error"]
    if not problems:
        return "valid: no problems found"
    shown: Counter[tuple[str, str]] = Counter()
    lines = []
    for p in problems:
        shown[(p.table, p.kind)] += 1
        if shown[(p.table, p.kind)] <= per_kind:
            lines.append(f"- {p}")
    for (table, kind), n in sorted(shown.items()):
        if n > per_kind:
            lines.append(f"- {table}: {n - per_kind} more {kind} problem(s) not shown")
    n_warnings = f"{len(problems) - len(errors)} warning(s)"
    if errors:
        lines.append(f"{len(errors)} problem(s) in {len({p.table for p in errors})} table(s); {n_warnings}")
    else:
        lines.append(f"valid: no problems found ({n_warnings})")
    return "\n".join(lines)
