"""Whole-dataset validation: every problem found, each with table, key, column and a hint."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from .schemas import TABLES, TableSpec
from .store import _KEY_SEP, ManifestError, enum_violations, key_array, list_tables, part_paths, read_table


@dataclass(frozen=True)
class Problem:
    table: str
    key: str | None  # the row's key ("a / b" for composite keys); None for table-level problems
    column: str | None
    kind: str  # short code: schema, duplicate_key, enum, null, foreign_key, missing_file, shape
    message: str
    hint: str

    def __str__(self) -> str:
        where = (
            self.table + (f"[{self.key}]" if self.key is not None else "") + (f".{self.column}" if self.column else "")
        )
        return f"{where}: {self.message} (hint: {self.hint})"


def _key_str(keys: pa.Array, index: int) -> str:
    return keys[index].as_py().replace(_KEY_SEP, " / ")


def _checked_columns(spec: TableSpec, check_files: bool) -> list[str]:
    """Only the columns validation looks at, so that a large table is not read whole."""
    wanted = set(spec.key) | {f.name for f in spec.schema if not f.nullable} | set(spec.enums) | set(spec.list_enums)
    wanted |= {c for c in ("view_classes", "view_rles", "view_fractions") if c in spec.schema.names}
    wanted |= {c for fk in spec.foreign_keys for c in fk.columns}
    if check_files:
        wanted |= set(spec.path_columns)
    return [name for name in spec.schema.names if name in wanted]


def _table_problems(root: Path, spec: TableSpec, check_files: bool) -> tuple[list[Problem], pa.Table | None]:
    problems: list[Problem] = []
    try:
        part_paths(root, spec.name)
        arrow = read_table(root, spec.name, columns=_checked_columns(spec, check_files))
    except (ManifestError, OSError, pa.ArrowInvalid, json.JSONDecodeError) as exc:
        problems.append(Problem(spec.name, None, None, "schema", str(exc), "rewrite the table with the current stage"))
        return problems, None
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
    # 5. Referenced files exist (relative to the data root).
    if check_files:
        for column in spec.path_columns:
            col = arrow.column(column)
            if pa.types.is_list(col.type):
                flat, parents = pc.list_flatten(col).to_pylist(), pc.list_parent_indices(col).to_pylist()
            else:
                flat, parents = col.to_pylist(), range(arrow.num_rows)
            for value, index in zip(flat, parents):
                if value is not None and not os.path.exists(root / value):
                    problems.append(
                        Problem(
                            spec.name,
                            _key_str(keys, index),
                            column,
                            "missing_file",
                            f"file {value!r} does not exist under {root}",
                            "restore the file or re-run the stage that wrote it",
                        )
                    )
    return problems, arrow


def validate(root: str | os.PathLike, check_files: bool = True) -> list[Problem]:
    """Check every table under ``root``: schema version, key uniqueness, required values, enumerations,
    aligned per-view lists, foreign keys between tables, and (``check_files``) that referenced files exist.
    Returns all problems found (an empty list means valid)."""
    root = Path(root)
    present = list_tables(root)
    problems: list[Problem] = []
    keysets: dict[str, set[str]] = {}
    tables: dict[str, pa.Table] = {}
    for name in present:
        found, arrow = _table_problems(root, TABLES[name], check_files)
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
    return problems


def summarize(problems: list[Problem], per_kind: int = 20) -> str:
    """Human-readable report: every problem up to ``per_kind`` per (table, kind), then counts."""
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
    lines.append(f"{len(problems)} problem(s) in {len({p.table for p in problems})} table(s)")
    return "\n".join(lines)
