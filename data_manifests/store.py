"""The one Parquet reader/writer of the manifest tables.

Layout: ``<root>/manifests/<table>/`` holds immutable part files and a small ``_current.json`` that lists the
parts making up the table. Every write (1) writes new part files under temporary names and renames them into place,
(2) atomically replaces ``_current.json`` (temp file + ``os.replace``), (3) deletes parts that are no longer listed.
A crash at any point leaves either the previous or the new state readable, never a mix and never a half file:
readers only open parts that a committed ``_current.json`` lists. Writers of one table serialise on a file lock, so
shards running in parallel threads or processes on one machine (or on a shared POSIX file system) can upsert safely.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from .schemas import META_TABLE, META_VERSION, SCHEMA_VERSION, TableSpec, get_spec

POINTER = "_current.json"
LOCK = ".lock"
ROWS_PER_PART = 1_000_000
ROW_GROUP_SIZE = 128 * 1024
_KEY_SEP = "\x1f"

TableLike = pa.Table | Iterable[Mapping[str, Any]] | Any  # a pyarrow Table, rows as dicts, or a pandas DataFrame


class ManifestError(ValueError):
    """Bad data offered to, or found in, a manifest table. The message names the table, row and fix."""


class SchemaVersionError(ManifestError):
    """A part file was written with another schema version than this package reads."""


@dataclass(frozen=True)
class UpsertResult:
    inserted: int
    updated: int


def manifests_dir(root: str | os.PathLike) -> Path:
    return Path(root) / "manifests"


def table_dir(root: str | os.PathLike, table: str) -> Path:
    get_spec(table)
    return manifests_dir(root) / table


def table_exists(root: str | os.PathLike, table: str) -> bool:
    return (table_dir(root, table) / POINTER).is_file()


def list_tables(root: str | os.PathLike) -> list[str]:
    """Names of the tables present under ``root``."""
    from .schemas import TABLES

    return [name for name in TABLES if table_exists(root, name)]


# ----------------------------------------------------------------------------------------------------------- coercion
def to_arrow(table: str, data: TableLike) -> pa.Table:
    """Coerce ``data`` to the table's schema, with errors that name the column and the row.

    Unknown columns are an error (they are usually typos); missing nullable columns are filled with nulls.
    """
    spec = get_spec(table)
    schema = spec.schema
    if isinstance(data, pa.Table):
        unknown = sorted(set(data.column_names) - set(schema.names))
        if unknown:
            raise ManifestError(f"{table}: unknown column(s) {unknown}; the schema has {schema.names}")
        columns = []
        for f in schema:
            if f.name in data.column_names:
                try:
                    columns.append(data.column(f.name).cast(f.type))
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise ManifestError(f"{table}: column {f.name!r} cannot be cast to {f.type}: {exc}") from exc
            else:
                columns.append(pa.nulls(data.num_rows, f.type))
        arrow = pa.Table.from_arrays(columns, schema=schema)
    elif hasattr(data, "to_dict") and hasattr(data, "columns"):  # pandas DataFrame
        return to_arrow(table, pa.Table.from_pandas(data, preserve_index=False))
    else:
        rows = list(data)
        allowed = set(schema.names)
        for i, row in enumerate(rows):
            unknown = set(row) - allowed
            if unknown:
                raise ManifestError(f"{table}: row {i} has unknown column(s) {sorted(unknown)}; schema: {schema.names}")
        try:
            arrow = pa.Table.from_pylist(rows, schema=schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
            raise ManifestError(f"{table}: rows do not fit the schema: {exc}") from exc
    _check_non_null(spec, arrow)
    _check_enums(spec, arrow)
    return arrow


def _row_label(spec: TableSpec, arrow: pa.Table, index: int) -> str:
    parts = []
    for k in spec.key:
        parts.append(f"{k}={arrow.column(k)[index].as_py()!r}")
    return f"row {index} ({', '.join(parts)})"


def _check_non_null(spec: TableSpec, arrow: pa.Table) -> None:
    for f in spec.schema:
        if not f.nullable and arrow.column(f.name).null_count:
            index = pc.index(pc.is_null(arrow.column(f.name)), True).as_py()
            raise ManifestError(f"{spec.name}: column {f.name!r} is required but row {index} has no value")


def enum_violations(spec: TableSpec, arrow: pa.Table) -> list[tuple[int, str, Any]]:
    """``(row index, column, bad value)`` for every value outside its column's enumeration."""
    bad: list[tuple[int, str, Any]] = []
    for column, allowed in spec.enums.items():
        if column not in arrow.column_names:
            continue
        col = arrow.column(column)
        invalid = pc.and_(pc.invert(pc.is_in(col, value_set=pa.array(sorted(allowed)))), pc.is_valid(col))
        for index in pc.indices_nonzero(invalid).to_pylist():
            bad.append((index, column, col[index].as_py()))
    for column, allowed in spec.list_enums.items():
        if column not in arrow.column_names:
            continue
        col = arrow.column(column)
        flat = pc.list_flatten(col)
        parents = pc.list_parent_indices(col)
        invalid = pc.invert(pc.is_in(flat, value_set=pa.array(sorted(allowed))))
        for j in pc.indices_nonzero(invalid).to_pylist():
            bad.append((parents[j].as_py(), column, flat[j].as_py()))
    return bad


def _check_enums(spec: TableSpec, arrow: pa.Table) -> None:
    bad = enum_violations(spec, arrow)
    if bad:
        lines = [f"  {_row_label(spec, arrow, i)}: {column}={value!r}" for i, column, value in bad[:10]]
        more = f"\n  ... and {len(bad) - 10} more" if len(bad) > 10 else ""
        allowed = {c: sorted(spec.enums.get(c) or spec.list_enums[c]) for c in sorted({c for _, c, _ in bad})}
        raise ManifestError(
            f"{spec.name}: values outside their enumeration:\n"
            + "\n".join(lines)
            + more
            + f"\nallowed: {allowed} (add new codes in data_manifests/enums.py)"
        )


def key_array(spec: TableSpec, arrow: pa.Table) -> pa.Array:
    """One string per row identifying its key (columns joined by a separator for composite keys)."""
    cols = [pc.cast(arrow.column(k), pa.string()) for k in spec.key]
    if len(cols) == 1:
        return cols[0].combine_chunks() if isinstance(cols[0], pa.ChunkedArray) else cols[0]
    joined = pc.binary_join_element_wise(*cols, _KEY_SEP)
    return joined.combine_chunks() if isinstance(joined, pa.ChunkedArray) else joined


def _check_unique(spec: TableSpec, arrow: pa.Table) -> None:
    keys = key_array(spec, arrow)
    if len(pc.unique(keys)) != len(keys):
        counts = pc.value_counts(keys)
        dups = [v["values"] for v in counts.to_pylist() if v["counts"] > 1][:5]
        shown = [d.replace(_KEY_SEP, " / ") for d in dups]
        raise ManifestError(f"{spec.name}: duplicate key(s) {spec.key} in the rows to write: {shown}")


# -------------------------------------------------------------------------------------------------------- files & lock
@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_pointer(directory: Path) -> dict[str, Any]:
    path = directory / POINTER
    if not path.is_file():
        return {"schema_version": SCHEMA_VERSION, "parts": []}
    try:
        pointer = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}: not valid JSON ({exc}); restore it from a backup or delete the table") from exc
    if pointer.get("schema_version") != SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{path}: schema version {pointer.get('schema_version')} but this data_manifests reads version "
            f"{SCHEMA_VERSION}; migrate the table or install the matching release"
        )
    return pointer


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _write_part(directory: Path, spec: TableSpec, arrow: pa.Table) -> str:
    name = f"part-{uuid.uuid4().hex[:16]}.parquet"
    tmp = directory / f".tmp-{name}"
    pq.write_table(
        arrow.replace_schema_metadata(spec.schema_with_metadata().metadata),
        tmp,
        row_group_size=ROW_GROUP_SIZE,
        compression="zstd",
        compression_level=1,
    )
    os.replace(tmp, directory / name)
    return name


def _commit(directory: Path, parts: list[str], old_parts: list[str]) -> None:
    pointer = {"schema_version": SCHEMA_VERSION, "parts": parts}
    atomic_write_bytes(directory / POINTER, json.dumps(pointer, indent=1).encode())
    for name in set(old_parts) - set(parts):
        with contextlib.suppress(FileNotFoundError):
            (directory / name).unlink()
    # Files left by an earlier crash are never referenced; writers hold the lock, so none is in flight now.
    listed = set(parts)
    for stray in [*directory.glob(".tmp-*"), *directory.glob("part-*.parquet")]:
        if stray.name not in listed:
            with contextlib.suppress(FileNotFoundError):
                stray.unlink()


def _split(arrow: pa.Table) -> list[pa.Table]:
    return [arrow.slice(i, ROWS_PER_PART) for i in range(0, max(arrow.num_rows, 1), ROWS_PER_PART)]


# ----------------------------------------------------------------------------------------------------------- writing
def write_table(root: str | os.PathLike, table: str, data: TableLike) -> int:
    """Replace the whole table with ``data``. Returns the number of rows written."""
    spec = get_spec(table)
    arrow = to_arrow(table, data)
    _check_unique(spec, arrow)
    directory = table_dir(root, table)
    with _locked(directory):
        old = _read_pointer(directory)["parts"]
        parts = [_write_part(directory, spec, chunk) for chunk in _split(arrow)]
        _commit(directory, parts, old)
    return arrow.num_rows


def upsert(root: str | os.PathLike, table: str, data: TableLike) -> UpsertResult:
    """Insert rows, replacing existing rows with the same key. Re-running with the same rows changes nothing."""
    spec = get_spec(table)
    arrow = to_arrow(table, data)
    if arrow.num_rows == 0:
        return UpsertResult(0, 0)
    _check_unique(spec, arrow)
    new_keys = key_array(spec, arrow)
    directory = table_dir(root, table)
    with _locked(directory):
        old_parts = _read_pointer(directory)["parts"]
        parts: list[str] = []
        updated = 0
        # 1. Rewrite only the parts that hold keys being replaced.
        for name in old_parts:
            path = directory / name
            part_keys = key_array(spec, pq.read_table(path, columns=list(spec.key)))
            hit = pc.is_in(part_keys, value_set=new_keys)
            n_hit = pc.sum(hit).as_py() or 0
            if n_hit == 0:
                parts.append(name)
                continue
            updated += n_hit
            kept = _read_part(path, spec).filter(pc.invert(hit))
            if kept.num_rows:
                parts.append(_write_part(directory, spec, kept))
        # 2. The new rows as new parts, then one atomic commit.
        parts.extend(_write_part(directory, spec, chunk) for chunk in _split(arrow))
        _commit(directory, parts, old_parts)
    return UpsertResult(inserted=arrow.num_rows - updated, updated=updated)


def delete_rows(root: str | os.PathLike, table: str, keys: Iterable[str | tuple[str, ...]]) -> int:
    """Delete rows by key (a string, or a tuple for composite keys). Returns the number deleted."""
    spec = get_spec(table)
    wanted = pa.array([k if isinstance(k, str) else _KEY_SEP.join(k) for k in keys], pa.string())
    directory = table_dir(root, table)
    deleted = 0
    with _locked(directory):
        old_parts = _read_pointer(directory)["parts"]
        parts = []
        for name in old_parts:
            part = _read_part(directory / name, spec)
            hit = pc.is_in(key_array(spec, part), value_set=wanted)
            n_hit = pc.sum(hit).as_py() or 0
            if n_hit == 0:
                parts.append(name)
                continue
            deleted += n_hit
            kept = part.filter(pc.invert(hit))
            if kept.num_rows:
                parts.append(_write_part(directory, spec, kept))
        _commit(directory, parts, old_parts)
    return deleted


# ----------------------------------------------------------------------------------------------------------- reading
def _check_part_metadata(path: Path, spec: TableSpec) -> None:
    meta = pq.read_schema(path).metadata or {}
    version = meta.get(META_VERSION)
    if version is None or int(version) != SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{path}: schema version {version.decode() if version else 'missing'}, expected {SCHEMA_VERSION}; "
            "migrate the table or install the matching data_manifests release"
        )
    if meta.get(META_TABLE, spec.name.encode()).decode() != spec.name:
        raise ManifestError(f"{path}: part belongs to table {meta[META_TABLE].decode()!r}, not {spec.name!r}")


def _read_part(path: Path, spec: TableSpec) -> pa.Table:
    return pq.read_table(path, schema=spec.schema)


def part_paths(root: str | os.PathLike, table: str) -> list[Path]:
    """The committed part files of a table, after checking their schema version."""
    spec = get_spec(table)
    directory = table_dir(root, table)
    paths = [directory / name for name in _read_pointer(directory)["parts"]]
    for path in paths:
        _check_part_metadata(path, spec)
    return paths


def read_table(
    root: str | os.PathLike,
    table: str,
    columns: list[str] | None = None,
    filter: pc.Expression | None = None,  # noqa: A002 - the pyarrow.dataset name
    missing_ok: bool = False,
) -> pa.Table:
    """Read a table (or the given columns / the rows matching a ``pyarrow.dataset`` filter expression).

    Example: ``read_table(root, "generations", filter=pc.field("status") == "ok")``.
    """
    spec = get_spec(table)
    if not table_exists(root, table):
        if missing_ok:
            empty = spec.schema.empty_table()
            return empty.select(columns) if columns else empty
        raise FileNotFoundError(
            f"manifest table {table!r} not found under {manifests_dir(root)}; run the stage that writes it first "
            f"(tables present: {list_tables(root) or 'none'})"
        )
    for attempt in range(3):  # a concurrent writer may delete a part between reading the pointer and opening it
        try:
            paths = part_paths(root, table)
            if not paths:
                empty = spec.schema.empty_table()
                return empty.select(columns) if columns else empty
            dataset = ds.dataset([str(p) for p in paths], schema=spec.schema, format="parquet")
            return dataset.to_table(columns=columns, filter=filter)
        except FileNotFoundError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def read_rows(root: str | os.PathLike, table: str, **kwargs: Any) -> list[dict[str, Any]]:
    """Like :func:`read_table`, as a list of dicts (convenient for small tables)."""
    return read_table(root, table, **kwargs).to_pylist()


def existing_keys(root: str | os.PathLike, table: str, filter: pc.Expression | None = None) -> set[str]:  # noqa: A002
    """The keys present in a table (composite keys joined by ``\\x1f``), for resuming work."""
    spec = get_spec(table)
    arrow = read_table(root, table, columns=list(spec.key), filter=filter, missing_ok=True)
    return set(key_array(spec, arrow).to_pylist())
