"""Arrow columns as flat, memory-mapped numpy files: row ``i`` decoded on demand, touching only its own bytes.

A table of millions of manifest rows must not become millions of Python dicts (about 5.8 KB each), nor be copied
into every DataLoader worker. :class:`RowStoreWriter` streams record batches into one folder of raw files, a few per
column, following Arrow's own layout (validity, offsets, values; lists and structs nest):

    <column>.valid    uint8 (n,)      1 where the value is not null
    <column>.values   (n,)            integers / floats
    <column>.offsets  int64 (n + 1,)  strings: byte ranges in <column>.data; lists: item ranges of <column>.item
    <column>.data     uint8           string bytes (UTF-8)
    <column>.<field>  ...             struct fields, each a column of the same length

:class:`RowStore` decodes a row with a few dozen positioned reads (``os.pread``) of its own bytes. Files are read, not
memory-mapped: on this kernel every fault on a mapped file maps its whole (up to 2 MB) page-cache folio into the
process, so a worker reading random rows of a mapped 1 GB store grew by about 1 GB of RSS within an epoch; reads
leave the data in the shared page cache and the processes' RSS flat. Pickling a store carries only its folder's path,
so DataLoader workers open the same files.
Values decode to what ``pyarrow.Table.to_pylist()`` gives (structs as dicts, lists as lists, null as ``None``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa

META = "rowstore.json"


def _kind(t: pa.DataType) -> str:
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return "list"
    if pa.types.is_struct(t):
        return "struct"
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
        return "primitive"
    raise TypeError(f"row store: unsupported Arrow type {t} (strings, numbers, lists and structs only)")


def _spec(t: pa.DataType) -> dict[str, Any]:
    """A JSON description of a column type (enough to map its files)."""
    kind = _kind(t)
    if kind == "primitive":
        return {"kind": kind, "dtype": np.dtype(t.to_pandas_dtype()).str}
    if kind == "list":
        return {"kind": kind, "item": _spec(t.value_type)}
    if kind == "struct":
        return {"kind": kind, "fields": [[t.field(k).name, _spec(t.field(k).type)] for k in range(t.num_fields)]}
    return {"kind": kind}


class _ColumnWriter:
    """Appends the values of one (possibly nested) column to its files."""

    def __init__(self, prefix: Path, spec: dict[str, Any]) -> None:
        self.spec, self.kind = spec, spec["kind"]
        self.files: dict[str, BinaryIO] = {"valid": open(f"{prefix}.valid", "wb")}
        self.total = 0  # bytes (strings) or items (lists) written so far
        self.children: list[tuple[str, _ColumnWriter]] = []
        if self.kind in ("string", "list"):
            self.files["offsets"] = open(f"{prefix}.offsets", "wb")
            self.files["offsets"].write(np.zeros(1, np.int64).tobytes())
        if self.kind == "string":
            self.files["data"] = open(f"{prefix}.data", "wb")
        if self.kind == "primitive":
            self.files["values"] = open(f"{prefix}.values", "wb")
        if self.kind == "list":
            self.children = [("item", _ColumnWriter(Path(f"{prefix}.item"), spec["item"]))]
        if self.kind == "struct":
            self.children = [(name, _ColumnWriter(Path(f"{prefix}.{name}"), sub)) for name, sub in spec["fields"]]

    def write(self, arr: pa.Array) -> None:
        valid = arr.is_valid().to_numpy(zero_copy_only=False).astype(np.uint8)
        self.files["valid"].write(valid.tobytes())
        if self.kind == "primitive":
            values = arr.fill_null(0).to_numpy(zero_copy_only=False).astype(np.dtype(self.spec["dtype"]))
            self.files["values"].write(np.ascontiguousarray(values).tobytes())
        elif self.kind == "string":
            self._write_strings(arr.cast(pa.large_string()))
        elif self.kind == "list":
            lengths = arr.value_lengths().fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
            self.files["offsets"].write((np.cumsum(lengths) + self.total).tobytes())
            self.total += int(lengths.sum())
            self.children[0][1].write(arr.flatten())  # null entries contribute no items
        else:  # struct: each field a column of the same length (the struct's own nulls are in .valid)
            for (_, child), field in zip(self.children, arr.flatten()):
                child.write(field)

    def _write_strings(self, arr: pa.Array) -> None:
        buffers = arr.buffers()
        offsets = np.frombuffer(buffers[1], np.int64)[arr.offset : arr.offset + len(arr) + 1]
        start, end = (int(offsets[0]), int(offsets[-1])) if len(offsets) else (0, 0)
        if end > start:
            self.files["data"].write(memoryview(buffers[2])[start:end])
        self.files["offsets"].write((offsets[1:] - start + self.total).tobytes())
        self.total += end - start

    def close(self) -> None:
        for handle in self.files.values():
            handle.close()
        for _, child in self.children:
            child.close()


class RowStoreWriter:
    """Streams record batches of one schema into ``directory`` (created); :meth:`close` writes the description."""

    def __init__(self, directory: str | os.PathLike, schema: pa.Schema) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.columns = [[f.name, _spec(f.type)] for f in schema]
        self.writers = [_ColumnWriter(self.directory / name, spec) for name, spec in self.columns]
        self.rows = 0

    def write_batch(self, batch: pa.RecordBatch | pa.Table) -> None:
        for writer, (name, _) in zip(self.writers, self.columns):
            column = batch.column(name)
            for chunk in column.chunks if isinstance(column, pa.ChunkedArray) else [column]:
                writer.write(chunk)
        self.rows += batch.num_rows

    def close(self) -> None:
        for writer in self.writers:
            writer.close()
        meta = {"rows": self.rows, "columns": self.columns}
        (self.directory / META).write_text(json.dumps(meta))


class RawFile:
    """Positioned reads (``os.pread``) of one raw file as a numpy array of ``dtype``; opened on first use."""

    def __init__(self, path: str, dtype: np.dtype) -> None:
        self.path, self.dtype = path, np.dtype(dtype)
        self.fd: int | None = None

    def read(self, start: int, stop: int) -> np.ndarray:
        if self.fd is None:
            self.fd = os.open(self.path, os.O_RDONLY)
        size = self.dtype.itemsize
        data = os.pread(self.fd, (stop - start) * size, start * size)
        if len(data) != (stop - start) * size:
            raise ValueError(f"{self.path}: truncated (wanted items {start}:{stop}); rebuild the dataset")
        return np.frombuffer(data, self.dtype)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __del__(self) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "dtype": self.dtype, "fd": None}  # a descriptor is this process's own


class _ColumnReader:
    def __init__(self, prefix: Path, spec: dict[str, Any], files: list[RawFile]) -> None:
        self.kind = spec["kind"]

        def open_(suffix: str, dtype: Any) -> RawFile:
            files.append(RawFile(f"{prefix}.{suffix}", np.dtype(dtype)))
            return files[-1]

        self.valid = open_("valid", np.uint8)
        if self.kind in ("string", "list"):
            self.offsets = open_("offsets", np.int64)
        if self.kind == "string":
            self.data = open_("data", np.uint8)
        if self.kind == "primitive":
            self.values = open_("values", spec["dtype"])
        if self.kind == "list":
            self.item = _ColumnReader(Path(f"{prefix}.item"), spec["item"], files)
        if self.kind == "struct":
            self.fields = [(name, _ColumnReader(Path(f"{prefix}.{name}"), sub, files)) for name, sub in spec["fields"]]

    def value(self, i: int) -> Any:
        if not self.valid.read(i, i + 1)[0]:
            return None
        if self.kind == "primitive":
            return self.values.read(i, i + 1)[0].item()
        if self.kind == "struct":
            return {name: reader.value(i) for name, reader in self.fields}
        start, stop = (int(v) for v in self.offsets.read(i, i + 2))
        if self.kind == "string":
            return self.data.read(start, stop).tobytes().decode("utf-8")
        return [self.item.value(k) for k in range(start, stop)]


class RowStore:
    """The rows a :class:`RowStoreWriter` wrote, read-only; ``row(i)`` is a dict of every column."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self._open()

    def _open(self) -> None:
        meta = json.loads((self.directory / META).read_text())
        self.rows = int(meta["rows"])
        self.columns = [name for name, _ in meta["columns"]]
        self._files: list[RawFile] = []
        self._readers = {
            name: _ColumnReader(self.directory / name, spec, self._files) for name, spec in meta["columns"]
        }

    def __len__(self) -> int:
        return self.rows

    def row(self, i: int) -> dict[str, Any]:
        if not 0 <= i < self.rows:
            raise IndexError(f"row {i} out of range for {self.rows} rows")
        return {name: reader.value(i) for name, reader in self._readers.items()}

    def close(self) -> None:
        for handle in self._files:
            handle.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"directory": self.directory}  # workers open the same files

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.directory = state["directory"]
        self._open()
