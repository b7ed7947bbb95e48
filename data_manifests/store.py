"""The one Parquet reader/writer of the manifest tables.

Layout: ``<root>/manifests/<table>/`` holds immutable part files and a small ``_current.json`` that lists the
parts making up the table and the sha256 of each. Every write (1) writes new part files under temporary names and
renames them into place, (2) atomically replaces ``_current.json`` (temp file + ``os.replace``), (3) deletes parts
that are no longer listed. A crash at any point leaves either the previous or the new state readable, never a mix and
never a half file: readers only open parts that a committed ``_current.json`` lists. Writers of one table serialise
on a file lock, so shards running in parallel threads or processes on one machine (or on a shared POSIX file system)
can upsert safely.

Invariants the reader and the writer check:

- a pointer names only part files of its own folder (``part-<hex>.parquet``), never a path;
- a commit never lists no parts (an emptied table holds one empty part), so a pointer that is missing or lists no
  parts while part files exist was lost or damaged: writers refuse to commit over it (the commit would delete every
  part) and readers refuse to read it; ``diffveri manifests repair`` rebuilds it from the parts;
- parts carry Parquet page checksums (verified on every read) and the pointer their sha256 (verified by
  :func:`data_manifests.validate`), so flipped bytes are reported, never read as data.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from .ids import sha256_file
from .paths import ID_RULE, bad_ids
from .schemas import META_TABLE, META_VERSION, SCHEMA_VERSION, TableSpec, get_spec

POINTER = "_current.json"
LOCK = ".lock"
ROWS_PER_PART = 1_000_000
ROW_GROUP_SIZE = 128 * 1024
_KEY_SEP = "\x1f"
PART_NAME = re.compile(r"^part-[A-Za-z0-9_-]{1,64}\.parquet$")
_VERIFY = ds.ParquetFragmentScanOptions(page_checksum_verification=True)
_FORMAT = ds.ParquetFileFormat(default_fragment_scan_options=_VERIFY)

TableLike = pa.Table | Iterable[Mapping[str, Any]] | Any  # a pyarrow Table, rows as dicts, or a pandas DataFrame


class ManifestError(ValueError):
    """Bad data offered to, or found in, a manifest table. The message names the table, row and fix."""


class SchemaVersionError(ManifestError):
    """A part file was written with another schema version than this package reads."""


class ConflictError(ManifestError):
    """The table changed between reading it and writing (see ``if_version`` of :func:`upsert`)."""


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
    """Names of the tables present under ``root`` (with a pointer, or with part files that lost theirs)."""
    from .schemas import TABLES

    return [name for name in TABLES if table_exists(root, name) or part_files(table_dir(root, name))]


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
    _check_write_ids(spec, arrow)
    return arrow


def _check_write_ids(spec: TableSpec, arrow: pa.Table) -> None:
    bad = bad_ids(arrow)
    if bad:
        lines = [f"  {_row_label(spec, arrow, i)}: {column}={value!r}" for i, column, value in bad[:10]]
        raise ManifestError(f"{spec.name}: invalid id(s); {ID_RULE}:\n" + "\n".join(lines))


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


def part_files(directory: Path) -> list[Path]:
    """Every part file in a table folder, listed by the pointer or not."""
    return sorted(directory.glob("part-*.parquet")) if directory.is_dir() else []


def _repair_hint(directory: Path) -> str:
    root = directory.parent.parent
    return f"run `diffveri manifests repair --root {root} --table {directory.name}` to rebuild it from the part files"


def _check_pointer(path: Path, pointer: Any) -> dict[str, Any]:
    """The pointer's content, after checking its structure (a ``ManifestError`` naming the file otherwise)."""
    if not isinstance(pointer, dict) or not isinstance(pointer.get("parts"), list):
        raise ManifestError(
            f"{path}: not a table pointer (expected an object with a 'parts' list); " + _repair_hint(path.parent)
        )
    if pointer.get("schema_version") != SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{path}: schema version {pointer.get('schema_version')} but this data_manifests reads version "
            f"{SCHEMA_VERSION}; migrate the table or install the matching release"
        )
    for name in pointer["parts"]:
        if not isinstance(name, str) or not PART_NAME.match(name):
            raise ManifestError(
                f"{path}: lists {name!r}, which is not a part file of this folder (a pointer names only "
                f"part-<id>.parquet files beside it); " + _repair_hint(path.parent)
            )
    sums = pointer.get("sha256") or {}
    if not isinstance(sums, dict):
        raise ManifestError(f"{path}: 'sha256' must map part names to hashes; " + _repair_hint(path.parent))
    return {"schema_version": SCHEMA_VERSION, "parts": list(pointer["parts"]), "sha256": dict(sums)}


def _read_pointer(directory: Path) -> dict[str, Any]:
    """The committed pointer; a missing one reads as an empty table (checked by :func:`_read_pointer_for_write`)."""
    path = directory / POINTER
    if not path.is_file():
        return {"schema_version": SCHEMA_VERSION, "parts": [], "sha256": {}}
    try:
        pointer = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: not valid JSON ({exc}); " + _repair_hint(directory)) from exc
    return _check_pointer(path, pointer)


def lost_pointer(directory: Path) -> bool:
    """Does the folder hold part files that a missing or empty pointer does not list? (A commit never lists no
    parts, so this state means the pointer was lost, and committing over it would delete every part.)"""
    path = directory / POINTER
    if not part_files(directory):
        return False
    if not path.is_file():
        return True
    try:
        return not _read_pointer(directory)["parts"]
    except ManifestError:
        return False  # damaged rather than lost: reading it raises its own error


def _read_pointer_for_write(directory: Path) -> dict[str, Any]:
    if lost_pointer(directory):
        n = len(part_files(directory))
        raise ManifestError(
            f"{directory / POINTER} is missing or lists no parts, but {n} part file(s) are in {directory}; "
            f"writing now would delete them. Nothing was written; " + _repair_hint(directory)
        )
    return _read_pointer(directory)


def table_version(root: str | os.PathLike, table: str) -> str:
    """A token that changes with every commit to the table: for ``upsert(..., if_version=...)``, and for caches keyed
    on what a table holds (the flow's). Every missing table has the same token."""
    return _version(_read_pointer(table_dir(root, table)))


def _version(pointer: dict[str, Any]) -> str:
    # Part names are random, so every commit that changes rows lists a new set of names.
    return hashlib.sha256("\n".join(sorted(pointer["parts"])).encode()).hexdigest()[:16]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk (or an interrupt) leaves neither the new file nor a stray .tmp
        raise


@contextlib.contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Fill a temporary sibling of ``path`` (yielded), then put it in ``path``'s place (replacing any old folder).

    An exception inside the block leaves ``path`` as it was and removes the temporary folder.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_part(directory: Path, spec: TableSpec, arrow: pa.Table, sums: dict[str, str]) -> str:
    """Write one part (with page checksums), record its sha256 in ``sums``; returns its name."""
    name = f"part-{uuid.uuid4().hex[:16]}.parquet"
    tmp = directory / f".tmp-{name}"
    try:
        pq.write_table(
            arrow.replace_schema_metadata(spec.schema_with_metadata().metadata),
            tmp,
            row_group_size=ROW_GROUP_SIZE,
            compression="zstd",
            compression_level=1,
            write_page_checksum=True,
        )
        sums[name] = sha256_file(tmp)
        os.replace(tmp, directory / name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return name


def _commit(directory: Path, parts: list[str], sums: dict[str, str], old_parts: list[str]) -> None:
    listed = set(parts)
    known = {name: sums[name] for name in parts if name in sums}  # old parts without a hash stay without one
    pointer = {"schema_version": SCHEMA_VERSION, "parts": parts, "sha256": known}
    atomic_write_bytes(directory / POINTER, json.dumps(pointer, indent=1).encode())
    for name in set(old_parts) - listed:
        with contextlib.suppress(FileNotFoundError):
            (directory / name).unlink()
    # Files left by an earlier crash are never referenced; writers hold the lock, so none is in flight now.
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
        old = _read_pointer_for_write(directory)
        sums = dict(old["sha256"])
        parts = [_write_part(directory, spec, chunk, sums) for chunk in _split(arrow)]
        _commit(directory, parts, sums, old["parts"])
    return arrow.num_rows


def upsert(root: str | os.PathLike, table: str, data: TableLike, *, if_version: str | None = None) -> UpsertResult:
    """Insert rows, replacing existing rows with the same key. Re-running with the same rows changes nothing.

    ``if_version`` (from :func:`table_version`, taken before reading the rows this write was computed from) makes
    the write compare-and-swap: if another writer committed in between, nothing is written and
    :class:`ConflictError` is raised, so the caller can read again and recompute.
    """
    spec = get_spec(table)
    arrow = to_arrow(table, data)
    if arrow.num_rows == 0:
        return UpsertResult(0, 0)
    _check_unique(spec, arrow)
    new_keys = key_array(spec, arrow)
    directory = table_dir(root, table)
    with _locked(directory):
        old = _read_pointer_for_write(directory)
        if if_version is not None and _version(old) != if_version:
            raise ConflictError(
                f"{directory}: the table changed while this write was prepared (another writer committed); "
                "nothing was written, read the table again and retry"
            )
        sums = dict(old["sha256"])
        parts: list[str] = []
        updated = 0
        # 1. Rewrite only the parts that hold keys being replaced.
        for name in old["parts"]:
            path = directory / name
            part_keys = key_array(spec, _read_checked(path, spec, columns=list(spec.key)))
            hit = pc.is_in(part_keys, value_set=new_keys)
            n_hit = pc.sum(hit).as_py() or 0
            if n_hit == 0:
                parts.append(name)
                continue
            updated += n_hit
            kept = _read_part(path, spec).filter(pc.invert(hit))
            if kept.num_rows:
                parts.append(_write_part(directory, spec, kept, sums))
        # 2. The new rows as new parts, then one atomic commit.
        parts.extend(_write_part(directory, spec, chunk, sums) for chunk in _split(arrow))
        _commit(directory, parts, sums, old["parts"])
    return UpsertResult(inserted=arrow.num_rows - updated, updated=updated)


def delete_rows(root: str | os.PathLike, table: str, keys: Iterable[str | tuple[str, ...]]) -> int:
    """Delete rows by key (a string, or a tuple for composite keys). Returns the number deleted."""
    spec = get_spec(table)
    wanted = pa.array([k if isinstance(k, str) else _KEY_SEP.join(k) for k in keys], pa.string())
    directory = table_dir(root, table)
    deleted = 0
    with _locked(directory):
        old = _read_pointer_for_write(directory)
        sums = dict(old["sha256"])
        parts = []
        for name in old["parts"]:
            part = _read_part(directory / name, spec)
            hit = pc.is_in(key_array(spec, part), value_set=wanted)
            n_hit = pc.sum(hit).as_py() or 0
            if n_hit == 0:
                parts.append(name)
                continue
            deleted += n_hit
            kept = part.filter(pc.invert(hit))
            if kept.num_rows:
                parts.append(_write_part(directory, spec, kept, sums))
        if not parts and old["parts"]:  # an emptied table keeps one empty part (see the module docstring)
            parts.append(_write_part(directory, spec, spec.schema.empty_table(), sums))
        _commit(directory, parts, sums, old["parts"])
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


def _damaged(path: Path | str, exc: Exception) -> ManifestError:
    return ManifestError(
        f"{path}: the part file is damaged ({exc}); restore it from a backup or re-run the stage that wrote "
        "the table (`diffveri manifests validate --root ROOT` checks every part)"
    )


def _read_checked(path: Path, spec: TableSpec, columns: list[str] | None = None) -> pa.Table:
    """Read one part, verifying its page checksums; damage is a ``ManifestError`` naming the file."""
    try:
        return pq.read_table(path, schema=spec.schema, columns=columns, page_checksum_verification=True)
    except FileNotFoundError:
        raise
    except (OSError, pa.ArrowException) as exc:
        raise _damaged(path, exc) from exc


def _read_part(path: Path, spec: TableSpec) -> pa.Table:
    return _read_checked(path, spec)


def part_paths(root: str | os.PathLike, table: str) -> list[Path]:
    """The committed part files of a table, after checking their schema version."""
    spec = get_spec(table)
    directory = table_dir(root, table)
    paths = [directory / name for name in _read_pointer(directory)["parts"]]
    for path in paths:
        try:
            _check_part_metadata(path, spec)
        except (FileNotFoundError, ManifestError):
            raise
        except (OSError, pa.ArrowException) as exc:
            raise _damaged(path, exc) from exc
    return paths


def _check_read_ids(table: str, arrow: pa.Table) -> None:
    bad = bad_ids(arrow)
    if bad:
        index, column, value = bad[0]
        raise ManifestError(
            f"{table}: row {index} has {column}={value!r}, which is not a valid id ({ID_RULE}); the table was "
            f"edited or damaged: fix or delete the row ({len(bad)} such value(s); `diffveri manifests validate --root "
            "ROOT` lists them)"
        )


def read_table(
    root: str | os.PathLike,
    table: str,
    columns: list[str] | None = None,
    filter: pc.Expression | None = None,  # noqa: A002 - the pyarrow.dataset name
    missing_ok: bool = False,
    check_ids: bool = True,
) -> pa.Table:
    """Read a table (or the given columns / the rows matching a ``pyarrow.dataset`` filter expression).

    Example: ``read_table(root, "generations", filter=pc.field("status") == "ok")``. Page checksums are verified
    and (``check_ids``) id columns checked against :data:`data_manifests.paths.ID_PATTERN`.
    """
    spec = get_spec(table)
    if lost_pointer(table_dir(root, table)):
        _read_pointer_for_write(table_dir(root, table))  # raises: the pointer was lost, the parts are still there
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
            arrow = _read_dataset(root, table, spec, columns, filter)
            break
        except FileNotFoundError:
            if attempt == 2:
                raise
    if check_ids:
        _check_read_ids(table, arrow)
    return arrow


def _read_dataset(
    root: str | os.PathLike,
    table: str,
    spec: TableSpec,
    columns: list[str] | None,
    filter: pc.Expression | None,  # noqa: A002
) -> pa.Table:
    paths = part_paths(root, table)
    if not paths:
        empty = spec.schema.empty_table()
        return empty.select(columns) if columns else empty
    dataset = ds.dataset([str(p) for p in paths], schema=spec.schema, format=_FORMAT)
    try:
        return dataset.to_table(columns=columns, filter=filter)
    except FileNotFoundError:
        raise
    except (OSError, pa.ArrowException) as exc:
        for path in paths:  # name the damaged part
            _read_checked(path, spec, columns=columns)
        raise _damaged(table_dir(root, table), exc) from exc


def iter_batches(
    root: str | os.PathLike,
    table: str,
    columns: list[str] | None = None,
    filter: pc.Expression | None = None,  # noqa: A002 - the pyarrow.dataset name
    batch_rows: int = 64 * 1024,
) -> Iterator[pa.RecordBatch]:
    """Like :func:`read_table`, as record batches of at most ``batch_rows`` rows: memory stays bounded by one batch
    however large the table (the pre-training dataset streams 1.7M rows this way). Ids are checked per batch."""
    spec = get_spec(table)
    if not table_exists(root, table):
        read_table(root, table, columns=columns)  # raises the same error (lost pointer / table not found)
    paths = part_paths(root, table)
    if not paths:
        return
    dataset = ds.dataset([str(p) for p in paths], schema=spec.schema, format=_FORMAT)
    offset = 0
    try:
        for batch in dataset.to_batches(columns=columns, filter=filter, batch_size=batch_rows):
            bad = bad_ids(pa.Table.from_batches([batch]))
            if bad:
                index, column, value = bad[0]
                raise ManifestError(
                    f"{table}: row {offset + index} has {column}={value!r}, which is not a valid id ({ID_RULE}); "
                    "the table was edited or damaged: fix or delete the row (`diffveri manifests validate --root ROOT` "
                    "lists them)"
                )
            offset += batch.num_rows
            yield batch
    except (FileNotFoundError, ManifestError):
        raise
    except (OSError, pa.ArrowException) as exc:
        for path in paths:  # name the damaged part
            _read_checked(path, spec, columns=columns)
        raise _damaged(table_dir(root, table), exc) from exc


def read_rows(root: str | os.PathLike, table: str, **kwargs: Any) -> list[dict[str, Any]]:
    """Like :func:`read_table`, as a list of dicts (convenient for small tables)."""
    return read_table(root, table, **kwargs).to_pylist()


def existing_keys(root: str | os.PathLike, table: str, filter: pc.Expression | None = None) -> set[str]:  # noqa: A002
    """The keys present in a table (composite keys joined by ``\\x1f``), for resuming work."""
    spec = get_spec(table)
    arrow = read_table(root, table, columns=list(spec.key), filter=filter, missing_ok=True)
    return set(key_array(spec, arrow).to_pylist())
